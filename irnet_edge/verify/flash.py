"""Flashing real boards through pyOCD or OpenOCD, with the board preset's target and configuration."""
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from ..codegen.firmware import Board
from ..errors import IrnetEdgeError

TOOLS = ("pyocd", "openocd")
INSTALL = {"pyocd": "pip install pyocd", "openocd": "apt-get install --no-install-recommends openocd"}


def flash_command(board: Board, tool: str, elf: Path) -> list[list[str]]:
    """The commands that flash elf onto board with tool (pyOCD may first need the target's CMSIS pack)."""
    if not board.flash_tool or tool not in board.flash_tool:
        known = ", ".join(board.flash_tool or {}) or "none"
        raise IrnetEdgeError(f"{board.name} cannot be flashed with {tool} (its preset supports: {known})")
    settings = board.flash_tool[tool]
    if tool == "pyocd":
        commands = [["pyocd", "pack", "install", settings["target"]]] if settings.get("pack") else []
        return commands + [["pyocd", "flash", "--no-wait", "-t", settings["target"], str(elf)]]
    if any(c in str(elf) for c in "{}\\"):
        raise IrnetEdgeError(f"OpenOCD cannot take the path {elf} (braces or backslashes); move the project")
    # braced: OpenOCD's Tcl would split a path with spaces into several words
    return [["openocd", *_openocd_config(settings["config"]), "-c", f"program {{{elf}}} verify reset exit"]]


def _openocd_config(config: list[str]) -> list[str]:
    args, i = [], 0
    while i < len(config):
        if config[i] == "-c":
            args += ["-c", config[i + 1]]
            i += 2
        else:
            args += ["-f", config[i]]
            i += 1
    return args


def _find(program: str) -> str | None:
    """On PATH, or beside this Python (pyOCD installed into the same virtual environment)."""
    beside = Path(sys.executable).parent / program
    return shutil.which(program) or (str(beside) if beside.is_file() else None)


def flash(board: Board, tool: str, elf: Path, dry_run: bool) -> list[str]:
    """Runs (or with dry_run only returns) the commands as shell lines."""
    commands = flash_command(board, tool, elf)
    lines = [shlex.join(c) for c in commands]
    if dry_run:
        return lines
    program = _find(commands[-1][0])
    if program is None:
        raise IrnetEdgeError(f"{tool} is not installed; install it with `{INSTALL[tool]}`, or print the command "
                             "with --dry-run")
    for command in commands:
        result = subprocess.run([program, *command[1:]], capture_output=True, text=True)
        if result.returncode != 0:
            output = " / ".join(line.strip() for line in (result.stdout + result.stderr).splitlines() if line.strip())
            raise IrnetEdgeError(f"`{shlex.join(command)}` failed ({output[-300:] or f'status {result.returncode}'}); "
                                 f"connect {board.name} by its USB debug port (ST-LINK, J-Link or CMSIS-DAP) and try "
                                 "again")
    return lines
