"""Train a plan of (arch, epochs) runs back to back (or concurrently on one device), resuming each from its
checkpoint, then measure each deployed model from its generated C on the host and write accuracy tables.

Default plan (issue 15, the paper's accuracy): resnet20 with the paper recipe for 400 epochs, then vgg_small
for 300, on CIFAR-10 (../shared/data/cifar10-jpg). Every run lives in OUT/ARCH-DATASET/ (model.pt,
metrics.json, training_curve.png) and is resumed from its model.pt by the next invocation (a finished run is
not retrained), so a plan that does not fit one GPU window continues in the next. Then, per run:

- final-epoch test accuracy of the PyTorch model (and the best epoch beside it), seconds per epoch (median;
  an epoch's time includes its test evaluation), steps per second, peak GPU memory on CUDA (this invocation);
- the deployed model: irnet_edge.convert(model.pt).predict on the test images (the generated C, built with
  gcc on the host), asserted bit for bit equal to the reference executor's logits, and its top-1 accuracy.

Writes OUT/plan.md, OUT/plan.json and OUT/curves.png (test accuracy per epoch of every run).

    python benchmarks/train_plan.py --out runs/plan                                  # the full plan (GPU)
    python benchmarks/train_plan.py --out /tmp/tiny --limit 256 --epochs 1 --c-samples 500 --device cpu
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

DEFAULT_PLAN = ("resnet20:400", "vgg_small:300")
PAPER = {"resnet20": 0.865, "vgg_small": 0.904}  # official README, CIFAR-10 1W/1A top-1 (best epoch)
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpg"


def parse_entry(entry: str, epochs_override: int | None) -> tuple[str, int | None]:
    arch, _, epochs = entry.partition(":")
    return arch, epochs_override or (int(epochs) if epochs else None)


def run_dir(out: Path, arch: str, dataset: str) -> Path:
    return out / f"{arch}-{dataset}"


def train_entry(args, entry: str) -> dict:
    """Train (or resume) one run; returns its training figures."""
    from irnet_edge.train import TrainConfig, train

    arch, epochs = parse_entry(entry, args.epochs)
    folder = run_dir(args.out, arch, args.dataset)
    resume = (folder / "model.pt").is_file()
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    config = TrainConfig(arch=arch, dataset=args.dataset, data_dir=str(args.data_dir), recipe=args.recipe,
                         epochs=epochs, train_limit=args.limit, compile=args.compile)
    started = time.time()
    explicit = {"epochs"} if epochs else set()
    if args.compile is not None:
        explicit.add("compile")
    metrics = train(config, folder, resume=resume, explicit=explicit, device=device, progress=False,
                    stop_after=args.stop_after, log=lambda s: print(f"[{arch}] {s}", flush=True))
    seconds = [h["seconds"] for h in metrics["history"]]
    median = statistics.median(seconds)
    batches = metrics["train_samples"] // metrics["recipe"]["batch_size"]
    return {"arch": arch, "dataset": metrics["dataset"], "run": str(folder), "resumed": resume,
            "epochs_done": metrics["epochs"], "epochs_planned": metrics["recipe"]["epochs"],
            "final_test_accuracy": metrics["test_accuracy"], "best_test_accuracy": metrics["best_test_accuracy"],
            "best_epoch": metrics["best_epoch"], "paper_accuracy": PAPER.get(arch),
            "seconds_per_epoch_median": median, "steps_per_second": batches / median,
            "train_samples": metrics["train_samples"], "step": metrics.get("step", "eager"),
            "device": metrics["device"], "this_invocation_seconds": time.time() - started,
            "peak_gpu_memory_bytes": torch.cuda.max_memory_allocated() if device == "cuda" else None,
            "history": [{k: h[k] for k in ("epoch", "train_loss", "test_accuracy", "seconds")}
                        for h in metrics["history"]]}


def deployed_accuracy(args, row: dict) -> dict:
    """The generated C's top-1 on the test set (or --c-samples images evenly spaced over it: class folders sort
    the test set by class), asserted equal to the reference executor bit for bit; beside it the PyTorch model's
    top-1 on the same images."""
    import irnet_edge
    from irnet_edge.data import load_split
    from irnet_edge.nn.checkpoint import load_checkpoint
    from irnet_edge.train import evaluate

    test = load_split(args.dataset, "test", str(args.data_dir))
    n = min(args.c_samples or len(test), len(test))
    chosen = torch.arange(n) * len(test) // n
    images, labels = test.images[chosen], test.labels[chosen]
    pixels = images.permute(0, 2, 3, 1).contiguous().numpy()  # uint8 NHWC, as the C takes them
    torch_accuracy, _ = evaluate(load_checkpoint(Path(row["run"]) / "model.pt").build(), images, labels)
    labels = labels.numpy()
    model = irnet_edge.convert(Path(row["run"]) / "model.pt")
    started = time.time()
    c_logits, ref_logits = [], []
    for start in range(0, n, 1000):
        c_logits.append(model.predict(pixels[start:start + 1000]))
        ref_logits.append(model.reference(pixels[start:start + 1000]))
    c_logits, ref_logits = np.concatenate(c_logits), np.concatenate(ref_logits)
    assert np.array_equal(c_logits.view(np.uint32), ref_logits.view(np.uint32)), \
        f"{row['arch']}: the generated C's logits differ from the reference executor's"
    c_top1 = c_logits.argmax(1)
    assert np.array_equal(c_top1, ref_logits.argmax(1))
    return {"c_samples": n, "c_accuracy": float((c_top1 == labels).mean()), "c_bit_exact": True,
            "pytorch_accuracy_same_images": torch_accuracy, "c_seconds": time.time() - started}


def markdown(rows: list[dict]) -> str:
    lines = ["| arch | dataset | epochs | final test acc. | best (epoch) | paper | C on host (images) | "
             "PyTorch, same images | s/epoch | steps/s | peak GPU MiB | step |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = f"{r['paper_accuracy']:.1%}" if r["paper_accuracy"] else "-"
        memory = f"{r['peak_gpu_memory_bytes'] / 2**20:.0f}" if r["peak_gpu_memory_bytes"] else "-"
        lines.append(f"| {r['arch']} | {r['dataset']} | {r['epochs_done']}/{r['epochs_planned']} | "
                     f"**{r['final_test_accuracy']:.2%}** | {r['best_test_accuracy']:.2%} ({r['best_epoch']}) | "
                     f"{paper} | {r['c_accuracy']:.2%} ({r['c_samples']}, bit-exact) | "
                     f"{r['pytorch_accuracy_same_images']:.2%} | {r['seconds_per_epoch_median']:.2f} | "
                     f"{r['steps_per_second']:.3g} | {memory} | {r['step']} |")
    return "\n".join(lines)


def plot_curves(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for r in rows:
        ax.plot([h["epoch"] for h in r["history"]], [h["test_accuracy"] for h in r["history"]], label=r["arch"])
        if r["paper_accuracy"]:
            ax.axhline(r["paper_accuracy"], linestyle=":", linewidth=0.8, color=ax.lines[-1].get_color())
    ax.set_xlabel("epoch")
    ax.set_ylabel("test accuracy (final-epoch model)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("entries", nargs="*", default=list(DEFAULT_PLAN), help="ARCH[:EPOCHS] (default: %(default)s)")
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--recipe", default="paper")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, help="override every entry's epochs (a tiny check: 1)")
    parser.add_argument("--limit", type=int, help="train on the first N images only (a tiny check)")
    parser.add_argument("--stop-after", type=int, help="train at most N epochs per run in this invocation")
    parser.add_argument("--c-samples", type=int, help="test images for the C measurement (default: all)")
    parser.add_argument("--device", choices=["cpu", "cuda"])
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="the compiled step (default: on for CUDA, off for the CPU)")
    parser.add_argument("--concurrent", action="store_true",
                        help="train the runs at the same time, one process each (sharing one GPU)")
    parser.add_argument("--only-train", help=argparse.SUPPRESS)  # internal: one entry, for --concurrent
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.only_train:
        row = train_entry(args, args.only_train)
        Path(row["run"], "plan_row.json").write_text(json.dumps(row, indent=2) + "\n")
        return
    rows = []
    if args.concurrent:
        passed = [a for a in sys.argv[1:] if a not in args.entries and a != "--concurrent"]
        procs = [subprocess.Popen([sys.executable, __file__, *passed, "--only-train", entry])
                 for entry in args.entries]
        failed = [entry for entry, p in zip(args.entries, procs, strict=True) if p.wait() != 0]
        if failed:
            raise SystemExit(f"training failed for {', '.join(failed)}")
        for entry in args.entries:
            arch, _ = parse_entry(entry, args.epochs)
            rows.append(json.loads((run_dir(args.out, arch, args.dataset) / "plan_row.json").read_text()))
    else:
        rows = [train_entry(args, entry) for entry in args.entries]
    for row in rows:
        row.update(deployed_accuracy(args, row))
        print(f"[{row['arch']}] generated C on the host: {row['c_accuracy']:.2%} on {row['c_samples']} test images, "
              f"bit for bit the reference's (PyTorch model: {row['pytorch_accuracy_same_images']:.2%})", flush=True)
    table = markdown(rows)
    (args.out / "plan.md").write_text(table + "\n")
    (args.out / "plan.json").write_text(json.dumps(rows, indent=2) + "\n")
    plot_curves(rows, args.out / "curves.png")
    print(table)


if __name__ == "__main__":
    main()
