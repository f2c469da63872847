"""A per-layer table in the spirit of larq.models.summary: shapes, parameters, deployed bytes, MACs.

Deployed bytes here are an estimate from the modules alone (nn/ never sees the exported graph): a binary
conv or linear stores, per output channel, its kh*kw taps each as ceil(Cin/32) 32-bit words, plus one
float32 multiplier and one float32 bias (the fused output transform that absorbs the Libra-PB scale and the
BatchNorm after it). Full-precision weights are float32. A BatchNorm right after a conv or linear, or right
before the classifier, folds into it and costs nothing. `CompiledModel.summary` (`irnet-edge summary`)
replaces the estimate with the exported graph's constant bytes (ir/ops.py's accounting: int32 thresholds,
pool masks and all), whose total is codegen's manifest weight_bytes.
"""
import math
from dataclasses import dataclass

import torch
from torch import nn

from .layers import InputNorm, IRConv2d, IRLinear

WORD_BITS = 32


@dataclass
class LayerRow:
    name: str
    kind: str
    output_shape: tuple[int, ...]
    binary_params: int = 0
    float_params: int = 0
    deployed_bytes: int = 0
    binary_macs: int = 0
    float_macs: int = 0


def _leaves(model: nn.Module):
    return [(name, m) for name, m in model.named_modules() if not list(m.children())]


def _binary_row(m: nn.Module, out_shape, row: LayerRow) -> None:
    weight = m.weight
    taps = weight[0].numel() // weight.shape[1]  # kh*kw for a conv, 1 for a linear
    words = math.ceil(weight.shape[1] / WORD_BITS)
    row.binary_params = weight.numel()
    row.float_params = 0 if m.bias is None else m.bias.numel()
    row.deployed_bytes = weight.shape[0] * (taps * words * 4 + 8)
    macs = weight.numel() * math.prod(out_shape[2:])
    if m.binary_act:
        row.binary_macs = macs
    else:
        row.float_macs = macs


def summarize(model: nn.Module, input_shape: tuple[int, int, int]) -> list[LayerRow]:
    rows: list[LayerRow] = []
    shapes: dict[str, tuple[int, ...]] = {}
    hooks = [m.register_forward_hook(lambda mod, inp, out, n=name: shapes.__setitem__(n, tuple(out.shape)))
             for name, m in _leaves(model)]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    executed = [(name, m) for name, m in _leaves(model) if name in shapes]  # an empty shortcut runs nothing
    for i, (name, m) in enumerate(executed):
        # a max-pool between a conv and its BatchNorm does not stop the fold (thresholds commute with it)
        previous = next((p for _, p in reversed(executed[:i]) if not isinstance(p, nn.MaxPool2d)), None)
        following = executed[i + 1][1] if i + 1 < len(executed) else None
        out_shape = shapes[name]
        row = LayerRow(name, type(m).__name__, out_shape[1:])
        if isinstance(m, (IRConv2d, IRLinear)):
            _binary_row(m, out_shape, row)
        elif isinstance(m, (nn.Conv2d, nn.Linear)):
            row.float_params = sum(p.numel() for p in m.parameters())
            row.deployed_bytes = 4 * row.float_params
            row.float_macs = m.weight.numel() * math.prod(out_shape[2:])
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            row.float_params = sum(p.numel() for p in m.parameters())  # gamma and beta; none when affine=False
            folded = isinstance(previous, (nn.Conv2d, nn.Linear)) or isinstance(following, nn.Linear)
            row.deployed_bytes = 0 if folded else 8 * m.num_features
        elif isinstance(m, InputNorm):
            row.deployed_bytes = 8 * m.mean.numel()
        rows.append(row)
    return rows


def format_summary(rows: list[LayerRow], title: str) -> str:
    header = ("layer", "type", "output shape", "bin params", "fp params", "bytes", "bin MACs", "fp MACs")
    body = [(r.name, r.kind, "x".join(map(str, r.output_shape)), f"{r.binary_params:,}", f"{r.float_params:,}",
             f"{r.deployed_bytes:,}", f"{r.binary_macs:,}", f"{r.float_macs:,}") for r in rows]
    tb, tf = sum(r.binary_params for r in rows), sum(r.float_params for r in rows)
    tbytes = sum(r.deployed_bytes for r in rows)
    bm, fm = sum(r.binary_macs for r in rows), sum(r.float_macs for r in rows)
    totals = ("total", "", "", f"{tb:,}", f"{tf:,}", f"{tbytes:,}", f"{bm:,}", f"{fm:,}")
    widths = [max(len(str(line[i])) for line in [header, *body, totals]) for i in range(len(header))]

    def fmt(line):
        cells = enumerate(zip(line, widths, strict=True))
        return "  ".join(str(c).ljust(w) if i < 3 else str(c).rjust(w) for i, (c, w) in cells)

    rule = "-" * len(fmt(header))
    share = bm / (bm + fm) if bm + fm else 0.0
    one_bit_min = tb / 8 + tf * 4
    lines = [title, rule, fmt(header), rule, *map(fmt, body), rule, fmt(totals), rule,
             f"binary share of MACs: {share:.2%}",
             f"deployed weight bytes: {tbytes:,} ({tbytes / 1024:.1f} KiB); 1-bit minimum {one_bit_min:,.0f}; "
             f"float32 model would need {(tb + tf) * 4:,} bytes",
             storage_line(rows)]
    return "\n".join(lines)


def storage_mbit(rows: list[LayerRow]) -> dict[str, float]:
    """Model storage in Mbit (10^6 bits), as the IR-Net paper counts it: `float32` (every parameter at 32 bits),
    `binary` (binary weights at 1 bit, every other parameter, BatchNorm's included, at 32) and `deployed` (the
    bytes irnet-edge deploys: bit-packed filters with their folded per-channel transforms, float layers)."""
    tb, tf = sum(r.binary_params for r in rows), sum(r.float_params for r in rows)
    return {"float32": (tb + tf) * 32 / 1e6, "binary": (tb + 32 * tf) / 1e6,
            "deployed": sum(r.deployed_bytes for r in rows) * 8 / 1e6}


def storage_line(rows: list[LayerRow]) -> str:
    mbit = storage_mbit(rows)
    ratio = mbit["float32"] / mbit["binary"] if mbit["binary"] else 0.0
    return (f"storage: float32 model {mbit['float32']:.1f} Mbit; binary model {mbit['binary']:.1f} Mbit (1 bit per "
            f"binary weight, 32 per other parameter, as the IR-Net paper counts; {ratio:.1f}x smaller); as deployed "
            f"{mbit['deployed']:.1f} Mbit")
