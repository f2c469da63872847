"""Static memory plan: every intermediate tensor gets an offset in one arena, from the tensors' lifetimes.

Greedy by size (largest first), each at the lowest aligned offset that overlaps no tensor alive at the
same time. The input (the caller's buffer) and the output (the caller's logits) are not in the arena.
"""
from dataclasses import dataclass

from ..ir.graph import Graph

ALIGN = 16  # bytes; wide enough for the NEON and Helium kernels


@dataclass(frozen=True)
class Placement:
    offset: int
    size: int
    first: int  # index of the op that writes it
    last: int  # index of the last op that reads it


def _round_up(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def plan(graph: Graph) -> tuple[dict[str, Placement], int]:
    """(placements by tensor name, arena bytes)."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, op in enumerate(graph.ops):
        first[op.output] = index
        last.setdefault(op.output, index)
        for name in op.inputs:
            last[name] = index
    names = [n for n in first if n not in (graph.input, graph.output)]
    names.sort(key=lambda n: (-graph.tensor(n).nbytes, first[n]))
    placed: dict[str, Placement] = {}
    for name in names:
        size = _round_up(graph.tensor(name).nbytes)
        live = sorted((p.offset, p.offset + p.size) for p in placed.values()
                      if not (p.last < first[name] or last[name] < p.first))
        offset = 0
        for start, end in live:
            if offset + size <= start:
                break
            offset = max(offset, end)
        placed[name] = Placement(offset, size, first[name], last[name])
    arena = max((p.offset + p.size for p in placed.values()), default=0)
    return placed, arena
