"""What a target's C runs: the exported graph with the target's fusions applied, and its memory plan.

Every consumer of generated C (codegen, firmware, verify, bench, the arena a board must hold) goes through
schedule(), so they all see the same ops and the same arena.
"""
from dataclasses import dataclass

from ..ir import ops
from ..ir.fuse import fuse, fused_parts, inplace_input
from ..ir.graph import Graph
from .planner import Placement, op_scratch, plan
from .targets import Target


@dataclass(frozen=True)
class Schedule:
    graph: Graph  # the fused graph the target's C runs, op for op
    placements: dict[str, Placement]  # arena placement of every intermediate tensor and scratch block
    arena: int  # bytes
    scratch: dict[int, int]  # op index -> scratch bytes its kernel takes (0: none)

    def format(self, title: str) -> str:
        """The plan as a table: each op with what it fuses, then each tensor with its bytes, arena offset, the
        ops it lives across and the tensor whose memory it takes over in place."""
        g = self.graph
        lines = [f"{title}: arena {self.arena:,} bytes, {len(g.ops)} ops", "",
                 f"{'op':>3}  {'kind':<13} {'fused':<32} {'inputs':<16} {'output':<8} {'scratch':>8}"]
        for index, op in enumerate(g.ops):
            fused = ", ".join(fused_parts(op)).replace("sign", f"sign -> {op.sign}")
            scratch = self.scratch.get(index, 0)
            lines.append(f"{index:>3}  {op.kind:<13} {fused or '-':<32} {', '.join(op.inputs):<16} {op.output:<8} "
                         f"{f'{scratch:,}' if scratch else '-':>8}")
        lines += ["", f"{'tensor':<10} {'shape':<18} {'bytes':>8} {'offset':>8}  {'live (ops)':<11} in place of"]
        producers, taken = g.producers(), {}
        last = {name: readers[-1] for name, readers in g.consumers().items()}
        for op in g.ops:
            shared = inplace_input(g, op)
            if shared in self.placements and self.placements.get(op.output) is self.placements[shared]:
                taken[op.output] = shared

        def position(name: str):  # by offset, then by when written; "scratch 10" after "scratch 9"
            p = self.placements[name]
            return p.offset, producers.get(name, p.first), len(name), name

        order = sorted(self.placements, key=position)
        for name in order:
            p = self.placements[name]
            shape = g.tensor(name).describe() if name in g.tensors else "scratch"
            size = g.tensor(name).nbytes if name in g.tensors else p.size
            first = producers.get(name, p.first)
            lines.append(f"{name:<10} {shape:<18} {size:>8,} {p.offset:>8,}  {first:>3} - {last.get(name, p.last):<5} "
                         f"{taken.get(name, '-')}")
        lines.append(f"input and output ({g.input}, {g.output}) are the caller's buffers, not in the arena")
        return "\n".join(lines)


def schedule(graph: Graph, target: Target) -> Schedule:
    """The fused graph of target (its `fusions`; none for a graph marked unfused) with its scratch and memory
    plan."""
    fused = fuse(graph, () if graph.unfused else target.fusions)
    kernels = dict(target.kernels)
    # a target replaces kernel families (a tiling and a windowed max-pool are two), not op kinds
    scratch = {i: op_scratch(fused, op, kernels.get(ops.get(op.kind).call(op).function, ""))
               for i, op in enumerate(fused.ops)}
    placements, arena = plan(fused, scratch)
    return Schedule(fused, placements, arena, scratch)

