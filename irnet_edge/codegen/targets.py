"""Code-generation targets as data: which template tree renders them and how they are compiled."""
from dataclasses import dataclass

from ..errors import IrnetEdgeError


@dataclass(frozen=True)
class Target:
    name: str
    templates: str  # folder under templates/
    description: str


TARGETS = {t.name: t for t in (
    Target("host", "host", "portable C99 for any C compiler (the reference kernels)"),
)}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise IrnetEdgeError(f"unknown target {name!r}; available now: {', '.join(TARGETS)}") from None
