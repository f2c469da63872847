"""The paper's ImageNet networks on the Raspberry Pi 3B's core: exact instructions on aarch64 (qemu-aarch64
-cpu cortex-a53) beside the float32 baseline, flash, arena and storage next to the IR-Net paper's figures.

The paper (Qin et al., CVPR 2020, deployment section) ran ResNet-18 with daBNN on a Raspberry Pi 3B (Cortex-A53,
one thread): the 1W/1A model about 5.4x faster than full precision and 11.1x smaller (about 33.7 vs 374.1 Mbit).
Those are wall-clock milliseconds against daBNN's float path; ours are instruction counts against irnet-edge's
own float32 baseline (the same network with every binary conv as a float32 conv on ±1), labelled as such.

Weights are seeded and BatchNorm statistics random (no ImageNet here): counts do not depend on weights, and each
bench checks its logits bit for bit against the reference executor before it counts. The float32 baseline of
ResNet-34 is 87 MB of C constants; building it takes several minutes.

    python benchmarks/imagenet_bench.py [--arch resnet18_imagenet] [--no-baseline]

Writes benchmarks/results/imagenet.json and imagenet.md.
"""
import argparse
import json
from pathlib import Path

import torch

import irnet_edge
from irnet_edge.codegen.planner import plan
from irnet_edge.nn import build_model, zoo_spec
from irnet_edge.nn.checkpoint import Checkpoint
from irnet_edge.nn.summary import storage_mbit, summarize

RESULTS = Path(__file__).parent / "results"
PAPER = {"resnet18_imagenet": {"float32_mbit": 374.1, "binary_mbit": 33.7, "speedup_wall_clock": 5.4,
                               "smaller": 11.1}}


def measure(arch: str, baseline: bool) -> dict:
    spec = zoo_spec(arch)
    torch.manual_seed(0)
    module = build_model(spec).eval()
    generator = torch.Generator().manual_seed(0)
    for m in module.modules():
        if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
            m.running_mean.normal_(0, 0.1, generator=generator)
            m.running_var.uniform_(0.5, 2.0, generator=generator)
    ckpt = Checkpoint(spec=spec, state_dict=module.state_dict(), ede={"k": 1.0, "t": 1.0}, config={"arch": arch})
    model = irnet_edge.convert(ckpt)
    rows = summarize(build_model(spec), (3, 224, 224))
    result = model.bench(target="cortex-a", isa="aarch64", baseline=baseline, log=print).to_json()
    binary = result["binary"]
    per_kind: dict[str, int] = {}
    for layer in binary["layers"]:
        per_kind[layer["kind"]] = per_kind.get(layer["kind"], 0) + layer["instructions"]
    return {
        "arch": arch, "binary_params": sum(r.binary_params for r in rows),
        "float_params": sum(r.float_params for r in rows), "storage_mbit": storage_mbit(rows),
        "paper": PAPER.get(arch), "arena_bytes": int(plan(model.graph)[1]), "weight_bytes": model.weight_bytes,
        "instructions": binary["instructions"],
        "baseline_instructions": result["baseline"]["instructions"] if result["baseline"] else None,
        "model_flash_bytes": binary["model_flash_bytes"],
        "baseline_model_flash_bytes": result["baseline"]["model_flash_bytes"] if result["baseline"] else None,
        "ratios": result["baseline_over_binary"],
        "share_outside_binary_convs": round(1 - per_kind.get("bconv", 0) / binary["instructions"], 4),
        "instructions_per_kind": per_kind, "bench": result}


def markdown(rows: list[dict]) -> str:
    lines = ["| model | binary params | FP params | storage float32 / binary (Mbit) | paper (Mbit) | model flash "
             "binary / float32 (B) | arena (B) | instructions binary / float32 (aarch64, cortex-a53) | ratio | "
             "outside binary convs |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        paper = f"{r['paper']['float32_mbit']} / {r['paper']['binary_mbit']}" if r["paper"] else "-"
        ratio = r["ratios"] or {}
        lines.append(
            f"| {r['arch']} | {r['binary_params']:,} | {r['float_params']:,} | {r['storage_mbit']['float32']:.1f} / "
            f"{r['storage_mbit']['binary']:.1f} | {paper} | {r['model_flash_bytes']:,} / "
            f"{r['baseline_model_flash_bytes'] or 0:,} ({ratio.get('model_flash_bytes', '-')}x) | "
            f"{r['arena_bytes']:,} | {r['instructions']:,} / {r['baseline_instructions'] or 0:,} | "
            f"{ratio.get('instructions', '-')}x | {r['share_outside_binary_convs']:.1%} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", action="append", choices=("resnet18_imagenet", "resnet34_imagenet"))
    parser.add_argument("--no-baseline", action="store_true", help="count the binary model only")
    args = parser.parse_args()
    rows = [measure(arch, not args.no_baseline) for arch in args.arch or ("resnet18_imagenet", "resnet34_imagenet")]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "imagenet.json").write_text(json.dumps(rows, indent=1) + "\n")
    (RESULTS / "imagenet.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
