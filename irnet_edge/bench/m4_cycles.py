"""A Cortex-M4 cycle estimate from an exact per-instruction execution profile.

Timings are those of ARM's Cortex-M4 Technical Reference Manual (DDI 0439B, section 3.3.1, Table 3-1, and
the FPU's Table 7-1) for zero-wait-state memory: N is the number of registers transferred and P the
pipeline refill after a taken branch, 1 to 3 cycles in the manual, counted as 2 here. Neighbouring single
loads and stores pipeline into one cycle each. Real boards with flash wait states or caches differ: this
is an estimate, and says so wherever it is reported.
"""
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import IrnetEdgeError
from .plugin import Report

REFILL = 2  # P
CONDITIONS = ("eq", "ne", "cs", "hs", "cc", "lo", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al")
# base mnemonic -> (cycles, +N per register listed, +P when it writes the PC)
TIMINGS = {
    **{m: (2, 0) for m in ("ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "ldrt", "ldrex", "str", "strb", "strh",
                           "strex", "mla", "mls", "mrs", "msr", "vldr", "vstr")},
    **{m: (1, 1) for m in ("ldm", "ldmia", "ldmfd", "ldmdb", "stm", "stmia", "stmea", "stmdb", "stmfd", "push",
                           "pop", "vldm", "vldmia", "vldmdb", "vstm", "vstmia", "vstmdb", "vpush", "vpop")},
    **{m: (3, 0) for m in ("ldrd", "strd", "vmla", "vmls", "vnmla", "vnmls", "vfma", "vfms", "vfnma", "vfnms")},
    **{m: (14, 0) for m in ("vdiv", "vsqrt")},
    "sdiv": (7, 0), "udiv": (7, 0),  # 2 to 12 in the manual, operand dependent
    "tbb": (2 + REFILL, 0), "tbh": (2 + REFILL, 0),
}
BRANCHES = ("b", "bl", "bx", "blx", "cbz", "cbnz")
SINGLE_TRANSFERS = {"ldr", "ldrb", "ldrh", "ldrsb", "ldrsh", "str", "strb", "strh"}
_LINE = re.compile(r"^\s*([0-9a-f]+):\s+([a-z][a-z0-9.]*)\s*(.*)$")  # objdump -d --no-show-raw-insn


@dataclass(frozen=True)
class Instruction:
    base: str  # mnemonic without width, data type, condition and flag-setting suffixes
    operands: str
    conditional: bool


@dataclass(frozen=True)
class CycleEstimate:
    cycles: int
    instructions: int

    def to_json(self) -> dict:
        return {"core": "cortex-m4", "cycles": self.cycles,
                "cycles_per_instruction": round(self.cycles / max(self.instructions, 1), 3),
                "assumes": f"zero-wait-state memory; a taken branch costs 1 + P with P = {REFILL}; "
                           "Cortex-M4 TRM (DDI 0439B) Table 3-1 and FPU Table 7-1"}


def split_mnemonic(mnemonic: str, operands: str) -> Instruction:
    """Finds the timed base of e.g. "ldrbeq.w", "bls.n", "adds", "vmla.f32"; everything not in TIMINGS or
    BRANCHES (data processing, multiplies, DSP, bit-field, FPU arithmetic, IT) takes one cycle on the M4."""
    m = mnemonic.split(".")[0]
    candidates = [(m, False)] + ([(m[:-2], True)] if len(m) > 2 and m[-2:] in CONDITIONS else [])
    candidates += [(c[:-1], cond) for c, cond in list(candidates) if c.endswith("s")]
    for base, cond in candidates:
        if base in TIMINGS or base in BRANCHES:
            return Instruction(base, operands, cond)
    return Instruction(m, operands, False)


def disassemble(elf: Path, objdump: str) -> dict[int, Instruction]:
    result = subprocess.run([objdump, "-d", "--no-show-raw-insn", str(elf)], capture_output=True, text=True)
    if result.returncode != 0:
        raise IrnetEdgeError(f"{objdump} could not disassemble {elf}: {result.stderr[-500:]}")
    table = {}
    for line in result.stdout.splitlines():
        match = _LINE.match(line)
        if match:
            table[int(match.group(1), 16)] = split_mnemonic(match.group(2), match.group(3).split(";")[0].strip())
    return table


def _registers(operands: str) -> int:
    listed = operands[operands.find("{") + 1:operands.find("}")] if "{" in operands else ""
    count = 0
    for item in filter(None, (part.strip() for part in listed.split(","))):
        if "-" in item:
            first, last = (int(re.sub(r"\D", "", r)) for r in item.split("-"))
            count += last - first + 1
        else:
            count += 1
    return count


def _writes_pc(insn: Instruction) -> bool:
    ops = insn.operands.replace(" ", "")
    return "pc" in ops.split("{")[-1] if insn.base in ("pop", "ldm", "ldmia", "ldmfd") else ops.startswith("pc,")


def estimate(report: Report, elf: Path, objdump: str = "arm-none-eabi-objdump") -> CycleEstimate:
    code = disassemble(elf, objdump)
    cycles = instructions = 0
    for block in report.blocks:
        previous = None
        for i, pc in enumerate(block.insns):
            insn = code.get(pc)
            if insn is None:
                raise IrnetEdgeError(f"no instruction at {pc:#x} in {elf}: the profile and the ELF disagree")
            if insn.base in BRANCHES:
                always = insn.base in ("bl", "blx", "bx") or (insn.base == "b" and not insn.conditional)
                last = i == len(block.insns) - 1
                taken = block.executions if always else (block.executions - block.fallthroughs if last else 0)
                cycles += block.executions + taken * REFILL
            else:
                each, per_register = TIMINGS.get(insn.base, (1, 0))
                each += per_register * _registers(insn.operands)
                if insn.base in SINGLE_TRANSFERS and previous is not None and previous.base in SINGLE_TRANSFERS:
                    each = 1
                cycles += (each + (REFILL if _writes_pc(insn) else 0)) * block.executions
            instructions += block.executions
            previous = insn
    return CycleEstimate(cycles, instructions)
