"""`irnet-edge verify --target host`: generate, compile with gcc, run on real inputs, compare bit for bit."""
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..codegen import get_target, render, write_tree
from ..codegen.schedule import schedule
from ..codegen.targets import Target
from ..errors import IrnetEdgeError
from ..ir import reference
from ..ir.graph import Graph
from . import toolchain
from .compare import LayerMismatch, first_mismatch


@dataclass
class VerifyResult:
    samples: int
    exact: int
    first_bad: int | None = None
    mismatch: LayerMismatch | None = None
    where: str = ""  # the target, as messages name it (irnet_edge.verify.deployment.Deployment.describe)

    def describe(self) -> str:
        """"100/100 bit-exact on host", or which sample differed first and in which op."""
        text = f"{self.exact}/{self.samples} bit-exact" + (f" on {self.where}" if self.where else "")
        if self.first_bad is None:
            return text
        detail = f": {self.mismatch.describe()}" if self.mismatch else ""
        return f"{text}; sample {self.first_bad} differs{detail}"

    @classmethod
    def compare(cls, got: np.ndarray, expected: np.ndarray) -> "VerifyResult":
        """Every logit compared as an integer: bit for bit, -0.0 and NaN payloads included."""
        same = (got.reshape(expected.shape).view(np.int32) == expected.view(np.int32)).all(axis=1)
        bad = np.nonzero(~same)[0]
        return cls(samples=len(same), exact=int(same.sum()), first_bad=int(bad[0]) if len(bad) else None)


def _codegen_target(target: Target | None, isa: str | None) -> Target:
    """The C to generate: target, or host C (no isa) / cortex-a C (an isa); an isa only where the target runs
    on one of the Linux instruction sets (irnet_edge.verify.deployment resolves users' options)."""
    target = target or get_target("cortex-a" if isa else "host")
    if (isa is not None) != ("isa" in target.options):
        raise IrnetEdgeError(f"target {target.name!r} " + ("takes no instruction set" if isa else
                                                            "needs an instruction set (aarch64 or armv7)"))
    if isa is not None and isa not in toolchain.CROSS:
        raise IrnetEdgeError(f"unknown instruction set {isa!r}; available: {', '.join(toolchain.CROSS)}")
    return target


def build_runner(graph: Graph, prefix: str, checkpoint_sha256: str, tree: Path,
                 cflags: str = toolchain.STRICT_CFLAGS, defines: tuple[str, ...] = (), ldflags: str = "",
                 isa: str | None = None, target: Target | None = None) -> tuple[Path, tuple[str, ...]]:
    """Generates the C of target (default: host C, or cortex-a C for an isa) into tree and builds it, with the
    isa's cross compiler (static) or gcc; returns the runner and the qemu-user command that runs it (empty on the
    host)."""
    target = _codegen_target(target, isa)
    cross = toolchain.CROSS[isa] if isa else None
    files, _ = render(graph, target, prefix, checkpoint_sha256)
    write_tree(files, tree, force=True)
    if cross:
        runner = toolchain.build(tree, cross.cc, f"{cflags} {cross.cflags}", defines, f"{ldflags} -static".strip(),
                                 cross.packages)
        return runner, cross.launcher
    return toolchain.build(tree, cflags=cflags, defines=defines, ldflags=ldflags), ()


def run_c(graph: Graph, prefix: str, checkpoint_sha256: str, inputs_hwc: torch.Tensor, work: Path,
          cflags: str = toolchain.STRICT_CFLAGS, defines: tuple[str, ...] = (), ldflags: str = "",
          dump_dir: Path | None = None, tree_name: str = "c", isa: str | None = None,
          threads: int | None = None, target: Target | None = None) -> np.ndarray:
    """Generates the C into work/tree_name (see build_runner), builds it, runs it (under qemu-user for an isa)
    and returns its float32 logits (N, classes)."""
    runner, launcher = build_runner(graph, prefix, checkpoint_sha256, work / tree_name, cflags, defines, ldflags,
                                    isa, target)
    inputs_path, outputs_path = work / f"{tree_name}_inputs.bin", work / f"{tree_name}_outputs.bin"
    inputs_hwc.numpy().astype(np.uint8).tofile(inputs_path)
    toolchain.run(runner, inputs_path, outputs_path, dump_dir, launcher=launcher, threads=threads)
    return np.fromfile(outputs_path, dtype=np.float32).reshape(inputs_hwc.shape[0], graph.num_classes)


def verify(graph: Graph, prefix: str, checkpoint_sha256: str, inputs_hwc: torch.Tensor,
           cflags: str = toolchain.STRICT_CFLAGS, ldflags: str = "", isa: str | None = None,
           target: Target | None = None) -> VerifyResult:
    """Host C (no isa), or the cortex-a C for isa "aarch64" / "armv7" under qemu-user, against the reference."""
    expected = reference.run_batched(graph, inputs_hwc).numpy()
    with tempfile.TemporaryDirectory(prefix="irnet-edge-verify-") as tmp:
        work = Path(tmp)
        got = run_c(graph, prefix, checkpoint_sha256, inputs_hwc, work, cflags=cflags, ldflags=ldflags, isa=isa,
                    target=target)
        result = VerifyResult.compare(got, expected)
        if result.first_bad is None:
            return result
        dump_dir = work / "dump"
        dump_dir.mkdir()
        run_c(graph, prefix, checkpoint_sha256, inputs_hwc[result.first_bad:result.first_bad + 1], work,
              cflags=cflags, defines=(f"{prefix.upper()}_DEBUG_DUMP",), dump_dir=dump_dir, tree_name="debug",
              isa=isa, target=target)
        chosen = target or get_target("host")
        dumps = {i: (dump_dir / f"op{i:03d}.bin").read_bytes() for i in range(len(schedule(graph, chosen).graph.ops))}
        result.mismatch = first_mismatch(graph, inputs_hwc[result.first_bad], dumps, chosen)
        return result
