"""Host toolchain: finding the compiler and building a generated tree with its own Makefile."""
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import IrnetEdgeError

STRICT_CFLAGS = "-std=c99 -O2 -Wall -Wextra -Werror -pedantic"


@dataclass(frozen=True)
class Cross:
    """A Linux cross toolchain and the qemu-user that runs its static binaries."""

    cc: str
    cflags: str
    launcher: tuple[str, ...]
    packages: str


CROSS = {
    # a fixed -cpu keeps glibc's choice of string routines, and so the instruction counts, stable
    "aarch64": Cross("aarch64-linux-gnu-gcc", "-march=armv8-a", ("qemu-aarch64", "-cpu", "cortex-a53"),
                     "gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user"),
    "armv7": Cross("arm-linux-gnueabihf-gcc", "-march=armv7-a -mfpu=neon -mfloat-abi=hard",
                   ("qemu-arm", "-cpu", "cortex-a15"), "gcc-arm-linux-gnueabihf libc6-dev-armhf-cross qemu-user"),
}


def require_tool(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise IrnetEdgeError(f"{name} is not installed; install it with `apt-get install {package}` "
                             "(or run `make setup`)")
    return path


def build(tree: Path, cc: str = "gcc", cflags: str = STRICT_CFLAGS, defines: tuple[str, ...] = (),
          ldflags: str = "", package: str = "gcc") -> Path:
    """Runs the generated Makefile; returns the runner's path."""
    require_tool("make", "make")
    require_tool(cc, package)
    flags = " ".join([cflags, *(f"-D{d}" for d in defines)])
    result = subprocess.run(["make", "-C", str(tree), f"CC={cc}", f"CFLAGS={flags}", f"LDFLAGS={ldflags}"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise IrnetEdgeError(f"compiling the generated C in {tree} failed:\n{result.stderr[-4000:]}")
    runners = sorted(tree.glob("*_run"))
    return runners[0]


def run(runner: Path, inputs: Path, outputs: Path, dump_dir: Path | None = None, timeout: int = 600,
        launcher: tuple[str, ...] = (), threads: int | None = None) -> None:
    if launcher:
        require_tool(launcher[0], "qemu-user")
    args = [*launcher, str(runner), str(inputs), str(outputs)] + ([str(dump_dir)] if dump_dir else [])
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)} if threads else None
    result = subprocess.run(args, capture_output=True, text=True, timeout=timeout, env=env)
    if result.returncode != 0:
        raise IrnetEdgeError(f"{runner.name} failed with status {result.returncode}:\n{result.stderr[-4000:]}")
