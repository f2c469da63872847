"""The full benchmark matrix: zoo models x emulated targets, each beside its float32 baseline.

Writes benchmarks/results/matrix.json (every `irnet-edge bench --json` result), matrix.md (the tables the
README shows) and layers.png (per-layer instructions, binary vs float32). Trained checkpoints are used where
given; other zoo models are benched untrained (seeded weights): instruction counts do not depend on the
weights' values, only on the shapes.

    python benchmarks/bench_matrix.py --checkpoint runs/mcu_m4-fashion-mnist/model.pt \
        --checkpoint runs/mcu_m0-fashion-mnist/model.pt --checkpoint runs/gpu-resnet20/r20/model.pt
"""
import argparse
import json
import tempfile
from pathlib import Path

import matplotlib
import torch

from irnet_edge.bench import bench
from irnet_edge.bench.report import baseline_per_layer
from irnet_edge.data import get_dataset_info
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.ir import export
from irnet_edge.nn import build_model, zoo_spec
from irnet_edge.nn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from irnet_edge.verify.deployment import Deployment, resolve

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).parent / "results"
M = {"m0+": ("mps2-an385", "cortex-m0plus"), "m3": ("mps2-an385", None), "m4": ("mps2-an386", None),
     "m7": ("mps2-an500", None), "m33": ("mps2-an505", None), "m55": ("mps3-an547", None)}
LINUX = ("aarch64", "armv7", "host")
# model -> (dataset for an untrained copy, targets, whether to build the float32 baseline)
MATRIX = {
    "mcu_m4": ("fashion-mnist", [*M, *LINUX], True),
    "mcu_m0": ("fashion-mnist", [*M, *LINUX], True),
    "resnet20": ("cifar10", ["m4", "m55", *LINUX], True),
    "vgg_small": ("cifar10", ["aarch64", "armv7"], True),
    "resnet18": ("cifar10", ["aarch64"], False),  # its float32 baseline is 45 MB of C constants
}


def target_spec(name: str) -> Deployment:
    if name in M:
        board, cpu = M[name]
        return resolve("cortex-m", board=board, cpu=cpu)
    return resolve("host") if name == "host" else resolve("cortex-a", isa=name)


def untrained(arch: str, dataset: str, folder: Path) -> Checkpoint:
    info = get_dataset_info(dataset)
    spec = zoo_spec(arch, info.channels, info.size, info.num_classes, info.mean, info.std)
    torch.manual_seed(0)
    model = build_model(spec).eval()
    path = folder / f"{arch}.pt"
    save_checkpoint(Checkpoint(spec=spec, state_dict=model.state_dict(), ede={"k": 1.0, "t": 1.0},
                               config={"arch": arch, "dataset": dataset, "untrained": True}), path)
    return load_checkpoint(path)


def _n(value) -> str:
    return f"{value:,}" if value else "-"


def _x(value) -> str:
    return f"{value:.1f}x" if value else "-"


def summary_rows(results: list[dict]) -> list[str]:
    rows = ["| model | target | instructions | float32 baseline | ratio | model flash (B) | baseline flash (B) | "
            "ratio | arena (B) | model RAM (B) | baseline RAM (B) | RAM ratio | Cortex-M4 cycles (estimate) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        b, f, ratio = r["binary"], r["baseline"] or {}, r["baseline_over_binary"] or {}
        cycles = (b["cycle_estimate"] or {}).get("cycles")
        rows.append(f"| {r['model']} | {r['label']} | {_n(b['instructions'])} | {_n(f.get('instructions'))} | "
                    f"{_x(ratio.get('instructions'))} | {_n(b['model_flash_bytes'])} | "
                    f"{_n(f.get('model_flash_bytes'))} | {_x(ratio.get('model_flash_bytes'))} | "
                    f"{_n(b['arena_bytes'])} | {_n(b['model_ram_bytes'])} | {_n(f.get('model_ram_bytes'))} | "
                    f"{_x(ratio.get('model_ram_bytes'))} | {_n(cycles)} |")
    return rows


def conv_rows(results: list[dict]) -> list[str]:
    """Binary MACs per instruction of every binary conv, by model and target."""
    rows = ["| model | target | layer | output | binary MACs | instructions | bMAC/instr |",
            "|---|---|---|---|---|---|---|"]
    for r in results:
        if r["label"] == "host":
            continue
        for layer in r["binary"]["layers"]:
            if layer["kind"] == "bconv":
                rows.append(f"| {r['model']} | {r['label']} | {layer['index']} | {layer['output']} | "
                            f"{layer['binary_macs']:,} | {layer['instructions']:,} | "
                            f"{layer['binary_macs_per_instruction']:.2f} |")
    return rows


def chart(results: list[dict], path: Path) -> None:
    picks = [r for r in results if r["baseline"] and (r["model"], r["label"]) in
             {("mcu_m4", "m4"), ("resnet20", "aarch64")}]
    if not picks:
        return
    fig, axes = plt.subplots(len(picks), 1, figsize=(11, 4 * len(picks)), squeeze=False)
    for ax, r in zip(axes[:, 0], picks, strict=True):
        layers = r["binary"]["layers"]
        x = range(len(layers))
        ax.bar([i - 0.2 for i in x], [L["instructions"] for L in layers], 0.4, label="binary (irnet-edge)")
        ax.bar([i + 0.2 for i in x], baseline_per_layer(layers, r["baseline"]["layers"]), 0.4,
               label="float32 baseline")
        ax.set_yscale("log")
        ax.set_xticks(list(x), [f"{L['index']} {L['kind']}" for L in layers], rotation=70, fontsize=7)
        ax.set_ylabel("instructions")
        ax.set_title(f"{r['model']} on {r['label']}: {r['binary']['instructions']:,} vs "
                     f"{r['baseline']['instructions']:,} instructions per inference")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", action="append", default=[], help="a trained checkpoint (repeatable)")
    parser.add_argument("--models", default=",".join(MATRIX), help="comma-separated subset of the matrix")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    trained = {}
    for path in args.checkpoint:
        ckpt = load_checkpoint(path)
        trained[ckpt.spec["name"]] = ckpt
    results = []
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for model in args.models.split(","):
            dataset, targets, with_baseline = MATRIX[model]
            ckpt = trained.get(model) or untrained(model, dataset, Path(tmp))
            graph = export(ckpt)
            for label in targets:
                try:
                    result = bench(graph, model, ckpt.sha256, target_spec(label), baseline=with_baseline).to_json()
                except IrnetEdgeError as exc:  # e.g. the float32 baseline does not fit the board's memory
                    if not with_baseline:
                        raise
                    result = bench(graph, model, ckpt.sha256, target_spec(label)).to_json()
                    result["baseline_skipped"] = str(exc)
                result["label"] = label
                result["weights"] = "untrained (seeded)" if ckpt.config.get("untrained") else "trained"
                results.append(result)
                ratio = (result["baseline_over_binary"] or {}).get("instructions")
                print(f"{model:>10} {label:>8}: {result['binary']['instructions']:>13,} instructions"
                      + (f", float32 baseline {ratio:.2f}x" if ratio else ""), flush=True)
    (args.out / "matrix.json").write_text(json.dumps(results, indent=1) + "\n")
    toolchains = sorted({f"{r['binary']['toolchain']['version']}: {r['binary']['toolchain']['cflags']}"
                         for r in results})
    md = ["# irnet-edge benchmark matrix", "",
          "Instructions per inference counted exactly by `irnet-edge bench` (QEMU TCG plugin between the model's "
          "bench marks; identical on every run), for one seeded random input; every build's logits were checked "
          "bit for bit against the reference first. Flash and RAM: the model's own symbols (code, constants, "
          "arena) in the linked binary; the arena is the planned activation memory, part of the model RAM; RAM "
          "ratio: the float32 baseline's model RAM over the binary model's (peak static RAM; stack not "
          "counted). The binary model runs its target's fused ops; the float32 baseline is the same network "
          "op by op, unfused, in float32. Cortex-M4 cycles: an estimate from the TRM's instruction timings for "
          "zero-wait-state memory, not a measurement.", "", *summary_rows(results), "",
          *[f"- {r['model']} on {r['label']}: no float32 baseline ({r['baseline_skipped'].split(':')[0]})."
            for r in results if r.get("baseline_skipped")], "",
          "## Binary convolutions", "", *conv_rows(results), "", "## Toolchains and flags", "",
          *[f"- {t}" for t in toolchains], ""]
    (args.out / "matrix.md").write_text("\n".join(md))
    chart(results, args.out / "layers.png")
    print(f"wrote {args.out}: matrix.md, matrix.json, layers.png")


if __name__ == "__main__":
    main()
