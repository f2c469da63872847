"""Locates the templates/ and firmware/ trees both in a wheel and in a source checkout."""
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def asset_dir(name: str) -> Path:
    """`name` is "templates" or "firmware": inside a wheel they live in the package as _NAME."""
    for candidate in (_PACKAGE / f"_{name}", _PACKAGE.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"irnet-edge is installed without its {name}/ directory; reinstall the package")
