"""Firmware projects: the generated model plus board support rendered from firmware/ (boards and CPUs are
data files), checked against the board's flash and RAM before anything is written."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IrnetEdgeError
from ..ir.graph import Graph
from ..names import board_names, cpu_names  # noqa: F401 (cpu_names re-exported with the presets)
from ..resources import asset_dir
from .planner import plan
from .render import check_prefix, format_array, render, render_dir
from .targets import get_target

CODE_ESTIMATE = 12 * 1024  # startup, kernels, main, libc pieces: about 7 KB at -O2 on the zoo models, plus margin
DEFAULT_STACK = 4096
FEATURES = ("fpu", "dsp", "mve")


@dataclass(frozen=True)
class Board:
    name: str
    description: str
    cpu: str
    console: str
    flash: dict
    ram: dict
    clock_hz: int
    emulator: dict | None = None
    flash_tool: dict | None = None
    stack_bytes: int = DEFAULT_STACK
    extras: tuple[str, ...] = ()  # folders under firmware/project/ with chip-specific files (e.g. rp2040)
    boot_section: str | None = None  # a section the linker places first in flash (a boot loader)


def load_board(name: str) -> Board:
    path = asset_dir("firmware") / "boards" / f"{name}.json"
    if not path.is_file():
        raise IrnetEdgeError(f"unknown board {name!r}; available: {', '.join(board_names())}")
    data = json.loads(path.read_text())
    return Board(name=name, **{**data, "extras": tuple(data.get("extras", ()))})


def load_cpu(name: str) -> dict:
    cpus = json.loads((asset_dir("firmware") / "cpus.json").read_text())
    if name not in cpus:
        raise IrnetEdgeError(f"unknown CPU {name!r}; available: {', '.join(cpus)}")
    return cpus[name]


def resolve_cpu(board: Board, cpu: str | None) -> tuple[str, dict]:
    """The board's CPU, or a smaller one whose code the board's core also runs (e.g. v6-M on an M3)."""
    name = cpu or board.cpu
    chosen, native = load_cpu(name), load_cpu(board.cpu)
    missing = [f for f in FEATURES if chosen[f] and not native[f]]
    if missing:
        raise IrnetEdgeError(f"--cpu {name} needs {', '.join(missing)}, which {board.name} ({board.cpu}) lacks")
    return name, chosen


@dataclass
class Budget:
    weights: int
    samples: int
    arena: int
    stack: int
    buffers: int

    @property
    def flash(self) -> int:
        return self.weights + self.samples + CODE_ESTIMATE

    @property
    def ram(self) -> int:
        return self.arena + self.stack + self.buffers


def check_fit(graph: Graph, board: Board, samples: int) -> Budget:
    _, arena = plan(graph)
    inp = graph.tensor(graph.input)
    budget = Budget(weights=graph.const_bytes(), samples=samples * (inp.nbytes + 1), arena=arena,
                    stack=board.stack_bytes, buffers=inp.nbytes + 1024)
    problems = []
    if budget.flash > board.flash["length"]:
        problems.append(f"flash: needs {budget.flash:,} bytes (weights {budget.weights:,}, samples "
                        f"{budget.samples:,}, code about {CODE_ESTIMATE:,}), the board has {board.flash['length']:,}")
    if budget.ram > board.ram["length"]:
        problems.append(f"RAM: needs {budget.ram:,} bytes (arena {budget.arena:,}, stack {budget.stack:,}, "
                        f"buffers {budget.buffers:,}), the board has {board.ram['length']:,}")
    if problems:
        raise IrnetEdgeError(f"{graph.name} is too big for {board.name}: {'; '.join(problems)}. Use a smaller model "
                             "(e.g. mcu_m0), fewer --samples, or a board with more memory")
    return budget


def project_names() -> frozenset[str]:
    """Stems of the files a firmware project holds besides the model's src/ (board.h, console.c, main.c,
    linker.ld, samples.c, startup.c, the chips' extras, app.elf...), lower case."""
    root = asset_dir("firmware") / "project"
    stems = {p.name.split(".")[0] for p in root.rglob("*.j2")}
    stems = {"console" if stem.startswith("console_") else stem for stem in stems}
    return frozenset(stem.lower() for stem in stems | {"app", "size", "boot2_raw", "firmware"})


def check_firmware_prefix(prefix: str) -> str:
    """check_prefix, and not a name of the project's own files: the model's src/PREFIX.h would lose to
    (or be built in place of) the project's file of that name."""
    check_prefix(prefix)
    if prefix.lower() in project_names():
        raise IrnetEdgeError(f"--prefix {prefix!r} collides with the firmware project's own files "
                             f"({', '.join(sorted(project_names()))}): pick another prefix")
    return prefix


def render_firmware(graph: Graph, prefix: str, checkpoint_sha256: str, board: Board, cpu: str | None,
                    sample_inputs: np.ndarray, sample_labels: np.ndarray, dataset: str) -> dict[str, str]:
    """Files of a self-contained firmware project (sample_inputs: uint8 (N, H, W, C))."""
    check_firmware_prefix(prefix)
    cpu_name, cpu_preset = resolve_cpu(board, cpu)
    budget = check_fit(graph, board, len(sample_inputs))
    files, manifest = render(graph, get_target("cortex-m"), prefix, checkpoint_sha256,
                             selftest_input=sample_inputs[0], selftest_source=f"{dataset or 'input'} sample 0")
    # the project builds with its own Makefile: keep the model's C, not the library build files
    files = {name: text for name, text in files.items() if name.startswith("src/")}
    ctx = {
        "banner": files[f"src/{prefix}.h"].splitlines()[0], "prefix": prefix, "guard": prefix.upper(),
        "model_name": graph.name, "board": board, "board_name": board.name, "cpu": cpu_preset, "cpu_name": cpu_name,
        "flash_origin": hex(board.flash["origin"]), "flash_length": board.flash["length"],
        "ram_origin": hex(board.ram["origin"]), "ram_length": board.ram["length"], "stack_bytes": board.stack_bytes,
        "input": graph.tensor(graph.input), "dataset": dataset,
        "samples": [{"body": format_array(s.reshape(-1).astype(np.uint8))} for s in sample_inputs],
        "labels": format_array(np.asarray(sample_labels, dtype=np.uint8)),
    }
    ctx["make_banner"] = ctx["banner"].replace("/*", "#").replace(" */", "")

    def console_only(name: str) -> str | None:  # one console driver per board, always named console.c
        if not name.startswith("console_"):
            return name
        return "console.c" if name == f"console_{board.console}.c" else None

    files.update(render_dir(asset_dir("firmware") / "project", ctx, prefix, console_only))
    for extra in board.extras:
        files.update(render_dir(asset_dir("firmware") / "project" / extra, ctx, prefix))
    files["firmware.json"] = json.dumps({
        "board": board.name, "cpu": cpu_name, "prefix": prefix, "emulator": board.emulator,
        "flash_tool": board.flash_tool, "flash": board.flash, "ram": board.ram, "budget": {
            "weights": budget.weights, "samples": budget.samples, "arena": budget.arena, "stack": budget.stack,
            "flash_estimate": budget.flash, "ram_estimate": budget.ram},
        "model": manifest["model"], "checkpoint_sha256": checkpoint_sha256}, indent=2) + "\n"
    return files


def read_project(folder: Path) -> dict:
    info = folder / "firmware.json"
    if not info.is_file():
        raise IrnetEdgeError(f"{folder} is not a firmware project (no firmware.json); create one with "
                             "`irnet-edge firmware MODEL.pt --board B --out DIR`")
    return json.loads(info.read_text())
