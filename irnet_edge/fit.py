"""`irnet-edge fit --board B`: the largest network of the MCU family that fits a board and answers in time.

The numbers are exact where they can be. Each candidate (irnet_edge.nn.zoo.mcu_family_spec) is exported with
seeded weights, its firmware rendered and linked for the board, and its flash and RAM read from the linked image
(the board's stack included); the link itself fails when it does not fit. Its instructions per inference are
counted by `bench` on an emulated board with the same core, and cached per architecture (the weights change a
count only through the few data-dependent branches: mcu_m0 trained 1,250,312, seeded 1,250,531, 0.02%). Only the
time is an estimate: instructions x the core's cycles per instruction (firmware/cpus.json, "cycles_per_instruction")
/ the board's clock.
"""
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .codegen import write_tree
from .codegen.firmware import Board, board_names, load_board, load_cpu, render_firmware, resolve_cpu
from .data import get_dataset_info
from .errors import IrnetEdgeError
from .ir import export
from .nn import build_model
from .nn.checkpoint import Checkpoint
from .nn.zoo import FAMILY_DEPTHS, FAMILY_STEMS, mcu_family_spec

__all__ = ["Candidate", "FitResult", "fit"]

DEMO_SAMPLES = 8  # the firmware's embedded test images, as `irnet-edge firmware` writes by default


@dataclass
class Candidate:
    """One member of the family on one board. flash and ram: bytes of the linked firmware image (RAM with the
    board's stack), None when it did not link; instructions: per inference, counted exactly; ms: the estimate."""

    spec: dict
    binary_params: int
    float_params: int
    flash: int | None = None
    ram: int | None = None
    instructions: int | None = None
    ms: float | None = None
    problem: str | None = None  # why it is not a pick (too big, too slow)

    @property
    def name(self) -> str:
        return self.spec["name"]

    @property
    def params(self) -> int:
        return self.binary_params + self.float_params

    def to_json(self) -> dict:
        return {"name": self.name, "binary_params": self.binary_params, "float_params": self.float_params,
                "flash_bytes": self.flash, "ram_bytes": self.ram, "instructions": self.instructions,
                "estimated_ms": None if self.ms is None else round(self.ms, 3), "fits": self.problem is None,
                "problem": self.problem}


@dataclass
class FitResult:
    board: Board
    cpu: str
    dataset: str
    counted_on: str  # the emulated board whose QEMU counted the instructions
    cycles_per_instruction: float
    latency_ms: float | None
    candidates: list[Candidate] = field(default_factory=list)

    @property
    def pick(self) -> Candidate | None:
        """The candidate with the most parameters among those that fit (and meet the latency)."""
        fitting = [c for c in self.candidates if c.problem is None]
        return max(fitting, key=lambda c: (c.params, -(c.instructions or 0))) if fitting else None

    def table(self) -> str:
        """The candidates as text, largest first, with the pick marked."""
        pick = self.pick
        lines = [f"{self.board.name}: flash {self.board.flash['length']:,} B, RAM {self.board.ram['length']:,} B, "
                 f"{self.cpu} at {self.board.clock_hz / 1e6:g} MHz; {self.dataset}; instructions counted on "
                 f"{self.counted_on} (QEMU), time estimated at {self.cycles_per_instruction:g} cycles per "
                 "instruction",
                 f"  {'candidate':<14} {'binary params':>13} {'FP params':>10} {'flash B':>10} {'RAM B':>9} "
                 f"{'instructions':>13} {'est. ms':>9}  fits"]
        for c in sorted(self.candidates, key=lambda c: -c.params):
            mark = "*" if c is pick else " "
            lines.append(f"{mark} {c.name:<14} {c.binary_params:>13,} {c.float_params:>10,} {_num(c.flash):>10} "
                         f"{_num(c.ram):>9} {_num(c.instructions):>13} "
                         f"{'-' if c.ms is None else f'{c.ms:.2f}':>9}  {'yes' if c.problem is None else c.problem}")
        return "\n".join(lines)

    def to_json(self) -> dict:
        return {"board": self.board.name, "cpu": self.cpu, "clock_hz": self.board.clock_hz,
                "dataset": self.dataset, "counted_on": self.counted_on,
                "cycles_per_instruction": self.cycles_per_instruction, "latency_ms": self.latency_ms,
                "pick": self.pick.name if self.pick else None,
                "candidates": [c.to_json() for c in self.candidates]}


def _num(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def family(dataset: str) -> list[dict]:
    """The specs of the MCU family for a dataset: every depth and stem width of irnet_edge.nn.zoo's family."""
    info = get_dataset_info(dataset)
    return [mcu_family_spec(depth, stem, info.channels, info.size, info.num_classes, info.mean, info.std)
            for depth in FAMILY_DEPTHS for stem in FAMILY_STEMS]


def counting_board(cpu: str) -> Board:
    """The emulated board that counts a core's instructions: one with that core, else the first whose core also
    runs its code (v6-M on an M3)."""
    emulated = [load_board(name) for name in board_names() if load_board(name).emulator]
    for board in sorted(emulated, key=lambda b: b.cpu != cpu):
        try:
            resolve_cpu(board, cpu)
        except IrnetEdgeError:
            continue
        return board
    raise IrnetEdgeError(f"no emulated board runs {cpu} code, so its instructions cannot be counted")


def _checkpoint(spec: dict, dataset: str) -> Checkpoint:
    """Seeded weights: sizes do not depend on them, instruction counts barely (data-dependent branches only)."""
    torch.manual_seed(0)
    model = build_model(spec).eval()
    state = {key: value.detach().clone() for key, value in model.state_dict().items()}
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return Checkpoint(spec=spec, state_dict=state, ede={"k": 1.0, "t": 1.0},
                      config={"arch": spec["name"], "dataset": dataset}, sha256=digest)


def _params(spec: dict) -> tuple[int, int]:
    from .nn.summary import summarize

    shape = (spec["input"]["channels"], spec["input"]["height"], spec["input"]["width"])
    rows = summarize(build_model(spec), shape)
    return sum(r.binary_params for r in rows), sum(r.float_params for r in rows)


def _link(graph, ckpt: Checkpoint, board: Board, cpu: str, work: Path) -> tuple[int, int]:
    """Flash and RAM of the candidate's demo firmware for the board, as linked; IrnetEdgeError when it does not
    fit (the fit check, or the linker)."""
    from .verify.qemu import build_firmware, image_footprint

    inp = graph.tensor(graph.input)
    pixels = np.zeros((DEMO_SAMPLES, inp.height, inp.width, inp.channels), np.uint8)
    files = render_firmware(graph, "net", ckpt.sha256, board, cpu, pixels, np.zeros(DEMO_SAMPLES, np.uint8),
                            ckpt.config["dataset"])
    tree = work / ckpt.spec["name"]
    write_tree(files, tree, force=True, build=build_firmware)
    image = image_footprint(tree, board)
    return image["flash_bytes"], image["ram_bytes"]


class _Counts:
    """Instructions per inference by (architecture, core, tool version), in the user's cache."""

    def __init__(self):
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        self.path = base / "irnet-edge" / "fit-instructions.json"
        try:
            self.data = json.loads(self.path.read_text())
            if not isinstance(self.data, dict):
                self.data = {}
        except (OSError, ValueError):
            self.data = {}

    @staticmethod
    def key(spec: dict, cpu: str) -> str:
        text = json.dumps({"spec": spec, "cpu": cpu, "version": __version__}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def get(self, spec: dict, cpu: str) -> int | None:
        value = self.data.get(self.key(spec, cpu))
        return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None

    def put(self, spec: dict, cpu: str, instructions: int) -> None:
        self.data[self.key(spec, cpu)] = instructions
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_text(json.dumps(self.data, indent=1, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time


def fit(board: str, dataset: str = "fashion-mnist", latency_ms: float | None = None, cpu: str | None = None,
        log: Callable[[str], None] = lambda message: None) -> FitResult:
    """Search the MCU family for the largest network that fits board (flash and RAM of the linked demo firmware,
    stack included) and, when latency_ms is given, whose estimated time per inference (ms) meets it.

    board: a board name (firmware/boards). dataset: sets the input shape and classes. cpu: build for a smaller
    core than the board's. Returns a FitResult (``pick`` is None when nothing fits). Raises IrnetEdgeError for an
    unknown board, dataset or core, a latency that is not a positive number, and when no candidate fits or meets
    the latency (naming the smallest or the fastest candidate and its numbers).
    """
    if latency_ms is not None and (isinstance(latency_ms, bool) or not isinstance(latency_ms, (int, float))
                                   or not np.isfinite(latency_ms) or latency_ms <= 0):
        raise IrnetEdgeError(f"latency must be a positive number of milliseconds, got {latency_ms!r:.40}")
    chosen = load_board(board)
    cpu_name, _ = resolve_cpu(chosen, cpu)
    cpi = float(load_cpu(cpu_name)["cycles_per_instruction"])
    counter = counting_board(cpu_name)
    from .verify.deployment import resolve

    deployment = resolve("cortex-m", board=counter.name, cpu=None if cpu_name == counter.cpu else cpu_name,
                         counting=True)
    result = FitResult(chosen, cpu_name, get_dataset_info(dataset).name, counter.name, cpi, latency_ms)
    counts = _Counts()
    with tempfile.TemporaryDirectory(prefix="irnet-edge-fit-") as tmp:
        for spec in family(dataset):
            candidate = Candidate(spec, *_params(spec))
            result.candidates.append(candidate)
            ckpt = _checkpoint(spec, dataset)
            graph = export(ckpt)
            log(f"{candidate.name}: linking for {chosen.name}")
            try:
                candidate.flash, candidate.ram = _link(graph, ckpt, chosen, cpu_name, Path(tmp))
            except IrnetEdgeError as exc:
                candidate.problem = _too_big(str(exc))
                continue
            candidate.instructions = counts.get(spec, cpu_name)
            if candidate.instructions is None:
                log(f"{candidate.name}: counting instructions on {counter.name}")
                from .bench import bench

                candidate.instructions = bench(graph, "net", ckpt.sha256, deployment).binary.instructions
                counts.put(spec, cpu_name, candidate.instructions)
            candidate.ms = candidate.instructions * cpi / chosen.clock_hz * 1e3
            if latency_ms is not None and candidate.ms > latency_ms:
                candidate.problem = f"slower than {latency_ms:g} ms"
    if result.pick is None:
        raise IrnetEdgeError(_nothing_fits(result))
    return result


def _too_big(message: str) -> str:
    """The fit check's or the linker's refusal as a table cell: what overflows."""
    if "is too big for" in message:
        return "too big: " + message.split(": ", 1)[1].split(". Use")[0]
    lines = [line for line in message.splitlines() if "overflow" in line or "will not fit" in line]
    return "does not link: " + (lines[0].strip()[:100] if lines else message.splitlines()[0][:100])


def _nothing_fits(result: FitResult) -> str:
    linked = [c for c in result.candidates if c.instructions is not None]
    where = f"{result.board.name} ({result.cpu} at {result.board.clock_hz / 1e6:g} MHz)"
    if not linked:
        smallest = min(result.candidates, key=lambda c: c.params)
        return f"no network of the MCU family fits {where}: the smallest, {smallest.name}, is {smallest.problem}"
    fastest = min(linked, key=lambda c: c.instructions)
    return (f"no network of the MCU family meets --latency-ms {result.latency_ms:g} on {where}: the fastest, "
            f"{fastest.name}, needs {fastest.instructions:,} instructions, about {fastest.ms:.2f} ms at "
            f"{result.cycles_per_instruction:g} cycles per instruction; allow more time or pick a faster board")


def train_pick(result: FitResult, out, data_dir=None, epochs: int | None = None, force: bool = False,
               log: Callable[[str], None] = print, train_limit: int | None = None) -> str:
    """Train the pick of a fit with the usual trainer (the MCU recipe; train_limit: the first N training images
    only) into out (model.pt, metrics.json, the training curve), then write and build its firmware for the board
    into out/firmware. Returns the firmware's size report. Raises IrnetEdgeError as `train` and `firmware` do."""
    from .api import convert
    from .train import TrainConfig, train

    pick = result.pick
    if pick is None:
        raise IrnetEdgeError(_nothing_fits(result))
    out = Path(out)
    config = TrainConfig(arch=pick.name, dataset=result.dataset, data_dir=None if data_dir is None else str(data_dir),
                         epochs=epochs, spec=pick.spec, train_limit=train_limit)
    metrics = train(config, out, force=force, log=log)
    log(f"{pick.name}: test accuracy {metrics['test_accuracy']:.4f}")
    model = convert(out / "model.pt")
    return model.firmware(out / "firmware", result.board.name, None if result.cpu == result.board.cpu else result.cpu,
                          data_dir=data_dir, force=force)
