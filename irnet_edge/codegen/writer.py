"""Writes a generated tree atomically: into a temporary sibling directory, then one rename.

A caller may run a build step inside that staging directory before the rename (the firmware command builds
there), so OUT is either the complete tree (built) or left exactly as it was: a failed build, a full disk or
an interrupt leaves nothing half-written. The new directory gets the usual mode (0777 minus the umask), not
the 0700 of a temporary directory.
"""
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import IrnetEdgeError


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def describe_os_error(path: Path, exc: OSError, verb: str = "write") -> str:
    """'cannot write PATH: no space left on device' (the path the user named, the system's reason)."""
    reason = exc.strerror or str(exc)
    return f"cannot {verb} {path}: {reason[:1].lower()}{reason[1:]}"


def check_out_dir(out: Path, force: bool) -> None:
    """Called before any work, so a refusal leaves nothing behind."""
    if out.is_symlink():
        raise IrnetEdgeError(f"cannot write {out}: it is a symbolic link (to {os.readlink(out)}), which --force would "
                             "replace; pass the directory itself or a new path")
    try:
        resolved, cwd = out.resolve(), Path.cwd().resolve()
        if resolved == cwd or resolved in cwd.parents:
            raise IrnetEdgeError(f"cannot write {out}: it is the current directory or holds it; pass a new or empty "
                                 "subdirectory (e.g. --out generated)")
        existing = next(folder for folder in (out, *out.parents) if folder.exists() or folder.is_symlink())
        if existing != out and not existing.is_dir():
            raise IrnetEdgeError(f"cannot write {out}: {existing} is not a directory")
        if out.exists() and not out.is_dir():  # a file (a checkpoint, say) is never replaced by a tree
            raise IrnetEdgeError(f"cannot write {out}: it is a file, not a directory; pass a new or empty directory")
        if out.exists() and not force and any(out.iterdir()):
            raise IrnetEdgeError(f"{out} exists and is not empty; pass --force (Python: force=True) to replace it")
    except OSError as exc:
        raise IrnetEdgeError(describe_os_error(out, exc)) from None


def write_tree(files: dict[str, str], out: Path, force: bool, build: Callable[[Path], object] | None = None) -> None:
    """Writes files (relative path -> text, UTF-8) to out; build(staging), if given, runs in the staging directory
    after the files are written and before the rename. Replaces a non-empty out only with force."""
    check_out_dir(out, force)
    staging = None
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
        for name, text in files.items():
            (staging / name).parent.mkdir(parents=True, exist_ok=True)
            (staging / name).write_text(text, encoding="utf-8")
        if build is not None:
            try:
                build(staging)
            except IrnetEdgeError as exc:
                raise IrnetEdgeError(f"nothing was written to {out}: "
                                     + str(exc).replace(str(staging), str(out))) from None
        staging.chmod(0o777 & ~_umask())
        if out.exists() or out.is_symlink():
            old = staging.with_name(staging.name + ".old")
            os.replace(out, old)
            try:
                os.replace(staging, out)
            except OSError:
                os.replace(old, out)  # put the previous tree back
                raise
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() and not old.is_symlink() else old.unlink()
        else:
            os.replace(staging, out)
    except OSError as exc:
        raise IrnetEdgeError(describe_os_error(out, exc)) from None
    finally:
        if staging is not None and staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
