"""The float32 baseline of a deployment graph: the same network without bit-packing.

Every binary tensor becomes a float32 tensor of +1/-1 values and every binary op its float counterpart:
sign_pack -> clamp with the sign activation, bconv -> conv_f32 with +1/-1 float weights, maxpool_bits ->
maxpool_f32. The dot products of +/-1 values are small integers, exact in float32, and a threshold
T becomes y = dot * 1 - T compared with zero, so the baseline computes the same logits bit for bit: it
differs only in cost, which is what `irnet-edge bench` compares.

The rewrite of each kind is its OpDef.baseline (ir/ops.py); the functions here are those of the binary kinds.
The baseline is the float rewrite of the unfused graph: fusion (a residual add, a sign output or a max-pool
computed inside a conv) optimises the binary model only, so a graph that carries fused ops is refused.
"""
import numpy as np

from ..errors import IrnetEdgeError
from .bits import unpack_negative
from .graph import Graph, Op, Tensor

_FUSED_ATTRS = ("residual_act", "pool")


def _float_weights(op: Op, cin: int) -> np.ndarray:
    negative = unpack_negative(op.consts["weight"], cin)  # (Cout, k, k, Cin)
    return np.where(negative, -1.0, 1.0).astype(np.float32)


def sign_pack_to_float(op: Op, graph: Graph) -> Op:
    """sign_pack -> clamp with the sign activation (+1/-1 floats)."""
    return Op("clamp", op.name, op.inputs, op.output, {"act": "sign"}, {}, op.source)


def maxpool_bits_to_float(op: Op, graph: Graph) -> Op:
    """maxpool_bits -> maxpool_f32 whose min_mask (uint8 [C]) is the or_mask's bits."""
    min_mask = unpack_negative(op.consts["or_mask"], graph.tensor(op.inputs[0]).channels).astype(np.uint8)
    return Op("maxpool_f32", op.name, op.inputs, op.output, dict(op.attrs), {"min_mask": min_mask}, op.source)


def conv_f32_to_float(op: Op, graph: Graph) -> Op:
    """A float conv with bits output -> the same conv with the sign activation on float output; else op."""
    if op.attrs["out"] != "bits":
        return op
    return Op("conv_f32", op.name, op.inputs, op.output, {**op.attrs, "out": "f32", "act": "sign"},
              dict(op.consts), op.source)


def bconv_to_float(op: Op, graph: Graph) -> Op:
    """bconv -> conv_f32 with +1/-1 float32 weights: thresholds T become mult 1, add -T and the sign activation.
    Raises IrnetEdgeError for +1 padding, which a zero-padded float convolution cannot express."""
    if op.attrs["pad_one"]:
        raise IrnetEdgeError(f"op {op.name} pads its binary input with +1, which the float32 baseline "
                             "(zero-padded float convolution) cannot express; bench it without --baseline")
    attrs = {name: op.attrs[name] for name in ("k", "stride", "pad")}
    cout = graph.tensor(op.output).channels
    if op.attrs["out"] == "bits":
        consts = {"mult": np.ones(cout, dtype=np.float32), "add": -op.consts["threshold"].astype(np.float32)}
        attrs.update(out="f32", act="sign")
    else:
        consts = {"mult": op.consts["mult"], "add": op.consts["add"]}
        attrs.update(out="f32", act=op.attrs["act"])
    return Op("conv_f32", op.name, op.inputs, op.output, attrs,
              {"weight": _float_weights(op, graph.tensor(op.inputs[0]).channels), **consts}, op.source)


def float_baseline(graph: Graph) -> Graph:
    """The baseline graph: one op for each op of graph, in the same order, with the same tensors as float32, marked
    unfused (its C runs every op as it stands, so bench prices the network op by op).

    Raises IrnetEdgeError for a graph with fused ops (the baseline is defined on the unfused graph), an op kind
    no OpDef registers, or a binary conv padded with +1."""
    from .ops import get  # ops imports this module's rewrites

    fused = [op.name for op in graph.ops if op.sign or any(a in op.attrs for a in _FUSED_ATTRS)]
    if fused:
        raise IrnetEdgeError(f"the float32 baseline is defined on the unfused graph, but {graph.name} has fused ops "
                             f"({', '.join(fused[:3])}{', ...' if len(fused) > 3 else ''}): export it without fusion "
                             "for the baseline")
    tensors = {name: Tensor(t.name, "f32", t.channels, t.height, t.width) if t.kind == "bits" else t
               for name, t in graph.tensors.items()}
    return Graph(name=graph.name, num_classes=graph.num_classes, input=graph.input, output=graph.output,
                 tensors=tensors, ops=[get(op.kind).baseline(op, graph) for op in graph.ops], unfused=True)
