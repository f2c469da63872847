"""Fusion: the exported graph rewritten into fewer ops that compute the same bits (docs/arithmetic.md, "Fused ops").

The exporter's graph is the oracle; a target's C runs the fused graph, and the reference executor runs either
(tests hold the two equal). Three rewrites, each only where the arithmetic stays the same value for value:
- pool (float output) and pool_bits (bits output): a conv (conv_f32 or bconv) whose only consumer is a max-pool
  with windows that tile the map (stride = kernel, no padding) computes only the outputs some window covers and
  pools them as it goes; a binary conv with float output pools its integer dot products instead and transforms
  only each window's winner (pool_min then marks the channels that take the smallest dot product);
- residual: a conv with float output whose only consumer is a residual add takes the add's other operand and its
  activation, and runs where the add ran (after the shortcut is computed); its output may then reuse the
  shortcut's memory (the planner decides);
- sign: a conv with float output (with or without a fused residual) whose output is packed by a sign_pack also
  writes those bits;
- norm: a float conv whose input is the normalised map and its only reader reads the uint8 pixels instead,
  through a table of the normalised value of each pixel value and channel (the same floats the normalize op
  computes), band by band of `norm_rows` output rows (irnet_conv_f32_u8): the normalised map is never stored.
"""
from dataclasses import replace

import numpy as np

from . import reference
from .graph import Graph, Op

FUSIONS = ("pool", "pool_bits", "residual", "sign", "norm")
BAND_ROWS = 8  # output rows per band of a normalisation-fused conv (rounded up to its fused pool)
_CONVS = ("conv_f32", "bconv")


def _joined(source: str, more: str) -> str:
    """The sources of two ops merged into one, without repeating a layer both name (a pool fused into the conv
    group whose source names it already)."""
    parts = [part for group in source.split("; ") for part in group.split(", ")]
    return source if all(part in parts for part in more.split(", ")) else f"{source}; {more}"


def _plain_conv(op: Op) -> bool:
    """A conv with nothing fused into it yet."""
    return op.kind in _CONVS and "pool" not in op.attrs and "residual_act" not in op.attrs and not op.sign


def _tiling_pool(op: Op, kinds: tuple[str, ...]) -> bool:
    if op.kind not in kinds:
        return False
    k = op.attrs["k"]
    return op.attrs.get("stride", k) == k and op.attrs.get("pad", 0) == 0


def _dot_pool_mask(op: Op, min_mask: np.ndarray) -> dict | None:
    """A binary conv with float output pools its dot products d (docs/arithmetic.md, "Fused ops"): its value
    act(fl(fl(float(d) * m_c) + b_c)) never decreases with d where m_c >= 0 and never increases where m_c < 0 (each
    rounding and the activation keep order), so a window's max (or min) value is the value of its largest or
    smallest d, the same float. pool_min marks the channels that take the smallest d (none: no pool_min). None
    where that could give other bits: a non-finite m_c or b_c, or m_c = ±0 with b_c = -0.0, the one case whose
    values tie as +0.0 and -0.0 (the pool keeps the first, which only the position tells)."""
    mult, add = op.consts["mult"].astype(np.float32), op.consts["add"].astype(np.float32)
    if not (np.isfinite(mult).all() and np.isfinite(add).all()) or ((mult == 0) & np.signbit(add) & (add == 0)).any():
        return None
    smallest = (mult >= 0) == min_mask.astype(bool)
    return {"pool_min": smallest.astype(np.uint8)} if smallest.any() else {}


def _fuse_pools(graph: Graph, kinds: tuple[str, ...]) -> list[Op]:
    consumers, ops = graph.consumers(), list(graph.ops)
    for index, op in enumerate(graph.ops):
        users = consumers.get(op.output, [])
        if not _plain_conv(op) or len(users) != 1 or op.output == graph.output:
            continue
        pool = graph.ops[users[0]]
        if not _tiling_pool(pool, kinds):
            continue
        if pool.kind == "maxpool_bits":
            mask = {"pool_or": pool.consts["or_mask"]}
        elif op.kind == "bconv":
            mask = _dot_pool_mask(op, pool.consts["min_mask"])
            if mask is None:
                continue
        else:
            mask = {"pool_min": pool.consts["min_mask"]}
        ops[index] = replace(op, output=pool.output, attrs={**op.attrs, "pool": pool.attrs["k"]},
                             consts={**op.consts, **mask}, source=_joined(op.source, pool.source))
        ops[users[0]] = None
    return [op for op in ops if op is not None]


def _fuse_residuals(graph: Graph) -> list[Op]:
    consumers, ops = graph.consumers(), list(graph.ops)
    for index, op in enumerate(graph.ops):
        users = consumers.get(op.output, [])
        if (not _plain_conv(op) or op.attrs.get("out") != "f32" or len(users) != 1 or op.output == graph.output
                or ops[users[0]] is not graph.ops[users[0]] or graph.ops[users[0]].kind != "add"):
            continue  # (an add already taken by its other operand's conv is not the original op any more)
        add = graph.ops[users[0]]
        other = [name for name in add.inputs if name != op.output]
        if len(other) != 1:  # x + x
            continue
        ops[users[0]] = replace(op, inputs=[*op.inputs, other[0]], output=add.output,
                                attrs={**op.attrs, "residual_act": add.attrs["act"]},
                                source=_joined(op.source, add.source))
        ops[index] = None
    return [op for op in ops if op is not None]


def _fuse_signs(graph: Graph) -> list[Op]:
    producers, ops = graph.producers(), list(graph.ops)
    for index, op in enumerate(graph.ops):
        if op.kind != "sign_pack" or op.inputs[0] == graph.input:
            continue
        maker_index = producers[op.inputs[0]]
        maker = ops[maker_index]
        if (maker is None or maker.kind not in _CONVS or maker.attrs.get("out") != "f32" or "pool" in maker.attrs
                or maker.sign or op.output == graph.output):
            continue
        ops[maker_index] = replace(maker, sign=op.output, source=_joined(maker.source, op.source))
        ops[index] = None
    return [op for op in ops if op is not None]


def _fuse_norms(graph: Graph) -> list[Op]:
    consumers, ops = graph.consumers(), list(graph.ops)
    for index, op in enumerate(graph.ops):
        users = consumers.get(op.output, [])
        if op.kind != "normalize" or len(users) != 1 or op.output == graph.output:
            continue
        conv = graph.ops[users[0]]
        if conv.kind != "conv_f32" or conv.inputs != [op.output] or "norm" in conv.consts:
            continue
        pool = int(conv.attrs.get("pool", 1))
        computed_rows = graph.tensor(conv.output).height * pool
        rows = min(computed_rows, -(-BAND_ROWS // pool) * pool)
        ops[users[0]] = replace(conv, inputs=list(op.inputs), attrs={**conv.attrs, "norm_rows": rows},
                                consts={**conv.consts, "norm": reference.normalize_table(op)},
                                source=_joined(op.source, conv.source))
        ops[index] = None
    return [op for op in ops if op is not None]


def fuse(graph: Graph, fusions: tuple[str, ...] = FUSIONS) -> Graph:
    """The graph with the named fusions applied (any of FUSIONS, in that order); the same tensors, fewer ops.
    Applying it to a fused graph changes nothing."""
    out = replace(graph, ops=list(graph.ops))
    pools = tuple(kind for name, kind in (("pool", "maxpool_f32"), ("pool_bits", "maxpool_bits")) if name in fusions)
    if pools:
        out = replace(out, ops=_fuse_pools(out, pools))
    for name, rewrite in (("residual", _fuse_residuals), ("sign", _fuse_signs), ("norm", _fuse_norms)):
        if name in fusions:
            out = replace(out, ops=rewrite(out))
    used = {graph.input, out.output} | {n for op in out.ops for n in (*op.inputs, op.output, op.sign) if n}
    out.tensors = {name: t for name, t in graph.tensors.items() if name in used}
    return out


def fused_parts(op: Op) -> list[str]:
    """What op fuses, in words ("normalize", "pool 2", "residual add", "sign"); empty for an op as exported."""
    return (["normalize"] if "norm" in op.consts else []) + (
        [f"pool {op.attrs['pool']}"] if "pool" in op.attrs else []) + (
        ["residual add"] if "residual_act" in op.attrs else []) + (["sign"] if op.sign else [])


def inplace_input(graph: Graph, op: Op) -> str | None:
    """The input whose memory op's output may take over when that input dies at op (docs/arithmetic.md, "Fused
    ops"): the residual of a fused residual add (each element is read before it is written), either operand of an
    add, and the input of an option-A shortcut whose output pixels end before the input pixels still to be read
    (even width, pad <= channels / 2: irnet_shortcut_a's in-place condition)."""
    if op.kind in _CONVS and "residual_act" in op.attrs:
        return op.inputs[1]
    if op.kind == "add":
        return op.inputs[0]
    if op.kind == "shortcut_a":
        src = graph.tensor(op.inputs[0])
        if src.width % 2 == 0 and 2 * op.attrs["pad"] <= src.channels:
            return op.inputs[0]
    return None
