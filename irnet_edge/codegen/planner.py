"""Static memory plan: every intermediate tensor gets an offset in one arena, from the tensors' lifetimes.

Greedy by size (largest first), each at the lowest aligned offset that overlaps no tensor alive at the
same time. The input (the caller's buffer) and the output (the caller's logits) are not in the arena.

A kernel may also need scratch memory during its op (the NEON binary convolution: irnet_bconv_neon's
zero-bordered input copy, index tables, packed weights and gather buffers, irnet_bconv_neon_scratch_bytes in
the runtime, mirrored by bconv_neon_scratch_bytes here): it is planned like a tensor that lives during that
op only, so it shares memory with tensors dead by then, never with the op's inputs and output.
"""
from dataclasses import dataclass

from ..ir.fuse import inplace_input
from ..ir.graph import Graph, Op

ALIGN = 16  # bytes; wide enough for the NEON and Helium kernels


@dataclass(frozen=True)
class Placement:
    offset: int
    size: int
    first: int  # index of the op that writes it
    last: int  # index of the last op that reads it


def _round_up(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


# what irnet_bconv_neon_scratch_bytes (irnet_kernels_neon.c) computes, constant for constant
BCONV_NEON_PX = 16  # IRNET_PX
BCONV_NEON_MAX_BITS = 32766  # IRNET_MAX_BITS: larger layers run the portable kernel, without scratch
BCONV_NEON_PACK_BYTES = 32768  # IRNET_PACK_BYTES
BCONV_NEON_THREADS = 4  # IRNET_BCONV_NEON_THREADS (irnet_runtime.h)


def _count_ranges(n_out: int, size: int, k: int, stride: int, pad: int) -> int:
    """irnet_count_ranges: the distinct (first, end) ranges of present taps along one axis."""
    ranges = []
    for o in range(n_out):
        i0 = o * stride - pad
        rng = (-i0 if i0 < 0 else 0, size - i0 if i0 + k > size else k)
        if not ranges or ranges[-1] != rng:
            ranges.append(rng)
    return len(ranges)


def bconv_neon_scratch_bytes(h: int, w: int, cin: int, cout: int, k: int, stride: int, pad: int, pad_one: bool,
                             ho: int, wo: int, bits: bool) -> int:
    """The bytes of scratch irnet_bconv_neon needs for a layer (bits: thresholded bits output), as the runtime's
    irnet_bconv_neon_scratch_bytes computes them (a test holds the two equal over a grid of layers)."""
    if k * k * cin > BCONV_NEON_MAX_BITS:
        return 0
    words = (cin + 31) // 32
    paired = cin <= 16 and k > 1
    n = k // 2 * k + k % 2 * (k + 1) // 2 if paired else k * k * words
    steps = n // 4 + (n & 2) // 2 + (n & 1)
    plane = (h + 2 * pad) * (w + 2 * pad) * words
    out_words = (cout + 31) // 32
    last = cout - 32 * (out_words - 1)
    groups = 8 * (out_words - 1) + ((last + 3) // 4 if last < 29 else 8) if bits else (cout + 3) // 4
    ss = (4 * groups + 7) // 8 * 8
    chunk = max(BCONV_NEON_PACK_BYTES // (16 * n) // 8 * 8, 8)
    blocks = (ho * wo + BCONV_NEON_PX - 1) // BCONV_NEON_PX
    zero_pad = pad > 0 and not pad_one
    classes = _count_ranges(ho, h, k, stride, pad) * _count_ranges(wo, w, k, stride, pad) if zero_pad else 1
    pieces = [
        2 * plane * 4 if paired else plane * 4 if pad > 0 else 0,  # the zero-bordered copy, or V and H
        (3 * ho + 3 * wo + 2) * 4,  # rs, cs, ky0, ky1, kx0, kx1
        max(3 * (blocks * BCONV_NEON_PX + 3) * 4, plane * 4 if paired else 0),  # first, dest, klass; or P
        (4 * steps + 3 * n + k * k) * 4,  # off, woff, taps, absent
        4 * n * 4 if paired else 0,  # irnet_pack's paired rows
        4 * n * min(chunk, groups) * 4,  # packed weights
        k * k * ss * 2 if zero_pad else 0,  # weight popcounts per tap
        ss * 4,  # biases
        BCONV_NEON_THREADS * BCONV_NEON_PX * steps * 16,  # gather buffers
        classes * ss * 2,  # bounds per border class
    ]
    return sum((piece + 15) // 16 * 16 for piece in pieces) + 16  # the kernel aligns its pieces to 16 bytes


def op_scratch(graph: Graph, op: Op, kernel: str) -> int:
    """The scratch bytes op needs when kernel (the target's function family, e.g. "bconv_neon") runs it: a
    normalisation-fused conv's band (irnet_conv_f32_u8_params: ((rows - 1) * stride + k) * w * cin floats, at
    most the whole map), irnet_bconv_neon's scratch."""
    if "norm" in op.consts:
        src, k, stride = graph.tensor(op.inputs[0]), op.attrs["k"], op.attrs["stride"]
        return min((op.attrs["norm_rows"] - 1) * stride + k, src.height) * src.width * src.channels * 4
    if kernel != "bconv_neon":
        return 0
    src, out = graph.tensor(op.inputs[0]), graph.tensor(op.output)
    return bconv_neon_scratch_bytes(src.height, src.width, src.channels, out.channels, int(op.attrs["k"]),
                                    int(op.attrs["stride"]), int(op.attrs["pad"]), bool(op.attrs["pad_one"]),
                                    out.height, out.width, out.kind == "bits")


def scratch_name(index: int) -> str:
    """The placement key of op index's scratch (no tensor name has a space)."""
    return f"scratch {index}"


def plan(graph: Graph, scratch: dict[int, int] | None = None) -> tuple[dict[str, Placement], int]:
    """(placements by tensor name, arena bytes). scratch: bytes by op index, placed as scratch_name(index),
    alive during that op only (none by default: the portable and Cortex-M kernels need none).

    In place: where an op's output may take over an input's memory (irnet_edge.ir.fuse.inplace_input: the
    residual of a fused residual add, an add's operand, an option-A shortcut's input) and that input dies at
    the op, the two share one buffer, which lives from the input's first op to the output's last."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    sizes: dict[str, int] = {}
    owner: dict[str, str] = {}  # tensor -> the tensor whose buffer it uses
    for index, op in enumerate(graph.ops):
        for name in (op.output, op.sign):
            if name:
                first[name] = index
                last.setdefault(name, index)
                sizes[name] = graph.tensor(name).nbytes
        for name in op.inputs:
            last[name] = index
    for index, op in enumerate(graph.ops):
        shared = inplace_input(graph, op)
        if (shared is not None and shared != graph.input and op.output != graph.output and last[shared] == index
                and op.inputs.count(shared) == 1):
            owner[op.output] = owner.get(shared, shared)
    buffers: dict[str, tuple[int, int, int]] = {}  # root -> (first, last, size)
    for name in first:
        if name in (graph.input, graph.output):
            continue
        root = owner.get(name, name)
        b_first, b_last, b_size = buffers.get(root, (first[name], last[name], 0))
        buffers[root] = (min(b_first, first[name]), max(b_last, last[name]), max(b_size, sizes[name]))
    for index, nbytes in sorted((scratch or {}).items()):
        if nbytes > 0:
            buffers[scratch_name(index)] = (index, index, nbytes)
    names = sorted(buffers, key=lambda n: (-buffers[n][2], buffers[n][0]))
    placed: dict[str, Placement] = {}
    for name in names:
        b_first, b_last, b_size = buffers[name]
        size = _round_up(b_size)
        live = sorted((p.offset, p.offset + p.size) for p in placed.values()
                      if not (p.last < b_first or b_last < p.first))
        offset = 0
        for start, end in live:
            if offset + size <= start:
                break
            offset = max(offset, end)
        placed[name] = Placement(offset, size, b_first, b_last)
    for name, root in owner.items():
        placed[name] = placed[root]
    arena = max((p.offset + p.size for p in placed.values()), default=0)
    return placed, arena
