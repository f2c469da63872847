"""`irnet-edge verify --target host`: generate, compile with gcc, run on real inputs, compare bit for bit."""
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..codegen import get_target, render, write_tree
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

    @classmethod
    def compare(cls, got: np.ndarray, expected: np.ndarray) -> "VerifyResult":
        """Every logit compared as an integer: bit for bit, -0.0 and NaN payloads included."""
        same = (got.reshape(expected.shape).view(np.int32) == expected.view(np.int32)).all(axis=1)
        bad = np.nonzero(~same)[0]
        return cls(samples=len(same), exact=int(same.sum()), first_bad=int(bad[0]) if len(bad) else None)


def build_runner(graph: Graph, prefix: str, checkpoint_sha256: str, tree: Path,
                 cflags: str = toolchain.STRICT_CFLAGS, defines: tuple[str, ...] = (), ldflags: str = "",
                 arch: str | None = None) -> tuple[Path, tuple[str, ...]]:
    """Generates the host C (arch None) or the cortex-a C for a cross arch into tree and builds it (cross builds
    static); returns the runner and the qemu-user command that runs it (empty on the host)."""
    cross = toolchain.CROSS[arch] if arch else None
    files, _ = render(graph, get_target("cortex-a" if cross else "host"), prefix, checkpoint_sha256)
    write_tree(files, tree, force=True)
    if cross:
        runner = toolchain.build(tree, cross.cc, f"{cflags} {cross.cflags}", defines, f"{ldflags} -static".strip(),
                                 cross.packages)
        return runner, cross.launcher
    return toolchain.build(tree, cflags=cflags, defines=defines, ldflags=ldflags), ()


def run_c(graph: Graph, prefix: str, checkpoint_sha256: str, inputs_hwc: torch.Tensor, work: Path,
          cflags: str = toolchain.STRICT_CFLAGS, defines: tuple[str, ...] = (), ldflags: str = "",
          dump_dir: Path | None = None, tree_name: str = "c", arch: str | None = None,
          threads: int | None = None) -> np.ndarray:
    """Generates the C into work/tree_name (host, or cortex-a for a cross arch run under qemu-user), builds it
    and returns its float32 logits (N, classes)."""
    runner, launcher = build_runner(graph, prefix, checkpoint_sha256, work / tree_name, cflags, defines, ldflags,
                                    arch)
    inputs_path, outputs_path = work / f"{tree_name}_inputs.bin", work / f"{tree_name}_outputs.bin"
    inputs_hwc.numpy().astype(np.uint8).tofile(inputs_path)
    toolchain.run(runner, inputs_path, outputs_path, dump_dir, launcher=launcher, threads=threads)
    return np.fromfile(outputs_path, dtype=np.float32).reshape(inputs_hwc.shape[0], graph.num_classes)


def verify(graph: Graph, prefix: str, checkpoint_sha256: str, inputs_hwc: torch.Tensor,
           cflags: str = toolchain.STRICT_CFLAGS, ldflags: str = "", arch: str | None = None) -> VerifyResult:
    """Host C (arch None), or the cortex-a C for arch "aarch64" / "armv7" under qemu-user."""
    expected = reference.run_batched(graph, inputs_hwc).numpy()
    with tempfile.TemporaryDirectory(prefix="irnet-edge-verify-") as tmp:
        work = Path(tmp)
        got = run_c(graph, prefix, checkpoint_sha256, inputs_hwc, work, cflags=cflags, ldflags=ldflags, arch=arch)
        result = VerifyResult.compare(got, expected)
        if result.first_bad is None:
            return result
        dump_dir = work / "dump"
        dump_dir.mkdir()
        run_c(graph, prefix, checkpoint_sha256, inputs_hwc[result.first_bad:result.first_bad + 1], work,
              cflags=cflags, defines=(f"{prefix.upper()}_DEBUG_DUMP",), dump_dir=dump_dir, tree_name="debug",
              arch=arch)
        dumps = {i: (dump_dir / f"op{i:03d}.bin").read_bytes() for i in range(len(graph.ops))}
        result.mismatch = first_mismatch(graph, inputs_hwc[result.first_bad], dumps)
        return result
