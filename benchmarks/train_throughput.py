"""Training throughput on the current device: seconds per epoch and steps per second, eager vs compiled step.

Each mode trains a fresh run (same seed) for --epochs epochs with irnet_edge.train.train. The first epoch of a
compiled run pays for compilation, so the steady figure is the median of the later epochs. An epoch's time
includes its test-set evaluation (as `irnet-edge train` reports it); steps per second = batches / that time.

    python benchmarks/train_throughput.py --arch mcu_m4 --dataset mnist --data-dir DATA --train-limit 6400
    python benchmarks/train_throughput.py --arch resnet20 --dataset cifar10 --data-dir DATA --epochs 3  # GPU

Prints a markdown table and, with --json FILE, writes the numbers (plus peak GPU memory on CUDA).
"""
import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from irnet_edge.train import TrainConfig, train


def measure(args, compiled: bool) -> dict:
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    config = TrainConfig(arch=args.arch, dataset=args.dataset, data_dir=args.data_dir, epochs=args.epochs,
                         train_limit=args.train_limit, batch_size=args.batch_size, compile=compiled)
    started = time.time()
    with tempfile.TemporaryDirectory() as scratch:
        metrics = train(config, Path(scratch) / "run", progress=False, device=device, log=lambda s: None)
    seconds = [h["seconds"] for h in metrics["history"]]
    steady = statistics.median(seconds[1:]) if len(seconds) > 1 else seconds[0]
    batches = metrics["train_samples"] // metrics["recipe"]["batch_size"]
    return {"mode": metrics["step"], "device": metrics["device"], "arch": metrics["arch"],
            "dataset": metrics["dataset"], "train_samples": metrics["train_samples"],
            "batch_size": metrics["recipe"]["batch_size"], "batches_per_epoch": batches,
            "epoch_seconds": seconds, "first_epoch_seconds": seconds[0], "steady_seconds_per_epoch": steady,
            "steps_per_second": batches / steady, "wall_seconds": time.time() - started,
            "final_train_loss": metrics["history"][-1]["train_loss"], "test_accuracy": metrics["test_accuracy"],
            "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None,
            "torch": torch.__version__, "threads": torch.get_num_threads()}


def markdown(rows: list[dict]) -> str:
    lines = ["| arch | dataset | step | device | train images | first epoch (s) | steady s/epoch | steps/s | "
             "peak GPU MiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        memory = f"{r['peak_gpu_memory_bytes'] / 2**20:.0f}" if r["peak_gpu_memory_bytes"] is not None else "-"
        lines.append(f"| {r['arch']} | {r['dataset']} | {r['mode']} | {r['device']} | {r['train_samples']} | "
                     f"{r['first_epoch_seconds']:.1f} | {r['steady_seconds_per_epoch']:.2f} | "
                     f"{r['steps_per_second']:.2f} | {memory} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="mcu_m4")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--epochs", type=int, default=3, help="per mode (the first one is the warm-up)")
    parser.add_argument("--train-limit", type=int, help="train on the first N images (quick CPU measurements)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--modes", default="eager,compiled", help="comma-separated: eager, compiled")
    parser.add_argument("--json", type=Path, help="write the rows here")
    args = parser.parse_args()
    rows = []
    for mode in args.modes.split(","):
        if mode not in ("eager", "compiled"):
            parser.error(f"unknown mode {mode!r}")
        rows.append(measure(args, compiled=mode == "compiled"))
        print(markdown(rows[-1:]).splitlines()[-1], flush=True)
    print(markdown(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
