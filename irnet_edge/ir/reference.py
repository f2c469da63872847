"""The reference executor: runs a deployment graph in PyTorch with exactly the deployed arithmetic.

Binary parts are integers (dot products of +/-1 values, computed in float64, exact for |d| < 2^53);
float parts are float32 elementwise ops in the order docs/arithmetic.md fixes, each a separate op on
fully expanded operands (no reductions, no fused multiply-add, no scalar fast paths), so every value
equals what the C computes bit for bit.

Tensors are batched and pixel-major like the C: f32 as (N, H, W, C) float32, bits as (N, H, W, C) bool
"negative" flags (packed only to compare with C dumps).
"""
import numpy as np
import torch
import torch.nn.functional as F

from . import ops
from .bits import unpack_negative
from .graph import Graph, Op


def _full(values: np.ndarray, shape) -> torch.Tensor:
    """Per-channel constants broadcast over the last axis: a full-shaped (strided) operand, never a scalar."""
    return torch.from_numpy(np.ascontiguousarray(values)).reshape(*(1,) * (len(shape) - 1), -1).expand(shape)


def _act(y: torch.Tensor, act: str) -> torch.Tensor:
    if act == "hardtanh":
        return torch.where(y < -1, torch.full_like(y, -1.0), torch.where(y > 1, torch.full_like(y, 1.0), y))
    if act == "relu":
        return torch.where(y > 0, y, torch.zeros_like(y))
    if act == "sign":
        return torch.where(y < 0, torch.full_like(y, -1.0), torch.full_like(y, 1.0))
    return y


def _affine(acc: torch.Tensor, op: Op) -> torch.Tensor:
    y = acc * _full(op.consts["mult"], acc.shape)
    y = y + _full(op.consts["add"], acc.shape)
    return _act(y, op.attrs["act"])


def _windows(x: torch.Tensor, k: int, stride: int, pad: int, fill):
    """Yield (ky, kx, slice (N, Ho, Wo, C), valid (1, Ho, Wo, 1)) for every kernel tap."""
    n, h, w, c = x.shape
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    padded = F.pad(x.permute(0, 3, 1, 2), (pad, pad, pad, pad), value=fill).permute(0, 2, 3, 1)
    valid = F.pad(torch.ones(1, 1, h, w), (pad, pad, pad, pad)).permute(0, 2, 3, 1).bool()
    for ky in range(k):
        for kx in range(k):
            rows = slice(ky, ky + stride * (ho - 1) + 1, stride)
            cols = slice(kx, kx + stride * (wo - 1) + 1, stride)
            yield ky, kx, padded[:, rows, cols, :], valid[:, rows, cols, :]


def conv_f32(x: torch.Tensor, op: Op) -> torch.Tensor:
    k, stride, pad = op.attrs["k"], op.attrs["stride"], op.attrs["pad"]
    weight = torch.from_numpy(op.consts["weight"])  # (Cout, k, k, Cin)
    acc = None
    for ky, kx, xs, valid in _windows(x, k, stride, pad, 0.0):
        if acc is None:
            acc = torch.zeros(*xs.shape[:3], weight.shape[0], dtype=torch.float32)
        keep = valid.expand_as(acc)
        for ci in range(x.shape[3]):
            prod = xs[..., ci:ci + 1].expand_as(acc) * _full(weight[:, ky, kx, ci].numpy(), acc.shape)
            acc = torch.where(keep, acc + prod, acc)
    y = acc * _full(op.consts["mult"], acc.shape)
    y = y + _full(op.consts["add"], acc.shape)
    if op.attrs["out"] == "bits":
        return y < 0
    return _act(y, op.attrs["act"])


def binary_dot(x_negative: torch.Tensor, weight_words: np.ndarray, k: int, stride: int, pad: int,
               pad_one: bool) -> torch.Tensor:
    """Integer +/-1 dot products (N, Ho, Wo, Cout); padded taps are 0 (zero padding) or +1."""
    cin = x_negative.shape[3]
    w = 1.0 - 2.0 * torch.from_numpy(unpack_negative(weight_words, cin)).double()  # (Cout, k, k, Cin)
    x = 1.0 - 2.0 * x_negative.double()
    dot = None
    for ky, kx, xs, _ in _windows(x, k, stride, pad, 1.0 if pad_one else 0.0):
        term = torch.einsum("nhwc,oc->nhwo", xs, w[:, ky, kx, :])
        dot = term if dot is None else dot + term
    return dot.round().long()


def bconv(x: torch.Tensor, op: Op) -> torch.Tensor:
    """A fused pool of a float output pools the dot products, then transforms (docs/arithmetic.md "Fused ops")."""
    a = op.attrs
    dot = binary_dot(x, op.consts["weight"], a["k"], a["stride"], a["pad"], bool(a["pad_one"]))
    if a["out"] == "bits":
        return dot < torch.from_numpy(op.consts["threshold"]).long()
    if "pool" in a:
        window = Op("maxpool", op.name, [], "", {"k": a["pool"], "stride": a["pool"], "pad": 0},
                    {"min_mask": op.consts.get("pool_min", np.zeros(dot.shape[3], np.uint8))})
        dot = maxpool_f32(dot.double(), window).long()
    return _affine(dot.float(), op)


def _pool_geometry(op: Op) -> tuple[int, int, int]:
    """(k, stride, pad) of a pooling op; ops written before overlapping pooling carry only k (stride k, no pad)."""
    k = op.attrs["k"]
    return k, op.attrs.get("stride", k), op.attrs.get("pad", 0)


def _pool_taps(x: torch.Tensor, op: Op):
    """Yield (slice (N, Ho, Wo, C), inside (1, Ho, Wo, 1)) for every window position in row-major order; a
    padded position (outside the map) never takes part, whatever its slice holds."""
    for _, _, xs, valid in _windows(x, *_pool_geometry(op), 0):
        yield xs, valid


def maxpool_bits(x: torch.Tensor, op: Op) -> torch.Tensor:
    """AND of the negative flags inside the window (the max of +/-1), OR (the min) where or_mask is set."""
    use_or = torch.from_numpy(unpack_negative(op.consts["or_mask"], x.shape[3]))
    all_neg = any_neg = None
    for xs, valid in _pool_taps(x.to(torch.uint8), op):
        neg = xs.bool()
        all_tap, any_tap = neg | ~valid, neg & valid
        all_neg = all_tap if all_neg is None else all_neg & all_tap
        any_neg = any_tap if any_neg is None else any_neg | any_tap
    return torch.where(use_or, any_neg, all_neg)


def maxpool_f32(x: torch.Tensor, op: Op) -> torch.Tensor:
    """best = the window's first pixel inside the map, then best = v where v > best (v < best for min channels)."""
    use_min = torch.from_numpy(op.consts["min_mask"].astype(bool))
    best = have = None
    for v, valid in _pool_taps(x, op):
        valid = valid.expand_as(v)
        if best is None:
            best, have = torch.where(valid, v, torch.zeros_like(v)), valid
            continue
        better = torch.where(use_min, v < best, v > best)
        best = torch.where(valid & (~have | better), v, best)
        have = have | valid
    return best


def avgpool2d(x: torch.Tensor, op: Op) -> torch.Tensor:
    """s = 0; s = s + v over the window's pixels inside the map in row-major order; out = s / float(n), n the
    op's divisor, or (divisor 0) the number of those pixels."""
    total = count = None
    for v, valid in _pool_taps(x, op):
        if total is None:
            total = torch.zeros_like(v)
            count = torch.zeros(valid.shape, dtype=torch.int64)
        total = torch.where(valid.expand_as(v), total + v, total)
        count = count + valid.long()
    divisor = op.attrs["divisor"]
    n = torch.full_like(total, float(divisor)) if divisor > 0 else count.float().expand_as(total).contiguous()
    return total / n


def avgpool(x: torch.Tensor, op: Op) -> torch.Tensor:
    total = torch.zeros(x.shape[0], 1, 1, x.shape[3])
    for h in range(x.shape[1]):
        for w in range(x.shape[2]):
            total = total + x[:, h:h + 1, w:w + 1, :]
    return total / torch.full_like(total, float(x.shape[1] * x.shape[2]))


def shortcut_a(x: torch.Tensor, op: Op) -> torch.Tensor:
    pad = op.attrs["pad"]
    sub = x[:, ::2, ::2, :]
    out = torch.zeros(*sub.shape[:3], sub.shape[3] + 2 * pad)
    out[..., pad:pad + sub.shape[3]] = sub
    return out


def normalize(x: torch.Tensor, op: Op) -> torch.Tensor:
    v = x.float()
    v = v / torch.full_like(v, 255.0)
    v = v - _full(op.consts["mean"], v.shape)
    return v / _full(op.consts["std"], v.shape)


def normalize_table(op: Op) -> np.ndarray:
    """The normalize op's output for every pixel value, float32 (channels, 256): [c][v] is channel c's value of
    pixel value v, computed by normalize itself (a normalisation-fused conv reads its input through it)."""
    channels = op.consts["mean"].shape[0]
    values = torch.arange(256, dtype=torch.uint8)[None, None, :, None].expand(1, 1, 256, channels)
    return np.ascontiguousarray(normalize(values, op)[0, 0].T.numpy().astype(np.float32))


def prefusion(ins: list[torch.Tensor], op: Op) -> list[torch.Tensor]:
    """The inputs op's own arithmetic reads: a normalisation-fused conv (constant "norm", docs/arithmetic.md
    "Fused ops") looks its uint8 input up in the table, giving the normalised map; other ops' inputs as given."""
    if "norm" not in op.consts:
        return ins
    table = torch.from_numpy(op.consts["norm"])
    pixels = ins[0].long()
    return [table[torch.arange(table.shape[0]).expand_as(pixels), pixels], *ins[1:]]


def fusion(y: torch.Tensor, ins: list[torch.Tensor], op: Op) -> torch.Tensor:
    """What a conv fuses into its output y (docs/arithmetic.md, "Fused ops"), in this order: the residual add
    and its activation, then the tiling max-pool (which a binary conv with float output has applied to its dot
    products already). y: the conv's own output over all its positions; a fused pool
    drops the rows and columns no window covers, as the C never computes them."""
    if "residual_act" in op.attrs:
        y = _act(y + ins[1], op.attrs["residual_act"])
    if "pool" in op.attrs and not (op.kind == "bconv" and op.attrs["out"] == "f32"):  # bconv pooled its dots
        k = op.attrs["pool"]
        window = Op("maxpool", op.name, [], "", {"k": k, "stride": k, "pad": 0},
                    {"min_mask": op.consts.get("pool_min"), "or_mask": op.consts.get("pool_or")})
        y = maxpool_bits(y, window) if y.dtype == torch.bool else maxpool_f32(y, window)
    return y


def run(graph: Graph, inputs: torch.Tensor, keep_all: bool = False) -> dict[str, torch.Tensor] | torch.Tensor:
    """inputs: uint8 (N, H, W, C). Returns the logits (N, classes) float32, or every tensor if keep_all."""
    values = {graph.input: inputs}
    remaining = {}
    for op in graph.ops:
        for name in op.inputs:
            remaining[name] = remaining.get(name, 0) + 1
    for op in graph.ops:
        ins = [values[n] for n in op.inputs]
        values[op.output] = fusion(ops.get(op.kind).reference(prefusion(ins, op), op), ins, op)
        if op.sign:  # a fused sign_pack
            values[op.sign] = values[op.output] < 0
        if not keep_all:
            for name in op.inputs:
                remaining[name] -= 1
                if remaining[name] == 0 and name != graph.input:
                    del values[name]
    if keep_all:
        return values
    return values[graph.output].reshape(inputs.shape[0], -1)


def run_batched(graph: Graph, inputs: torch.Tensor, batch: int = 500) -> torch.Tensor:
    return torch.cat([run(graph, inputs[i:i + batch]) for i in range(0, inputs.shape[0], batch)])
