"""Per-checkpoint deployment numbers for the README: flash bytes of the weights against the 1-bit minimum,
arena bytes, reference-vs-model agreement on the whole test set, and samples verified bit-exact in C.

    python benchmarks/export_report.py runs/mcu_m4-mnist/model.pt --data-dir ../shared/data/mnist
"""
import argparse

import torch

from irnet_edge.codegen import get_target
from irnet_edge.codegen.schedule import schedule
from irnet_edge.data import load_split
from irnet_edge.ir import export, ops
from irnet_edge.nn.checkpoint import load_checkpoint
from irnet_edge.nn.layers import IRConv2d, IRLinear
from irnet_edge.verify.compare import agreement
from irnet_edge.verify.host import verify


def one_bit_minimum(model: torch.nn.Module) -> int:
    binary = sum(m.weight.numel() for m in model.modules() if isinstance(m, (IRConv2d, IRLinear)))
    total = sum(p.numel() for p in model.parameters())
    return binary // 8 + (total - binary) * 4


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--data-dir")
    parser.add_argument("--samples", type=int, default=1000, help="inputs verified bit for bit in C")
    args = parser.parse_args()
    print("| checkpoint | dataset | weights (flash) | 1-bit minimum | arena (RAM) | top-1 agreement | "
          "largest logit diff | bit-exact |")
    print("|---|---|---|---|---|---|---|---|")
    for path in args.checkpoints:
        ckpt = load_checkpoint(path)
        graph = export(ckpt)
        host = schedule(graph, get_target("host"))  # the fused ops the host C runs: its arena and constants
        test = load_split(ckpt.config["dataset"], "test", args.data_dir)
        top1, worst = agreement(ckpt, graph, test.images)
        n = min(args.samples, len(test))
        result = verify(graph, "model", ckpt.sha256, test.images[:n].permute(0, 2, 3, 1).contiguous())
        print(f"| {path} | {ckpt.config['dataset']} | {ops.weight_bytes(host.graph):,} | "
              f"{one_bit_minimum(ckpt.build()):,} | {host.arena:,} | {top1:.2%} ({len(test)}) | {worst:.2g} | "
              f"{result.exact}/{result.samples} |", flush=True)


if __name__ == "__main__":
    main()
