"""The op registry: every deploy op kind as one definition, in the manner of TFLite Micro's op registration.

An `OpDef` holds all a kind needs after export: its reference function (ir/reference.py), its C call as data
(`CCall`: the runtime function family, the parameter struct and its fields, the call's arguments, which
codegen/render.py formats for every kind alike), its multiply-accumulates, its constant bytes and its float32
baseline rewrite (ir/baseline.py). A kind missing here is an error wherever it is met (`get`), never an op that
silently does nothing.

Value specs, used by `CCall.fields` and `CCall.args` (render.py turns them into C):
  - a graph fact (`facts`): "h", "w", "cin", "channels", "pixels" (of the first input), "ho", "wo" (the computed
    output), "cout", "n" (output elements): an int;
  - "a:NAME": the int attribute NAME; "act:NAME": the activation named by attribute NAME (absent: "none");
  - "c:NAME": the constant NAME's symbol (absent: a null pointer);
  - "in", "in1": a pointer to input 0 or 1 (float view for f32 tensors, uint32 for bits and u8);
  - "out_bits", "out_f32": a pointer to the output where it has that kind, else a null pointer;
  - "sign": a pointer to the op's sign output (`Op.sign`, uint32 view);
  - "scratch", "scratch_f32": a pointer to the op's scratch in the arena (uint32 or float view), present where
    the op's kernel takes scratch (codegen/planner.py, op_scratch);
  - "kernel:FAMILY": the target's kernel function for that function family, as a function pointer.
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..errors import IrnetEdgeError
from . import baseline, reference
from .graph import Graph, Op

Reference = Callable[[list[torch.Tensor], Op], torch.Tensor]


@dataclass(frozen=True)
class CCall:
    """How the C calls an op: `irnet_<function>(&params, args...)` with a `static const <struct>` of fields, or
    `irnet_<function>(args...)` where struct is empty.

    function: the runtime function family; a target may replace it with its own kernel (Target.kernels).
    fields: (C member designator, value spec) in the struct's order, always written (an absent constant as 0).
    fused: (C member designator, value spec) written only where the op has the value (fused ops); none of them
        for an unfused op, whose C stays as it was before fusion existed.
    args: value specs of the call's arguments after the params pointer.
    """

    function: str
    struct: str = ""
    fields: tuple[tuple[str, str], ...] = ()
    fused: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class OpDef:
    """One op kind.

    reference: (input tensors, op) -> output tensor, the deployed arithmetic in PyTorch (batched, pixel-major).
    c: the C call; windowed: the call instead where a max-pool's windows overlap or pad; normalized: the call
    instead where the input normalisation is fused into the op (constant "norm"); None: c always.
    macs: (graph, op) -> (binary, float) multiply-accumulates, nominal (every tap of every computed output).
    const_bytes: op -> bytes of its constants as stored in flash.
    baseline: (op, graph) -> the op of the float32 baseline (ir/baseline.py); identity for float ops.
    """

    kind: str
    reference: Reference
    c: CCall
    macs: Callable[[Graph, Op], tuple[int, int]]
    const_bytes: Callable[[Op], int]
    baseline: Callable[[Op, Graph], Op]
    windowed: CCall | None = None
    normalized: CCall | None = None

    def call(self, op: Op) -> CCall:
        """The C call of op: the normalized one where op reads uint8 pixels through the normalisation table, the
        windowed one where op's windows overlap or pad, else c."""
        if self.normalized is not None and "norm" in op.consts:
            return self.normalized
        if self.windowed is None:
            return self.c
        k = op.attrs["k"]
        tiling = op.attrs.get("stride", k) == k and op.attrs.get("pad", 0) == 0
        return self.c if tiling else self.windowed


def get(kind: str) -> OpDef:
    """The definition of an op kind. Raises IrnetEdgeError for a kind nothing defines."""
    try:
        return REGISTRY[kind]
    except KeyError:
        raise IrnetEdgeError(f"op kind {kind!r} is not registered in irnet_edge.ir.ops (known: "
                             f"{', '.join(sorted(REGISTRY))})") from None


def computed_size(graph: Graph, op: Op) -> tuple[int, int]:
    """(height, width) of the outputs op computes: a conv with a fused k x k max-pool (attrs["pool"] = k) computes
    k * k outputs for each one it stores; any other op its output tensor's."""
    out, pool = graph.tensor(op.output), int(op.attrs.get("pool", 1))
    return out.height * pool, out.width * pool


def facts(graph: Graph, op: Op) -> dict[str, int]:
    """The graph facts value specs name (module docstring), as ints."""
    src, out = graph.tensor(op.inputs[0]), graph.tensor(op.output)
    ho, wo = computed_size(graph, op)
    return {"h": src.height, "w": src.width, "cin": src.channels, "channels": src.channels,
            "pixels": src.height * src.width, "ho": ho, "wo": wo, "cout": out.channels,
            "n": out.channels * out.height * out.width}


def source_layers(op: Op) -> list[str]:
    """The paths of the model layers op implements, in order, from op.source ("4.body.0 (irconv2d), 4.body.1
    (batchnorm2d)"; a fused op's parts joined by "; "); a part that names no layer ("sign of the input of ...")
    gives none."""
    parts = (part for group in op.source.split("; ") for part in group.split(", "))
    return [part.split(" (")[0] for part in parts if part.endswith(")") and " (" in part]


def _stored_bytes(op: Op) -> int:
    return sum(int(a.nbytes) for a in op.consts.values())


def weight_bytes(graph: Graph) -> int:
    """Bytes of every op's constants as stored in flash: what manifest.json reports as weight_bytes."""
    return sum(get(op.kind).const_bytes(op) for op in graph.ops)


def _no_macs(graph: Graph, op: Op) -> tuple[int, int]:
    return 0, 0


def _conv_macs(graph: Graph, op: Op) -> tuple[int, int]:
    ho, wo = computed_size(graph, op)
    count = ho * wo * graph.tensor(op.output).channels * op.attrs["k"] ** 2 * graph.tensor(op.inputs[0]).channels
    return (count, 0) if op.kind == "bconv" else (0, count)


def _same_op(op: Op, graph: Graph) -> Op:
    return op


_CONV = (("h", "h"), ("w", "w"), ("cin", "cin"), ("cout", "cout"), ("k", "a:k"), ("stride", "a:stride"),
         ("pad", "a:pad"))
# irnet_fusion, member fuse of both conv params structs (runtime/irnet_runtime.h)
_FUSION = (("fuse.residual", "in1"), ("fuse.residual_act", "act:residual_act"), ("fuse.sign", "sign"),
           ("fuse.pool", "a:pool"), ("fuse.pool_min", "c:pool_min"), ("fuse.pool_or", "c:pool_or"))
_POOL2D = (("h", "h"), ("w", "w"), ("channels", "channels"), ("k", "a:k"), ("stride", "a:stride"),
           ("pad", "a:pad"), ("ho", "ho"), ("wo", "wo"))
_TILING_POOL = (("w", "w"), ("channels", "channels"), ("k", "a:k"), ("ho", "ho"), ("wo", "wo"))
_AFFINE = (("mult", "c:mult"), ("add", "c:add"), ("act", "act:act"))


def _define(kind: str, reference_fn: Reference, c: CCall, macs=_no_macs, rewrite=_same_op,
            windowed: CCall | None = None, normalized: CCall | None = None) -> OpDef:
    return OpDef(kind, reference_fn, c, macs, _stored_bytes, rewrite, windowed, normalized)


def _member_of(struct: str, fields: tuple[tuple[str, str], ...]) -> tuple[tuple[str, str], ...]:
    return tuple((f"{struct}.{member}", spec) for member, spec in fields)


_CONV_F32 = (*_CONV, ("ho", "ho"), ("wo", "wo"), ("weight", "c:weight"), *_AFFINE)


_DEFS = (
    _define("normalize", lambda ins, op: reference.normalize(ins[0], op),
            CCall("normalize", "irnet_normalize_params",
                  (("pixels", "pixels"), ("channels", "channels"), ("mean", "c:mean"), ("std", "c:std")),
                  args=("in", "out_f32"))),
    _define("conv_f32", lambda ins, op: reference.conv_f32(ins[0], op),
            CCall("conv_f32", "irnet_conv_f32_params", _CONV_F32, _FUSION, ("in", "out_bits", "out_f32")),
            _conv_macs, baseline.conv_f32_to_float,
            normalized=CCall("conv_f32_u8", "irnet_conv_f32_u8_params",
                             (*_member_of("conv", _CONV_F32), ("norm", "c:norm"), ("rows", "a:norm_rows"),
                              ("band", "scratch_f32"), ("kernel", "kernel:conv_f32")),
                             _member_of("conv", _FUSION), ("in", "out_bits", "out_f32"))),
    _define("bconv", lambda ins, op: reference.bconv(ins[0], op),
            CCall("bconv", "irnet_bconv_params",
                  (*_CONV, ("pad_one", "a:pad_one"), ("ho", "ho"), ("wo", "wo"), ("weight", "c:weight"),
                   ("threshold", "c:threshold"), *_AFFINE), (("scratch", "scratch"), *_FUSION),
                  ("in", "out_bits", "out_f32")),
            _conv_macs, baseline.bconv_to_float),
    _define("sign_pack", lambda ins, op: ins[0] < 0,
            CCall("sign_pack", args=("in", "pixels", "channels", "out_bits")), rewrite=baseline.sign_pack_to_float),
    _define("maxpool_bits", lambda ins, op: reference.maxpool_bits(ins[0], op),
            CCall("maxpool_bits", "irnet_maxpool_bits_params", (*_TILING_POOL, ("or_mask", "c:or_mask")),
                  args=("in", "out_bits")),
            rewrite=baseline.maxpool_bits_to_float,
            windowed=CCall("maxpool2d_bits", "irnet_maxpool2d_bits_params", (*_POOL2D, ("or_mask", "c:or_mask")),
                           args=("in", "out_bits"))),
    _define("maxpool_f32", lambda ins, op: reference.maxpool_f32(ins[0], op),
            CCall("maxpool_f32", "irnet_maxpool_f32_params", (*_TILING_POOL, ("min_mask", "c:min_mask")),
                  args=("in", "out_f32")),
            windowed=CCall("maxpool2d_f32", "irnet_maxpool2d_f32_params", (*_POOL2D, ("min_mask", "c:min_mask")),
                           args=("in", "out_f32"))),
    _define("avgpool", lambda ins, op: reference.avgpool(ins[0], op),
            CCall("avgpool", args=("in", "pixels", "channels", "out_f32"))),
    _define("avgpool2d", lambda ins, op: reference.avgpool2d(ins[0], op),
            CCall("avgpool2d", "irnet_avgpool2d_params", (*_POOL2D, ("divisor", "a:divisor")),
                  args=("in", "out_f32"))),
    _define("add", lambda ins, op: reference._act(ins[0] + ins[1], op.attrs["act"]),
            CCall("add", args=("in", "in1", "n", "act:act", "out_f32"))),
    _define("clamp", lambda ins, op: reference._act(ins[0], op.attrs["act"]),
            CCall("clamp", args=("in", "n", "act:act", "out_f32"))),
    _define("affine", lambda ins, op: reference._affine(ins[0], op),
            CCall("affine", "irnet_affine_params", (("pixels", "pixels"), ("channels", "channels"), *_AFFINE),
                  args=("in", "out_f32"))),
    _define("shortcut_a", lambda ins, op: reference.shortcut_a(ins[0], op),
            CCall("shortcut_a", args=("in", "h", "w", "channels", "a:pad", "out_f32"))),
)
REGISTRY: dict[str, OpDef] = {d.kind: d for d in _DEFS}
