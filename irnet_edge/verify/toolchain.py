"""Host toolchain: finding the compiler and building a generated tree with its own Makefile."""
import shutil
import subprocess
from pathlib import Path

from ..errors import IrnetEdgeError

STRICT_CFLAGS = "-std=c99 -O2 -Wall -Wextra -Werror -pedantic"


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise IrnetEdgeError(f"{name} is not installed; install it with `apt-get install {package}` "
                             "(or run `make setup`)")
    return path


def build(tree: Path, cc: str = "gcc", cflags: str = STRICT_CFLAGS, defines: tuple[str, ...] = (),
          ldflags: str = "") -> Path:
    """Runs the generated Makefile; returns the runner's path."""
    require_tool("make", "make")
    require_tool(cc, cc if cc in ("gcc", "g++") else "gcc")
    flags = " ".join([cflags, *(f"-D{d}" for d in defines)])
    result = subprocess.run(["make", "-C", str(tree), f"CC={cc}", f"CFLAGS={flags}", f"LDFLAGS={ldflags}"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise IrnetEdgeError(f"compiling the generated C in {tree} failed:\n{result.stderr[-4000:]}")
    runners = sorted(tree.glob("*_run"))
    return runners[0]


def run(runner: Path, inputs: Path, outputs: Path, dump_dir: Path | None = None, timeout: int = 600) -> None:
    args = [str(runner), str(inputs), str(outputs)] + ([str(dump_dir)] if dump_dir else [])
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
    if result.returncode != 0:
        raise IrnetEdgeError(f"{runner.name} failed with status {result.returncode}:\n{result.stderr[-4000:]}")
