"""Running Cortex-M firmware under qemu-system-arm: emulated boards with semihosting (console, files and exit
status), and real boards on an emulator of their chip (e.g. the Nucleo STM32F4 boards on QEMU's netduinoplus2, an
STM32F405) with their own console UART, read from QEMU's serial port."""
import os
import re
import select
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ..codegen import write_tree
from ..codegen.firmware import Board, firmware_weight_bytes, render_firmware, resolve_cpu, runs_on
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
    """Runs elf under QEMU in cwd (default: the ELF's folder). The ELF is named relative to cwd: QEMU hands its
    path to the firmware as the first word of the semihosting command line, which the firmware splits on spaces."""
    toolchain.require_tool("qemu-system-arm", "qemu-system-arm")
    cwd = Path(cwd) if cwd is not None else Path(elf).parent
    kernel = Path(os.path.relpath(elf, cwd))
    try:
        result = subprocess.run(qemu_command(machine, kernel, append, icount), capture_output=True, text=True,
                                cwd=cwd, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise IrnetEdgeError(f"{elf} did not finish within {timeout} s under QEMU {machine}") from None
    return result.returncode, result.stdout + result.stderr


# the demo's last line (startup.c's board_exit on a board without semihosting): a real board then sleeps forever,
# so under an emulator of its chip the runner stops QEMU when it reads one of these
FINAL_LINES = {"done": 0, "failed": 1}


def uart_command(machine: str, serial: int, elf: Path, icount: bool = False) -> list[str]:
    """QEMU with the chip's UART number `serial` (0-based, in QEMU's order) on stdout, the others unconnected, and
    no semihosting (a real board's firmware has none)."""
    return ["qemu-system-arm", "-M", machine, *(["-icount", "shift=0"] if icount else []),
            "-display", "none", "-monitor", "none", *(["-serial", "null"] * serial), "-serial", "stdio",
            "-kernel", str(elf)]


def run_uart(machine: str, serial: int, elf: Path, timeout: int = 120, icount: bool = False) -> tuple[int, str]:
    """Runs a real board's firmware on an emulator of its chip until it prints its final line ("done": status 0,
    "failed": 1), then stops QEMU; gives up after `timeout` seconds. Returns (status, console output with \\n
    line ends)."""
    toolchain.require_tool("qemu-system-arm", "qemu-system-arm")
    process = subprocess.Popen(uart_command(machine, serial, elf, icount), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    deadline, data, status = time.monotonic() + timeout, b"", None
    try:
        while status is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([process.stdout], [], [], min(left, 1.0))
            if not ready:
                continue
            chunk = os.read(process.stdout.fileno(), 65536)
            if not chunk:  # QEMU exited by itself
                break
            data += chunk
            lines = data.replace(b"\r", b"").split(b"\n")
            status = next((FINAL_LINES[line.decode(errors="replace")] for line in lines[:-1]
                           if line.decode(errors="replace") in FINAL_LINES), None)
    finally:
        process.kill()
        process.wait()
    output = data.replace(b"\r\n", b"\n").decode(errors="replace")
    if status is None:
        ended = "QEMU exited" if time.monotonic() < deadline else f"nothing more within {timeout} s"
        raise IrnetEdgeError(f"{elf} printed no final line (done or failed) under QEMU {machine}: {ended}. Its "
                             f"output:\n{output[-2000:]}")
    return status, output


def run_board(board: Board, elf: Path, timeout: int = 120, icount: bool = False) -> tuple[int, str]:
    """A firmware's demo on the QEMU machine that runs its board: the board itself (semihosting console, exit
    status passed through) or an emulator of its chip (its console UART; see run_uart)."""
    if board.emulator:
        return run_elf(board.emulator["machine"], elf, timeout=timeout, icount=icount)
    if board.emulated_by:
        return run_uart(board.emulated_by["machine"], board.emulated_by["serial"], elf, timeout, icount)
    raise IrnetEdgeError(f"{board.name} is a real board that no emulator here runs; flash it with "
                         "`irnet-edge flash PROJECT`")


def emulator_clock_hz(board: Board) -> int:
    """The clock SysTick counts under the board's emulator (an emulator of a chip runs at its own fixed clock)."""
    return board.emulated_by["clock_hz"] if board.emulated_by and not board.emulator else board.clock_hz


COMPILERS = ("gcc", "clang")
_OVERFLOW = re.compile(r"region [`']?(\w+)'? overflowed by (\d+) bytes")  # GNU ld's message


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
        log = result.stdout + result.stderr
        overflow = _OVERFLOW.search(log)
        if overflow:  # the fit check's estimate was short: say so in one line, with the numbers
            raise IrnetEdgeError(f"the firmware does not fit: the linker's {overflow.group(1)} region overflowed by "
                                 f"{int(overflow.group(2)):,} bytes (the fit check estimated the code below what it "
                                 "takes); use a smaller model, fewer --samples, or a board with more memory")
        raise IrnetEdgeError(f"building the firmware in {tree} failed:\n{log[-4000:]}")
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
    if runs_on(board) is None:
        raise IrnetEdgeError(f"{board.name} is a real board that no emulator here runs; verify runs on an emulated "
                             "board (e.g. mps2-an386) or a real one whose chip QEMU emulates (e.g. nucleo-f446re)")
    resolve_cpu(board, cpu)
    expected = reference.run_batched(graph, inputs_hwc).numpy()
    labels = np.zeros(len(inputs_hwc), dtype=np.uint8) if labels is None else labels
    if board.emulator is None:
        got = _logits_over_uart(graph, prefix, checkpoint_sha256, inputs_hwc, board, cpu, dataset, labels, compiler,
                                extra_cflags)
        return VerifyResult.compare(got, expected)
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


LOGITS_LINE = re.compile(r"^logits (\d+):((?: [0-9a-f]{8})+)$", re.MULTILINE)


UART_CODE_RESERVE = 48 * 1024  # the firmware's code beside weights and samples: about 20 KB for mcu_m4 at -O2


def uart_chunk(graph: Graph, board: Board) -> int:
    """How many inputs one firmware image can embed next to the model on the board's flash."""
    free = board.flash["length"] - firmware_weight_bytes(graph) - UART_CODE_RESERVE
    return max(1, min(1000, free // (graph.tensor(graph.input).nbytes + 1)))


def _logits_over_uart(graph: Graph, prefix: str, checkpoint_sha256: str, inputs_hwc: torch.Tensor, board: Board,
                      cpu: str | None, dataset: str, labels: np.ndarray, compiler: str,
                      extra_cflags: str) -> np.ndarray:
    """A real board's firmware on an emulator of its chip: the inputs embedded as the demo's samples (as many
    images as fit per build), built with -DBOARD_PRINT_LOGITS, every logit read back from the console UART as
    its float32 bits in hex."""
    pixels, chunk, parts = inputs_hwc.numpy().astype(np.uint8), uart_chunk(graph, board), []
    flags = f"{extra_cflags} -DBOARD_PRINT_LOGITS".strip()
    with tempfile.TemporaryDirectory(prefix="irnet-edge-uart-") as tmp:
        for start in range(0, len(pixels), chunk):
            part, tree = pixels[start:start + chunk], Path(tmp) / f"fw{start}"
            files = render_firmware(graph, prefix, checkpoint_sha256, board, cpu, part,
                                    labels[start:start + chunk], dataset)
            write_tree(files, tree, force=True, build=lambda t: build_firmware(t, flags, compiler))
            _, output = run_uart(board.emulated_by["machine"], board.emulated_by["serial"], tree / "app.elf",
                                 timeout=60 + 2 * len(part))
            found = {int(m.group(1)): m.group(2).split() for m in LOGITS_LINE.finditer(output)}
            if sorted(found) != list(range(len(part))):
                raise IrnetEdgeError(f"the firmware printed logits for {len(found)} of {len(part)} inputs on "
                                     f"{board.emulated_by['machine']}:\n{output[-2000:]}")
            words = [int(word, 16) for i in range(len(part)) for word in found[i]]
            parts.append(np.array(words, dtype=np.uint32).view(np.float32))
    return np.concatenate(parts)
