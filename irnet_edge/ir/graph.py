"""The deployment graph: typed tensors and deploy ops with their constant data.

This is the contract between export (which reads a checkpoint) and everything after it (the reference
executor, C generation, verification): none of those ever look at a torch module. The exact arithmetic
of every op is defined in docs/arithmetic.md.

Tensors are stored pixel-major (HWC): "f32" as float32 [H][W][C], "bits" as uint32 words
[H][W][ceil(C/32)] with channel c in bit c % 32 of word c / 32 and bit 1 meaning -1, "u8" as the raw
input [H][W][C]. A vector is a tensor with H = W = 1.
"""
from dataclasses import dataclass, field

import numpy as np

KINDS = ("u8", "f32", "bits")


def words_for(channels: int) -> int:
    return (channels + 31) // 32


@dataclass(frozen=True)
class Tensor:
    name: str
    kind: str
    channels: int
    height: int = 1
    width: int = 1

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.channels, self.height, self.width)

    @property
    def words(self) -> int:
        return words_for(self.channels)

    @property
    def nbytes(self) -> int:
        pixels = self.height * self.width
        if self.kind == "bits":
            return pixels * self.words * 4
        return pixels * self.channels * (4 if self.kind == "f32" else 1)

    def describe(self) -> str:
        return f"{self.kind} {self.height}x{self.width}x{self.channels}"


@dataclass
class Op:
    """One deploy op. attrs are ints and strings; consts are numpy arrays in their stored C layout."""

    kind: str
    name: str
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)
    consts: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""  # the model layers it implements, for comments and error messages
    sign: str = ""  # a bits tensor the op also writes: its output's sign, packed (a fused sign_pack)


@dataclass
class Graph:
    name: str
    num_classes: int
    input: str
    output: str
    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    # True: the C runs every op as it stands, no fusion (the float32 baseline, which prices the network op by op)
    unfused: bool = False

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def consumers(self) -> dict[str, list[int]]:
        """tensor name -> indices of the ops that read it, in order (none: not listed)."""
        out: dict[str, list[int]] = {}
        for index, op in enumerate(self.ops):
            for name in op.inputs:
                out.setdefault(name, []).append(index)
        return out

    def producers(self) -> dict[str, int]:
        """tensor name -> index of the op that writes it (its output, or its sign output)."""
        out = {}
        for index, op in enumerate(self.ops):
            out[op.output] = index
            if op.sign:
                out[op.sign] = index
        return out
