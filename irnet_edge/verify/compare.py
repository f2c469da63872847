"""Bit-for-bit comparison of C outputs with the reference, down to the first differing layer."""
from dataclasses import dataclass

import numpy as np
import torch

from ..codegen.schedule import schedule
from ..codegen.targets import Target
from ..ir import reference
from ..ir.bits import pack_negative
from ..ir.graph import Graph
from ..nn.checkpoint import Checkpoint


def as_c_bytes(graph: Graph, name: str, value: torch.Tensor) -> np.ndarray:
    """A reference tensor of one sample in the C's memory layout, as raw bytes."""
    if graph.tensor(name).kind == "bits":
        return pack_negative(value.numpy()).reshape(-1).view(np.uint8)
    return value.numpy().astype(np.float32).reshape(-1).view(np.uint8)


@dataclass
class LayerMismatch:
    op_index: int
    op_name: str
    source: str
    byte_index: int

    def describe(self) -> str:
        return (f"first difference in op {self.op_index} ({self.op_name}, from layer(s) {self.source}) at byte "
                f"{self.byte_index} of its output")


def first_mismatch(graph: Graph, sample: torch.Tensor, dumps: dict[int, bytes], target: Target
                   ) -> LayerMismatch | None:
    """The first op of the C target runs (graph with target's fusions, codegen.schedule) whose output dump
    (dumps: op index -> the bytes NAME_DEBUG_DUMP wrote) differs from the reference's, or None."""
    graph = schedule(graph, target).graph
    values = reference.run(graph, sample[None], keep_all=True)
    for index, op in enumerate(graph.ops):
        expected = as_c_bytes(graph, op.output, values[op.output][0])
        got = np.frombuffer(dumps[index], dtype=np.uint8)
        if got.shape != expected.shape or not np.array_equal(got, expected):
            diff = np.nonzero(got[: len(expected)] != expected[: len(got)])[0]
            return LayerMismatch(index, op.name, op.source, int(diff[0]) if len(diff) else min(len(got), len(expected)))
    return None


def agreement(ckpt: Checkpoint, graph: Graph, images_chw: torch.Tensor, batch: int = 500) -> tuple[float, float]:
    """(top-1 agreement, largest |logit difference|) of the reference against the trained model's forward."""
    model = ckpt.build()
    agree, worst = 0, 0.0
    with torch.no_grad():
        for start in range(0, images_chw.shape[0], batch):
            x = images_chw[start:start + batch]
            expected = model(x.float() / 255.0)
            got = reference.run(graph, x.permute(0, 2, 3, 1).contiguous())
            agree += (expected.argmax(1) == got.argmax(1)).sum().item()
            worst = max(worst, (expected - got).abs().max().item())
    return agree / images_chw.shape[0], worst
