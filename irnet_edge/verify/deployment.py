"""Where generated C runs: a code-generation target with the instruction set or board it needs, resolved once.

`verify`, `bench` and the Python API resolve the user's options here (:func:`resolve`) and then ask the
Deployment for everything target-specific: the C to generate (its codegen Target and kernels), the cross
toolchain and emulator that build and run it, and how to name it in messages. The rules (which target takes
--board, --cpu, --isa, and which needs them) are the codegen Target table's; only their spelling differs between
the command line (``--board``) and the API (``board=``).
"""
from dataclasses import dataclass

import numpy as np
import torch

from ..codegen.firmware import Board, board_names, load_board, resolve_cpu, runs_on
from ..codegen.targets import TARGETS, Target, get_target
from ..errors import IrnetEdgeError
from ..ir.graph import Graph
from . import host, qemu
from .host import VerifyResult
from .toolchain import CROSS, Cross


@dataclass(frozen=True)
class Spelling:
    """How messages name an option ("--board" or "board=") and an option with its value."""

    option: str
    value: str


CLI = Spelling("--{}", "--{} {}")
API = Spelling("{}=", "{}={!r}")


@dataclass(frozen=True)
class Deployment:
    """A target as chosen: host, cortex-a with an instruction set (aarch64, armv7), or cortex-m with a board and,
    optionally, a smaller core than the board's."""

    target: Target
    isa: str | None = None
    board: Board | None = None
    cpu: str | None = None

    @property
    def cross(self) -> Cross | None:
        """The Linux cross toolchain and qemu-user of a cortex-a deployment; None elsewhere."""
        return CROSS[self.isa] if self.isa else None

    def describe(self) -> str:
        """How messages name it: "host", "aarch64 (qemu-user)", "mps2-an386 (cortex-m4, QEMU)"."""
        if self.board is not None and self.board.emulated_by and not self.board.emulator:  # a chip's emulator
            emu = self.board.emulated_by
            return f"{self.board.name} ({self.cpu or self.board.cpu}, QEMU {emu['machine']}, an {emu['chip']})"
        if self.board is not None:
            return f"{self.board.name} ({self.cpu or self.board.cpu}, QEMU)"
        return f"{self.isa} (qemu-user)" if self.isa else "host"

    def to_json(self) -> dict:
        return {"name": self.target.name, "board": self.board.name if self.board else None, "cpu": self.cpu,
                "isa": self.isa}

    def verify(self, graph: Graph, prefix: str, checkpoint_sha256: str, inputs_hwc: torch.Tensor,
               dataset: str = "", labels: np.ndarray | None = None) -> VerifyResult:
        """Builds the target's C, runs it on inputs_hwc (uint8, N x H x W x C) where the target runs (the host,
        qemu-user or a QEMU board) and compares every logit bit for bit with the reference executor."""
        if self.board is not None:
            return qemu.verify(graph, prefix, checkpoint_sha256, inputs_hwc, self.board, self.cpu, dataset, labels)
        return host.verify(graph, prefix, checkpoint_sha256, inputs_hwc, target=self.target, isa=self.isa)


def resolve(target: str, isa: str | None = None, board: str | None = None, cpu: str | None = None,
            spelling: Spelling = API, aliases: dict[str, str] | None = None, counting: bool = False) -> Deployment:
    """Checks the options against the target (one IrnetEdgeError line: an option the target does not take, one
    it needs and lacks, an unknown instruction set, board or core) and returns the Deployment.

    aliases: option -> the name the user wrote it under (a deprecated spelling), for the messages. counting: for
    `bench`, whose instruction counter needs a board QEMU emulates itself (a real board's chip emulator runs at its
    own clock and counts nothing more).
    """
    chosen = get_target(target)
    aliases = aliases or {}

    def name(option: str) -> str:
        return spelling.option.format(aliases.get(option, option))

    def where(target_name: str) -> str:
        return spelling.value.format("target", target_name)

    for option, value in (("board", board), ("cpu", cpu), ("isa", isa)):
        if value is not None and option not in chosen.options:
            takers = " or ".join(where(t.name) for t in TARGETS.values() if option in t.options)
            raise IrnetEdgeError(f"{name(option)} applies only to {takers}, not to {where(target)}; leave it out")
    runnable = [b for b in board_names() if (load_board(b).emulator if counting else runs_on(load_board(b)))]
    if "board" in chosen.needs and board is None:
        kinds = "the emulated boards" if counting else ("the boards QEMU runs (emulated boards and real ones on an "
                                                        "emulator of their chip)")
        raise IrnetEdgeError(f"{where(target)} needs {name('board')}, one of {kinds}: {', '.join(runnable)}")
    if "isa" in chosen.needs and isa is None:
        raise IrnetEdgeError(f"{where(target)} needs " + " or ".join(spelling.value.format("isa", i) for i in CROSS))
    if isa is not None and isa not in CROSS:
        raise IrnetEdgeError(f"unknown instruction set {isa!r}; available: {', '.join(CROSS)}")
    chosen_board = load_board(board) if board is not None else None
    if chosen_board is not None:
        resolve_cpu(chosen_board, cpu)
        if board not in runnable:
            same_core = [b for b in runnable if load_board(b).cpu == chosen_board.cpu]
            hint = (f"{'count' if counting else 'run'} on {' or '.join(same_core)} (the same core)" if same_core
                    else f"use one of {', '.join(runnable)}")
            if counting:
                raise IrnetEdgeError(f"{board} is a real board; bench runs on an emulated one: {hint}")
            raise IrnetEdgeError(f"{board} is a real board that no emulator here runs; {hint}, or flash it with "
                                 "`irnet-edge flash`")
    return Deployment(chosen, isa, chosen_board, cpu)
