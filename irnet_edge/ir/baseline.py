"""The float32 baseline of a deployment graph: the same network without bit-packing.

Every binary tensor becomes a float32 tensor of +1/-1 values and every binary op its float counterpart:
sign_pack -> clamp with the sign activation, bconv -> conv_f32 with +1/-1 float weights, maxpool_bits ->
maxpool_f32. The dot products of +/-1 values are small integers, exact in float32, and a threshold
T becomes y = dot * 1 - T compared with zero, so the baseline computes the same logits bit for bit: it
differs only in cost, which is what `irnet-edge bench` compares.
"""
import numpy as np

from ..errors import IrnetEdgeError
from .bits import unpack_negative
from .graph import Graph, Op, Tensor


def _float_weights(op: Op, cin: int) -> np.ndarray:
    negative = unpack_negative(op.consts["weight"], cin)  # (Cout, k, k, Cin)
    return np.where(negative, -1.0, 1.0).astype(np.float32)


def _baseline_op(op: Op, graph: Graph) -> Op:
    cin = graph.tensor(op.inputs[0]).channels
    if op.kind == "sign_pack":
        return Op("clamp", op.name, op.inputs, op.output, {"act": "sign"}, {}, op.source)
    if op.kind == "maxpool_bits":
        min_mask = unpack_negative(op.consts["or_mask"], cin).astype(np.uint8)
        return Op("maxpool_f32", op.name, op.inputs, op.output, dict(op.attrs), {"min_mask": min_mask}, op.source)
    if op.kind == "conv_f32" and op.attrs["out"] == "bits":
        return Op("conv_f32", op.name, op.inputs, op.output, {**op.attrs, "out": "f32", "act": "sign"},
                  dict(op.consts), op.source)
    if op.kind == "bconv":
        if op.attrs["pad_one"]:
            raise IrnetEdgeError(f"op {op.name} pads its binary input with +1, which the float32 baseline "
                                 "(zero-padded float convolution) cannot express; bench it without --baseline")
        attrs = {name: op.attrs[name] for name in ("k", "stride", "pad")}
        cout = graph.tensor(op.output).channels
        if op.attrs["out"] == "bits":
            consts = {"mult": np.ones(cout, dtype=np.float32),
                      "add": -op.consts["threshold"].astype(np.float32)}
            attrs.update(out="f32", act="sign")
        else:
            consts = {"mult": op.consts["mult"], "add": op.consts["add"]}
            attrs.update(out="f32", act=op.attrs["act"])
        return Op("conv_f32", op.name, op.inputs, op.output, attrs,
                  {"weight": _float_weights(op, cin), **consts}, op.source)
    return op


def float_baseline(graph: Graph) -> Graph:
    """The baseline graph: one op for each op of graph, in the same order, with the same tensors as float32."""
    tensors = {name: Tensor(t.name, "f32", t.channels, t.height, t.width) if t.kind == "bits" else t
               for name, t in graph.tensors.items()}
    return Graph(name=graph.name, num_classes=graph.num_classes, input=graph.input, output=graph.output,
                 tensors=tensors, ops=[_baseline_op(op, graph) for op in graph.ops])
