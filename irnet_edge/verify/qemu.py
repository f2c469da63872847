"""Running Cortex-M firmware under qemu-system-arm (semihosting for console, files and exit status)."""
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..codegen import write_tree
from ..codegen.firmware import Board, render_firmware, resolve_cpu
from ..errors import IrnetEdgeError
from ..ir import reference
from ..ir.graph import Graph
from . import toolchain
from .host import VerifyResult


def qemu_command(machine: str, elf: Path, append: str | None = None, icount: bool = False) -> list[str]:
    # -icount shift=0: one instruction advances virtual time by 1 ns, so timers count instructions
    cmd = ["qemu-system-arm", "-M", machine, *(["-icount", "shift=0"] if icount else []),
           "-display", "none", "-monitor", "none", "-serial", "none",
           "-chardev", "stdio,id=sh0", "-semihosting-config", "enable=on,target=native,chardev=sh0",
           "-kernel", str(elf)]
    return cmd + (["-append", append] if append else [])


def run_elf(machine: str, elf: Path, append: str | None = None, cwd: Path | None = None,
            timeout: int = 120, icount: bool = False) -> tuple[int, str]:
    toolchain.require_tool("qemu-system-arm", "qemu-system-arm")
    try:
        result = subprocess.run(qemu_command(machine, elf, append, icount), capture_output=True, text=True, cwd=cwd,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        raise IrnetEdgeError(f"{elf} did not finish within {timeout} s under QEMU {machine}") from None
    return result.returncode, result.stdout + result.stderr


COMPILERS = ("gcc", "clang")


def build_firmware(tree: Path, extra_cflags: str = "", compiler: str = "gcc") -> Path:
    """make in a firmware project; compiler clang compiles with clang --target=<the core's triple> and the same
    newlib headers, arm-none-eabi-gcc still links."""
    if compiler not in COMPILERS:
        raise IrnetEdgeError(f"unknown compiler {compiler!r}; available: {', '.join(COMPILERS)}")
    toolchain.require_tool("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi")
    if compiler == "clang":
        toolchain.require_tool("clang", "clang")
    result = subprocess.run(["make", "-C", str(tree), f"-j{os.cpu_count() or 1}", f"EXTRA_CFLAGS={extra_cflags}",
                             f"COMPILER={compiler}"], capture_output=True, text=True)
    if result.returncode != 0:
        raise IrnetEdgeError(f"building the firmware in {tree} failed:\n{(result.stdout + result.stderr)[-4000:]}")
    return tree / "app.elf"


def instructions_per_inference(output: str, clock_hz: int) -> int | None:
    """From a demo run under -icount shift=0: SysTick counts the core clock, one instruction is 1 ns."""
    for line in output.splitlines():
        if line.startswith("SysTick cycles per inference:"):
            return round(int(line.split(":")[1]) * 1e9 / clock_hz)
    return None


def _sections(tree: Path) -> dict[str, int]:
    sections = {}
    for line in (tree / "size.txt").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0].startswith(".") and parts[1].isdigit():
            sections[parts[0]] = int(parts[1])
    return sections


def image_footprint(tree: Path, board: Board, sections: dict[str, int] | None = None) -> dict:
    """Flash (text + data) and RAM (data + bss + the board's stack) of a built firmware image."""
    sections = _sections(tree) if sections is None else sections
    return {"flash_bytes": sections.get(".text", 0) + sections.get(".ARM.exidx", 0) + sections.get(".data", 0),
            "ram_bytes": sections.get(".data", 0) + sections.get(".bss", 0) + board.stack_bytes,
            "stack_bytes": board.stack_bytes}


def size_report(tree: Path, board: Board) -> str:
    """Sections of app.elf against the board's flash and RAM, and the deepest static stack frame."""
    sections = _sections(tree)
    image = image_footprint(tree, board, sections)
    flash, ram = image["flash_bytes"], image["ram_bytes"]
    frames = [int(line.split()[1]) for su in tree.rglob("*.su") for line in su.read_text().splitlines()
              if len(line.split()) >= 2 and line.split()[1].isdigit()]
    return (f"{board.name}: text {sections.get('.text', 0):,}, data {sections.get('.data', 0):,}, "
            f"bss {sections.get('.bss', 0):,} bytes\n"
            f"flash {flash:,} of {board.flash['length']:,} bytes ({flash / board.flash['length']:.1%}); "
            f"RAM {ram:,} of {board.ram['length']:,} bytes ({ram / board.ram['length']:.1%}) including a "
            f"{board.stack_bytes:,}-byte stack; largest static stack frame {max(frames, default=0):,} bytes\n"
            f"built {tree / 'app.elf'}" + "".join(f", {f}" for f in ("app.bin", "app.hex", "app.uf2")
                                                  if (tree / f).is_file()))


def verify(graph: Graph, prefix: str, checkpoint_sha256: str, inputs_hwc: torch.Tensor, board: Board,
           cpu: str | None = None, dataset: str = "", labels: np.ndarray | None = None, compiler: str = "gcc",
           extra_cflags: str = "") -> VerifyResult:
    if board.emulator is None:
        raise IrnetEdgeError(f"{board.name} is a real board; verify runs on an emulated one (e.g. mps2-an386)")
    resolve_cpu(board, cpu)
    expected = reference.run_batched(graph, inputs_hwc).numpy()
    labels = np.zeros(len(inputs_hwc), dtype=np.uint8) if labels is None else labels
    with tempfile.TemporaryDirectory(prefix="irnet-edge-qemu-") as tmp:
        work = Path(tmp)
        files = render_firmware(graph, prefix, checkpoint_sha256, board, cpu, inputs_hwc[:2].numpy(), labels[:2],
                                dataset)
        write_tree(files, work / "fw", force=True, build=lambda tree: build_firmware(tree, extra_cflags, compiler))
        elf = work / "fw" / "app.elf"
        inputs_hwc.numpy().astype(np.uint8).tofile(work / "in.bin")
        timeout = 60 + len(inputs_hwc) * 2
        rc, output = run_elf(board.emulator["machine"], elf, "in.bin out.bin", cwd=work, timeout=timeout)
        if rc != 0:
            raise IrnetEdgeError(f"the firmware exited with status {rc} under QEMU:\n{output[-2000:]}")
        got = np.fromfile(work / "out.bin", dtype=np.float32)
        if got.size != expected.size:
            raise IrnetEdgeError(f"the firmware wrote {got.size} logits, expected {expected.size}:\n{output[-2000:]}")
        return VerifyResult.compare(got, expected)
