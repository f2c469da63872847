"""Writes a generated tree atomically: into a temporary sibling directory, then one rename."""
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import IrnetEdgeError


def check_out_dir(out: Path, force: bool) -> None:
    """Called before any work, so a refusal leaves nothing behind."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not force:
        raise IrnetEdgeError(f"{out} exists and is not empty; pass --force to replace it")


def write_tree(files: dict[str, str], out: Path, force: bool) -> None:
    check_out_dir(out, force)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        for name, text in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text)
        if out.exists():
            old = out.with_name(f".{out.name}.old{os.getpid()}")
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old) if old.is_dir() else old.unlink()
        else:
            os.replace(staging, out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
