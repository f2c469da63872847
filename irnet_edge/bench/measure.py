"""`irnet-edge bench`: exact instructions per inference, per op, with flash and RAM, on an emulated target.

The model is built with its bench marks (PREFIX_BENCH: an empty function called before the first op and
after every op) and run once under QEMU with irnet-edge's counting plugin; its logits are checked bit for
bit against the reference first, so every number describes code that computes the right answer.
"""
import os
import platform
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..codegen import write_tree
from ..codegen.firmware import Board, check_fit, render_firmware, resolve_cpu
from ..codegen.schedule import schedule
from ..errors import IrnetEdgeError
from ..ir import reference
from ..ir.baseline import float_baseline
from ..ir.fuse import fused_parts
from ..ir.graph import Graph, Op
from ..ir.ops import get as get_op
from ..verify import host, qemu, toolchain
from ..verify.deployment import Deployment
from . import m4_cycles
from .plugin import Report, build_plugin, parse_report, plugin_args

SCHEMA = "irnet-edge-bench/2"  # 2: the target's "arch" became "isa"
BENCH_CFLAGS = "-std=c99 -O2"


@dataclass
class Program:
    """A built bench binary: how to run it on one input file, and the tools that read it."""
    elf: Path
    command: list[str]  # the emulator first; the plugin goes right after it
    work: Path
    outputs: Path
    nm: str
    toolchain: dict
    emulator: str
    image: dict | None = None  # whole firmware image (Cortex-M)
    objdump: str | None = None  # set where a cycle table exists for the core


@dataclass
class Layer:
    index: int
    kind: str
    source: str
    output: str
    instructions: int
    binary_macs: int
    float_macs: int
    fused: list[str]  # what the op took in (irnet_edge.ir.fuse.fused_parts): "pool 2", "residual add", "sign"

    def to_json(self, total: int) -> dict:
        return {"index": self.index, "kind": self.kind, "fused": self.fused, "source": self.source,
                "output": self.output,
                "instructions": self.instructions, "share": round(self.instructions / max(total, 1), 6),
                "binary_macs": self.binary_macs, "float_macs": self.float_macs,
                "binary_macs_per_instruction": round(self.binary_macs / self.instructions, 4)
                if self.binary_macs and self.instructions else None}


@dataclass
class Measurement:
    instructions: int
    layers: list[Layer]
    model_flash_bytes: int
    model_ram_bytes: int
    arena_bytes: int  # the planned arena, part of model_ram_bytes
    toolchain: dict
    emulator: str
    image: dict | None = None
    cycles: m4_cycles.CycleEstimate | None = None

    def to_json(self) -> dict:
        return {"instructions": self.instructions, "bit_exact": True,
                "model_flash_bytes": self.model_flash_bytes, "model_ram_bytes": self.model_ram_bytes,
                "arena_bytes": self.arena_bytes,
                "image": self.image, "cycle_estimate": self.cycles.to_json() if self.cycles else None,
                "toolchain": self.toolchain, "emulator": self.emulator,
                "layers": [layer.to_json(self.instructions) for layer in self.layers]}


@dataclass
class BenchResult:
    model: str
    checkpoint_sha256: str
    target: Deployment
    input: str
    binary: Measurement
    baseline: Measurement | None = None

    def ratios(self) -> dict | None:
        if self.baseline is None:
            return None
        b, f = self.binary, self.baseline
        return {"instructions": round(f.instructions / b.instructions, 3),
                "model_flash_bytes": round(f.model_flash_bytes / b.model_flash_bytes, 3),
                "model_ram_bytes": round(f.model_ram_bytes / b.model_ram_bytes, 3)}

    def _target_json(self) -> dict:
        where = self.target.to_json()
        if self.target.target.name == "host":
            where["isa"] = platform.machine()
        return where

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "tool_version": __version__, "model": self.model,
                "checkpoint_sha256": self.checkpoint_sha256, "target": self._target_json(), "input": self.input,
                "binary": self.binary.to_json(), "baseline": self.baseline.to_json() if self.baseline else None,
                "baseline_over_binary": self.ratios()}


def macs(graph: Graph, op: Op) -> tuple[int, int]:
    """(binary, float) multiply-accumulates of an op, nominal: every tap of every computed output, padding
    included (ir/ops.py's accounting of its kind)."""
    return get_op(op.kind).macs(graph, op)


def _tool_version(cc: str) -> str:
    result = subprocess.run([cc, "--version"], capture_output=True, text=True)
    return result.stdout.splitlines()[0] if result.returncode == 0 and result.stdout else cc


def _host_program(graph: Graph, prefix: str, sha: str, work: Path, target: Deployment) -> Program:
    cross = target.cross
    runner, launcher = host.build_runner(graph, prefix, sha, work / "c", BENCH_CFLAGS, (f"{prefix.upper()}_BENCH",),
                                         "-static", target.isa, target.target)
    # the host binary runs under the qemu-user of its own architecture, which is what counts it
    launcher = list(launcher) or [f"qemu-{platform.machine()}"]
    toolchain.require_tool(launcher[0], "qemu-user")
    cc = cross.cc if cross else "gcc"
    cflags = f"{BENCH_CFLAGS} {cross.cflags}" if cross else BENCH_CFLAGS
    outputs = work / "out.bin"
    return Program(runner, [*launcher, str(runner), str(work / "in.bin"), str(outputs)], work, outputs,
                   cc[:-3] + "nm" if cross else "nm",
                   {"cc": cc, "version": _tool_version(cc), "cflags": f"{cflags} -ffp-contract=off",
                    "ldflags": "-static"}, " ".join(launcher))


def _firmware_program(graph: Graph, prefix: str, sha: str, work: Path, board: Board, cpu: str | None,
                      sample: np.ndarray) -> Program:
    if board.emulator is None:
        raise IrnetEdgeError(f"{board.name} is a real board; bench runs on an emulated one (e.g. mps2-an386)")
    cpu_name, preset = resolve_cpu(board, cpu)
    tree = work / "fw"
    write_tree(render_firmware(graph, prefix, sha, board, cpu, sample[None], np.zeros(1, np.uint8), ""), tree,
               force=True)
    elf = qemu.build_firmware(tree, f"-D{prefix.upper()}_BENCH")
    machine = board.emulator["machine"]
    # named relative to the working folder: the firmware splits its semihosting command line on spaces
    return Program(elf, qemu.qemu_command(machine, elf.relative_to(work), "in.bin out.bin"), work, work / "out.bin",
                   "arm-none-eabi-nm", {"cc": "arm-none-eabi-gcc", "version": _tool_version("arm-none-eabi-gcc"),
                                        "cflags": " ".join([*preset["flags"], "-std=c99 -O2 -ffp-contract=off "
                                                            "-ffunction-sections -fdata-sections"]),
                                        "cpu": cpu_name},
                   f"qemu-system-arm -M {machine}", qemu.image_footprint(tree, board),
                   "arm-none-eabi-objdump" if preset.get("cycle_table") == "cortex-m4" else None)


def _symbols(program: Program, prefix: str) -> dict[str, tuple[str, int, int]]:
    """name -> (type, address, size) of the model's symbols in the linked program: its own (they carry the prefix)
    and the irnet runtime's, less the optional self-test (NAME_selftest.c)."""
    result = subprocess.run([program.nm, "-S", str(program.elf)], capture_output=True, text=True)
    if result.returncode != 0:
        raise IrnetEdgeError(f"{program.nm} could not read {program.elf}: {result.stderr[-500:]}")
    out = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if (len(parts) == 4 and parts[3].startswith((f"{prefix}_", "irnet_"))
                and not parts[3].startswith(f"{prefix}_selftest")):
            out[parts[3]] = (parts[2], int(parts[0], 16), int(parts[1], 16))
    return out


def _mark_address(symbols: dict, program: Program, prefix: str) -> int:
    if f"{prefix}_bench_mark" not in symbols:
        raise IrnetEdgeError(f"{program.elf} has no {prefix}_bench_mark: it was not built with "
                             f"{prefix.upper()}_BENCH")
    return symbols[f"{prefix}_bench_mark"][1] & ~1  # Thumb symbols carry the mode in bit 0


def _count(program: Program, mark: int, graph: Graph, sample: np.ndarray, expected: np.ndarray,
           log) -> Report:
    library = build_plugin(log)
    sample.tofile(program.work / "in.bin")
    report_path = program.work / "count.txt"
    marks = len(graph.ops) + 1
    command = [program.command[0], *plugin_args(library, mark, marks, report_path),
               *program.command[1:]]
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=program.work, timeout=1800,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
    except subprocess.TimeoutExpired:
        raise IrnetEdgeError(f"{program.emulator} did not finish within 30 minutes") from None
    if result.returncode != 0:
        raise IrnetEdgeError(f"the bench program failed under {program.emulator} (status {result.returncode}):\n"
                             f"{(result.stdout + result.stderr)[-2000:]}")
    got = np.fromfile(program.outputs, dtype=np.float32)
    if got.size != expected.size or host.VerifyResult.compare(got, expected).first_bad is not None:
        raise IrnetEdgeError("the bench build's logits differ from the reference: run `irnet-edge verify` on "
                             "this target to find the op")
    return parse_report(report_path, marks)


def _measure(graph: Graph, prefix: str, sha: str, target: Deployment, sample: np.ndarray, expected: np.ndarray,
             work: Path, log) -> Measurement:
    if target.board is not None:
        program = _firmware_program(graph, prefix, sha, work, target.board, target.cpu, sample)
    else:
        program = _host_program(graph, prefix, sha, work, target)
    planned = schedule(graph, target.target)  # what the C runs: one bench mark after each of its ops
    graph = planned.graph
    symbols = _symbols(program, prefix)
    report = _count(program, _mark_address(symbols, program, prefix), graph, sample, expected, log)
    layers = []
    for i, (op, count) in enumerate(zip(graph.ops, report.per_segment(), strict=True)):
        binary, flt = macs(graph, op)
        layers.append(Layer(i, op.kind, op.source, graph.tensor(op.output).describe(), count, binary, flt,
                            fused_parts(op)))
    flash = sum(size for kind, _, size in symbols.values() if kind in "TtRrDd")
    ram = sum(size for kind, _, size in symbols.values() if kind in "DdBb")
    cycles = m4_cycles.estimate(report, program.elf, program.objdump) if program.objdump else None
    return Measurement(report.total, layers, flash, ram, planned.arena, program.toolchain, program.emulator,
                       program.image, cycles)


def bench(graph: Graph, prefix: str, checkpoint_sha256: str, target: Deployment, baseline: bool = False,
          log=lambda message: None) -> BenchResult:
    """Measures graph (and its float32 baseline) on target (see irnet_edge.verify.deployment.resolve) with one
    seeded random input."""
    base_graph = float_baseline(graph) if baseline else None  # refuses unsupported graphs before any build
    if target.board is not None:
        check_fit(graph, target.board, 1, target.cpu)
        if base_graph is not None:
            try:
                check_fit(base_graph, target.board, 1, target.cpu)
            except IrnetEdgeError as exc:
                raise IrnetEdgeError(f"the float32 baseline does not fit: {exc}; bench without --baseline here, or "
                                     "on a board with more memory (mps2-an386: 4 MB)") from None
    t = graph.tensor(graph.input)
    sample = np.random.default_rng(0).integers(0, 256, size=(t.height, t.width, t.channels), dtype=np.uint8)
    expected = reference.run(graph, torch.from_numpy(sample[None])).numpy().astype(np.float32)
    with tempfile.TemporaryDirectory(prefix="irnet-edge-bench-") as tmp:
        work = Path(tmp)
        (work / "binary").mkdir()
        log(f"building and counting {graph.name} on {target.describe()}")
        binary = _measure(graph, prefix, checkpoint_sha256, target, sample, expected, work / "binary", log)
        base = None
        if base_graph is not None:
            (work / "baseline").mkdir()
            log("building and counting its float32 baseline")
            base = _measure(base_graph, prefix, checkpoint_sha256, target, sample, expected, work / "baseline", log)
    return BenchResult(graph.name, checkpoint_sha256, target,
                       f"uint8 {t.height}x{t.width}x{t.channels} from numpy default_rng(0)", binary, base)
