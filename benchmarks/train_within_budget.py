"""Train a zoo model for as many epochs as fit in a wall-clock budget (for lent GPU machines).

It times two probe epochs (the second: the first pays for warm-up), then trains a fresh run whose cosine
schedule ends inside the budget, so the reported accuracy is a finished schedule rather than a run cut
short.

    python benchmarks/train_within_budget.py --arch resnet20 --dataset cifar10 \
        --data-dir DATA --budget 420 --out OUT
"""
import argparse
import json
import math
import tempfile
import time
from pathlib import Path

from irnet_edge.train import TrainConfig, train


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--arch", required=True)
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir")
    parser.add_argument("--budget", type=float, required=True, help="seconds for the whole script")
    parser.add_argument("--max-epochs", type=int, default=400)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.time()
    config = dict(arch=args.arch, dataset=args.dataset, data_dir=args.data_dir)
    with tempfile.TemporaryDirectory() as scratch:
        probe = train(TrainConfig(**config, epochs=2), scratch, force=True, progress=False)
    epoch_s = probe["history"][1]["seconds"]
    left = args.budget - (time.time() - started)
    epochs = max(1, min(args.max_epochs, math.floor(left * 0.92 / epoch_s)))
    print(f"probe epoch {epoch_s:.1f} s; {left:.0f} s left -> {epochs} epochs", flush=True)
    metrics = train(TrainConfig(**config, epochs=epochs), args.out, force=True, progress=False)
    summary = {k: metrics[k] for k in ("arch", "dataset", "epochs", "test_accuracy", "best_test_accuracy",
                                       "best_epoch", "seconds_per_epoch", "device")}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
