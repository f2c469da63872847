"""Code-generation targets as data: which template folders render them (later folders add files)."""
from dataclasses import dataclass

from ..errors import IrnetEdgeError


@dataclass(frozen=True)
class Target:
    name: str
    templates: tuple[str, ...]  # folders under templates/
    description: str


TARGETS = {t.name: t for t in (
    Target("host", ("model", "host"), "portable C99 for any C compiler, with a host runner and Makefile"),
    Target("cortex-m", ("model",), "the model for arm-none-eabi-gcc; `irnet-edge firmware` adds a board project"),
)}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise IrnetEdgeError(f"unknown target {name!r}; available: {', '.join(TARGETS)}") from None
