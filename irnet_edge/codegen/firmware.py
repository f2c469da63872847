"""Firmware projects: the generated model plus board support rendered from firmware/ (boards and CPUs are
data files), checked against the board's flash and RAM before anything is written."""
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import IrnetEdgeError
from ..ir import ops
from ..ir.graph import Graph
from ..names import board_names, cpu_names  # noqa: F401 (cpu_names re-exported with the presets)
from ..resources import asset_dir
from .render import check_prefix, format_array, render, render_dir
from .schedule import schedule
from .targets import get_target

CLOCKS = ("full", "reset")  # firmware --clock: the board's full speed (PLL or crystal) or the clock after reset
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
    clock_hz: int  # the core clock the firmware sets up (firmware --clock full, the default)
    clock: dict | None = None  # how: a driver (firmware/project/clock_<driver>.c.j2) and its settings; None: fixed
    emulator: dict | None = None  # the board is a QEMU machine: {"machine": ...}, semihosting console
    # a real board whose chip QEMU emulates closely enough to run its firmware: {"machine", "chip", "serial" (the
    # index of the console UART among QEMU's -serial ports), "clock_hz" (SysTick's clock there), "flash", "ram"}
    emulated_by: dict | None = None
    flash_tool: dict | None = None
    stack_bytes: int = DEFAULT_STACK
    extras: tuple[str, ...] = ()  # folders under firmware/project/ with chip-specific files (e.g. rp2040)
    boot_section: str | None = None  # a section the linker places first in flash (a boot loader)


def load_board(name: str) -> Board:
    path = asset_dir("firmware") / "boards" / f"{name}.json"
    if not path.is_file():
        raise IrnetEdgeError(f"unknown board {name!r}; available: {', '.join(board_names())}")
    data = json.loads(path.read_text())
    board = Board(name=name, **{**data, "extras": tuple(data.get("extras", ()))})
    check_clock(board)
    check_emulated_by(board)
    return board


def _within(value: float, bounds: list, what: str, board: str) -> None:
    if not bounds[0] <= value <= bounds[1]:
        raise IrnetEdgeError(f"board preset {board}: {what} {value:,.0f} is outside {bounds[0]:,}..{bounds[1]:,}")


def check_clock(board: Board) -> None:
    """The clock settings of a board preset against its chip's limits (as the reference manuals give them): the
    PLL's input, VCO and output, the bus clocks and the flash wait states for clock_hz."""
    c = board.clock
    if c is None:
        return
    limits, name = c.get("limits", {}), board.name
    if c["driver"] == "stm32f4_pll":
        pll, hsi = c["pll"], 16_000_000
        _within(hsi / pll["m"], limits["vco_in_hz"], "PLL input (Hz)", name)
        _within(pll["n"], limits["pll_n"], "PLLN", name)
        _within(hsi / pll["m"] * pll["n"], limits["vco_hz"], "VCO (Hz)", name)
        sysclk = hsi / pll["m"] * pll["n"] / pll["p"]
        checks = [(sysclk == board.clock_hz, f"the PLL makes {sysclk:,.0f} Hz, clock_hz says {board.clock_hz:,}"),
                  (pll["p"] in (2, 4, 6, 8), f"PLLP {pll['p']} is not 2, 4, 6 or 8"),
                  (2 <= pll["q"] <= 15, f"PLLQ {pll['q']} is not 2..15"),
                  (sysclk <= limits["sysclk_hz"], f"SYSCLK {sysclk:,.0f} Hz is above {limits['sysclk_hz']:,}"),
                  (sysclk / c["apb1_div"] <= limits["apb1_hz"], f"APB1 {sysclk / c['apb1_div']:,.0f} Hz is above "
                   f"{limits['apb1_hz']:,}"),
                  (sysclk / c["apb2_div"] <= limits["apb2_hz"], f"APB2 {sysclk / c['apb2_div']:,.0f} Hz is above "
                   f"{limits['apb2_hz']:,}"),
                  (c["apb1_div"] in (1, 2, 4, 8, 16) and c["apb2_div"] in (1, 2, 4, 8, 16), "APB dividers are 1..16"),
                  (c["flash_latency"] >= -(-sysclk // limits["hz_per_wait_state"]) - 1,
                   f"{c['flash_latency']} flash wait states are too few for {sysclk:,.0f} Hz"),
                  (not c["over_drive"] or c["vos_scale"] == 1, "over-drive needs voltage scale 1"),
                  (c["over_drive"] or sysclk <= limits.get("without_over_drive_hz", sysclk),
                   f"above {limits.get('without_over_drive_hz', 0):,} Hz the chip needs over-drive")]
    elif c["driver"] == "rp2040_pll":
        pll, xosc = c["pll"], 12_000_000
        _within(pll["fbdiv"], limits["fbdiv"], "FBDIV", name)
        vco = xosc / pll["refdiv"] * pll["fbdiv"]
        _within(vco, limits["vco_hz"], "VCO (Hz)", name)
        sysclk = vco / pll["postdiv1"] / pll["postdiv2"]
        checks = [(sysclk == board.clock_hz, f"the PLL makes {sysclk:,.0f} Hz, clock_hz says {board.clock_hz:,}"),
                  (sysclk <= limits["sysclk_hz"], f"clk_sys {sysclk:,.0f} Hz is above {limits['sysclk_hz']:,}"),
                  (1 <= pll["postdiv2"] <= pll["postdiv1"] <= 7, "POSTDIV1 >= POSTDIV2, both 1..7")]
    elif c["driver"] == "nrf52_hfxo":
        checks = [(board.clock_hz == c["reset_hz"] == 64_000_000, "the nRF52840 runs at 64 MHz on HFINT and HFXO")]
    else:
        raise IrnetEdgeError(f"board preset {name}: unknown clock driver {c['driver']!r}")
    for ok, problem in checks:
        if not ok:
            raise IrnetEdgeError(f"board preset {name}: {problem}")


def check_emulated_by(board: Board) -> None:
    """A real board runs on an emulator of a compatible chip only if its memory lies inside the emulated chip's."""
    emu = board.emulated_by
    if emu is None:
        return
    for region in ("flash", "ram"):
        mine, theirs = getattr(board, region), emu[region]
        if not (theirs["origin"] <= mine["origin"] and
                mine["origin"] + mine["length"] <= theirs["origin"] + theirs["length"]):
            raise IrnetEdgeError(f"board preset {board.name}: its {region} does not fit in the {region} of "
                                 f"{emu['machine']} ({emu['chip']})")


def runs_on(board: Board) -> str | None:
    """The QEMU machine that runs the board's firmware: the board itself, or an emulator of its chip."""
    if board.emulator:
        return board.emulator["machine"]
    return board.emulated_by["machine"] if board.emulated_by else None


def clock_of(board: Board, clock: str = "full") -> tuple[int, int]:
    """(the core clock the firmware sets up, the clock after reset) for firmware --clock full|reset."""
    if clock not in CLOCKS:
        raise IrnetEdgeError(f"unknown clock {clock!r}; available: {', '.join(CLOCKS)}")
    reset = board.clock["reset_hz"] if board.clock else board.clock_hz
    return (board.clock_hz if clock == "full" else reset), reset


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
    code: int  # startup, kernels, main, libc: the CPU's code_bytes (cpus.json), measured, with a 2 KB margin
    arena: int
    stack: int
    buffers: int

    @property
    def flash(self) -> int:
        return self.weights + self.samples + self.code

    @property
    def ram(self) -> int:
        return self.arena + self.stack + self.buffers


def firmware_weight_bytes(graph: Graph) -> int:
    """Bytes of constants a firmware image holds for graph: those of the fused ops the Cortex-M target's C runs
    (the stem's normalisation table instead of the mean and std, for one)."""
    return ops.weight_bytes(schedule(graph, get_target("cortex-m")).graph)


def check_fit(graph: Graph, board: Board, samples: int, cpu: str | None = None) -> Budget:
    """The firmware's flash and RAM for graph on board (its own core, or cpu) with samples embedded inputs.
    Raises IrnetEdgeError naming the numbers where they exceed the board's."""
    inp = graph.tensor(graph.input)
    planned = schedule(graph, get_target("cortex-m"))  # the fused ops the firmware's C runs: constants and arena
    budget = Budget(weights=ops.weight_bytes(planned.graph), samples=samples * (inp.nbytes + 1),
                    code=resolve_cpu(board, cpu)[1]["code_bytes"], arena=planned.arena, stack=board.stack_bytes,
                    buffers=inp.nbytes + 1024)
    problems = []
    if budget.flash > board.flash["length"]:
        problems.append(f"flash: needs {budget.flash:,} bytes (weights {budget.weights:,}, samples "
                        f"{budget.samples:,}, code about {budget.code:,}), the board has {board.flash['length']:,}")
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
    stems = {stem.split("_")[0] if stem.startswith(("console_", "clock_")) else stem for stem in stems}
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
                    sample_inputs: np.ndarray, sample_labels: np.ndarray, dataset: str,
                    clock: str = "full") -> dict[str, str]:
    """Files of a self-contained firmware project (sample_inputs: uint8 (N, H, W, C)); clock: "full" sets up the
    board's clock_hz (PLL, crystal), "reset" keeps the clock the chip starts on."""
    check_firmware_prefix(prefix)
    clock_hz, reset_clock_hz = clock_of(board, clock)
    cpu_name, cpu_preset = resolve_cpu(board, cpu)
    budget = check_fit(graph, board, len(sample_inputs), cpu_name)
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
        "clock_mode": clock, "clock_hz": clock_hz, "reset_clock_hz": reset_clock_hz,
    }
    ctx["make_banner"] = ctx["banner"].replace("/*", "#").replace(" */", "")

    driver = board.clock["driver"] if board.clock else "none"

    def console_only(name: str) -> str | None:  # one console and one clock driver per board: console.c, clock.c
        if name.startswith("console_"):
            return "console.c" if name == f"console_{board.console}.c" else None
        if name.startswith("clock_"):
            return "clock.c" if name == f"clock_{driver}.c" else None
        return name

    files.update(render_dir(asset_dir("firmware") / "project", ctx, prefix, console_only))
    for extra in board.extras:
        files.update(render_dir(asset_dir("firmware") / "project" / extra, ctx, prefix))
    files["firmware.json"] = json.dumps({
        "board": board.name, "cpu": cpu_name, "prefix": prefix, "emulator": board.emulator,
        "emulated_by": board.emulated_by, "clock": {"mode": clock, "hz": clock_hz, "reset_hz": reset_clock_hz},
        "flash_tool": board.flash_tool, "flash": board.flash, "ram": board.ram, "budget": {
            "weights": budget.weights, "samples": budget.samples, "code": budget.code, "arena": budget.arena,
            "stack": budget.stack,
            "flash_estimate": budget.flash, "ram_estimate": budget.ram},
        "model": manifest["model"], "checkpoint_sha256": checkpoint_sha256}, indent=2) + "\n"
    return files


def read_project(folder: Path) -> dict:
    info = folder / "firmware.json"
    if not info.is_file():
        raise IrnetEdgeError(f"{folder} is not a firmware project (no firmware.json); create one with "
                             "`irnet-edge firmware MODEL.pt --board B --out DIR`")
    try:
        data = json.loads(info.read_text())
    except (ValueError, UnicodeDecodeError) as exc:
        raise IrnetEdgeError(f"{info} is not valid JSON ({str(exc)[:80]}); rebuild the project with "
                             "`irnet-edge firmware MODEL.pt --board B --out DIR --force`") from None
    if not isinstance(data, dict) or not isinstance(data.get("board"), str):
        raise IrnetEdgeError(f"{info} does not name its board; rebuild the project with "
                             "`irnet-edge firmware MODEL.pt --board B --out DIR --force`")
    return data
