"""Code-generation targets as data: which template folders render them, into which folder of the output, which
kernels they call, and which of the options --board, --cpu and --isa they take (irnet_edge.verify.deployment
checks those options against this table, for the command line and the Python API alike)."""
from dataclasses import dataclass

from ..errors import IrnetEdgeError
from ..ir.fuse import FUSIONS

# Build files for the tools embedded people use (CMake, Zephyr, PlatformIO, Arduino), next to the C of every
# target: docs/integration.md.
INTEGRATION = (("integration", ""), ("integration/zephyr", "zephyr"))


@dataclass(frozen=True)
class Target:
    name: str
    templates: tuple[tuple[str, str], ...]  # (folder under templates/, folder in the output; "" = its root)
    description: str
    # op kind -> the kernel function that implements it, where not the portable one of the same name
    kernels: tuple[tuple[str, str], ...] = ()
    # (op kind, constant) whose array the target's kernel reads as [kh][kw][Cin][Cout] instead of
    # [Cout][kh][kw][Cin]
    channels_last: tuple[tuple[str, str], ...] = ()
    # which of "board", "cpu", "isa" the target takes, and which of those it needs
    options: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    # what its kernels fuse into a conv (irnet_edge.ir.fuse.FUSIONS), where that is faster or needs less RAM
    fusions: tuple[str, ...] = FUSIONS


TARGETS = {t.name: t for t in (
    Target("host", (("model", "src"), ("host", ""), *INTEGRATION),
           "portable C99 for any C compiler, with a host runner and Makefile"),
    Target("cortex-m", (("model", "src"), *INTEGRATION), "the model with Cortex-M kernels for arm-none-eabi-gcc; "
           "`irnet-edge firmware` adds a board project",
           kernels=(("bconv", "bconv_cm"), ("conv_f32", "conv_f32_cm")), channels_last=(("conv_f32", "weight"),),
           options=("board", "cpu"), needs=("board",),
           # a bits max-pool costs 0.6-5% more fused in the Cortex-M kernels than as its own op (its map is small)
           fusions=("pool", "residual", "sign", "norm")),
    Target("cortex-a", (("model", "src"), ("host", ""), *INTEGRATION),
           "the model with NEON kernels for Linux on aarch64 or armv7, with the runner and a Makefile that "
           "cross-compiles or builds on the board",
           kernels=(("bconv", "bconv_neon"), ("conv_f32", "conv_f32_neon"), ("sign_pack", "sign_pack_neon"),
                    ("add", "add_neon"), ("maxpool2d_f32", "maxpool2d_f32_neon"),
                    ("maxpool_f32", "maxpool_f32_neon"), ("avgpool", "avgpool_neon"),
                    ("shortcut_a", "shortcut_a_neon")),
           channels_last=(("conv_f32", "weight"),), options=("isa",), needs=("isa",),
           # the NEON binary conv shares blocks of pixels among threads, so one window's pixels may be on two:
           # a pool fused there would run the portable kernel
           fusions=("residual", "sign", "norm")),
)}


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise IrnetEdgeError(f"unknown target {name!r}; available: {', '.join(TARGETS)}") from None
