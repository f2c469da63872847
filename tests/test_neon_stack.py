"""The NEON binary convolution's stack at the first stage of the ImageNet ResNet-18 (56x56x64), on aarch64 and
armv7 under qemu-user, inside a thread with a 64 KB stack.

The model: a float stem to 56x56x64, a binary 3x3 conv 56x56x64 -> 56x56x64 (stride 1, zero padding 1, bits
out), a binary 3x3 conv 56x56x64 -> 28x28x128 (stride 2, zero padding 1, float out), a classifier. Its cortex-a
C is linked with a small driver (STACK_DRIVER) that runs NAME_infer in a pthread whose stack is exactly
STACK bytes of readable memory painted with 0xA5, with 1 MB of PROT_NONE memory below it: a deeper stack
faults (SIGSEGV, the driver dies and the test fails) instead of running into other memory, and the deepest
byte touched is reported. (glibc on aarch64 refuses pthread_attr_setstacksize below its PTHREAD_STACK_MIN of
128 KB, so the driver hands the thread its own mapping with pthread_attr_setstack: the guard is part of the
mapping, only the top STACK bytes are usable. glibc keeps the thread's descriptor and TLS at the top of that
stack, as in any thread.)

That the test can fail: with a stack too small for the kernels the driver dies and the test fails;
test_a_small_stack_fails_the_driver checks it with a stack of 4 KB. Before the kernel's scratch moved to the
arena (commit db5015c and earlier), its VLAs made one inference of this model touch 80,592 bytes of stack on
aarch64 and 79,440 on armv7 (this driver with a 1 MB stack), and at 64 KB this test failed on both ISAs with
SIGSEGV (status -11); now it touches about 6,560 and 4,980 bytes (docs/arithmetic.md, "Stack and scratch of the
NEON kernels").
"""
import subprocess

import numpy as np
import pytest
import torch
from torch import nn

from irnet_edge.codegen import get_target, render, write_tree
from irnet_edge.ir import export, reference
from irnet_edge.nn.layers import InputNorm, IRConv2d
from irnet_edge.verify import toolchain

from .helpers import calibrated

ARCHS = ["aarch64", "armv7"]
STACK = 64 * 1024
# what one inference may touch of the thread's stack: the kernels' frames (docs/arithmetic.md bounds the
# binary convolution's at 8 KB on either ISA) plus the descriptor and TLS glibc keeps at the top
STACK_BOUND = 16 * 1024

STACK_DRIVER = r"""
#define _GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "stk.h"

#define GUARD (1024L * 1024L)
#define PAINT 0xA5

static const uint8_t *inputs;
static float *outputs;
static long count;

static void *work(void *arg)
{
    long i;
    (void)arg;
    for (i = 0; i < count; ++i) {
        stk_infer(inputs + i * STK_INPUT_SIZE, outputs + i * STK_OUTPUT_SIZE);
    }
    return 0;
}

int main(int argc, char **argv)
{
    long stack, used, size;
    FILE *f;
    uint8_t *map, *low, *in;
    pthread_attr_t attr;
    pthread_t thread;
    int rc;
    if (argc != 4) {
        fprintf(stderr, "usage: %s STACK_BYTES inputs.bin outputs.bin\n", argv[0]);
        return 2;
    }
    stack = atol(argv[1]);
    f = fopen(argv[2], "rb");
    if (f == 0 || fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) <= 0 || fseek(f, 0, SEEK_SET) != 0) {
        return 2;
    }
    count = size / STK_INPUT_SIZE;
    in = malloc((size_t)size);
    outputs = malloc((size_t)count * STK_OUTPUT_SIZE * sizeof(float));
    if (in == 0 || outputs == 0 || fread(in, 1, (size_t)size, f) != (size_t)size) {
        return 2;
    }
    inputs = in;
    fclose(f);
    map = mmap(0, (size_t)(GUARD + stack), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED || mprotect(map, GUARD, PROT_NONE) != 0) {
        return 2;
    }
    low = map + GUARD;
    memset(low, PAINT, (size_t)stack);
    pthread_attr_init(&attr);
    rc = pthread_attr_setstack(&attr, map, (size_t)(GUARD + stack));
    if (rc == 0) {
        rc = pthread_create(&thread, &attr, work, 0);
    }
    if (rc != 0) {
        fprintf(stderr, "pthread: %s\n", strerror(rc));
        return 2;
    }
    pthread_join(thread, 0);
    for (used = stack; used > 0 && low[stack - used] == PAINT; --used) {
    }
    printf("stack used: %ld of %ld bytes\n", used, stack);
    f = fopen(argv[3], "wb");
    if (f == 0 || fwrite(outputs, sizeof(float) * STK_OUTPUT_SIZE, (size_t)count, f) != (size_t)count) {
        return 2;
    }
    fclose(f);
    return 0;
}
"""


@pytest.fixture(scope="module")
def stage1_model(tmp_path_factory):
    """(graph, checkpoint, uint8 HWC inputs) of the 56x56x64 model of the module docstring."""
    generator = torch.Generator().manual_seed(56)
    model = nn.Sequential(
        InputNorm([0.5], [0.25]), nn.Conv2d(1, 64, 3, padding=1), nn.BatchNorm2d(64), nn.Hardtanh(),
        IRConv2d(64, 64, 3, 1, 1), nn.BatchNorm2d(64), nn.Hardtanh(),
        IRConv2d(64, 128, 3, 2, 1), nn.BatchNorm2d(128), nn.Hardtanh(),
        nn.Flatten(), nn.Linear(128 * 28 * 28, 10))
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.data = torch.randn(m.weight.shape, generator=generator)
    images = torch.randint(0, 256, (16, 1, 56, 56), dtype=torch.uint8, generator=generator)
    ckpt = calibrated(model, (1, 56, 56), images, "mnist", tmp_path_factory.mktemp("stage1") / "m.pt")
    graph = export(ckpt)
    assert [op.kind for op in graph.ops] == ["normalize", "conv_f32", "bconv", "bconv", "conv_f32"]
    bconvs = [op for op in graph.ops if op.kind == "bconv"]
    shapes = [(graph.tensor(op.inputs[0]).describe(), graph.tensor(op.output).describe()) for op in bconvs]
    assert [(graph.tensor(op.inputs[0]).kind, graph.tensor(op.output).kind) for op in bconvs] == [
        ("bits", "bits"), ("bits", "f32")], shapes
    return graph, ckpt, images[:3].permute(0, 2, 3, 1).contiguous()


def build_stack_driver(graph, ckpt, isa: str, tree):
    """The model's cortex-a C and STACK_DRIVER, cross-compiled (static) for isa; returns (program, launcher)."""
    cross = toolchain.CROSS[isa]
    files, _ = render(graph, get_target("cortex-a"), "stk", ckpt.sha256)
    write_tree(files, tree, force=True)
    (tree / "stack_driver.c").write_text(STACK_DRIVER)
    toolchain.require_tool(cross.cc, cross.packages)
    sources = sorted(str(p) for p in (tree / "src").glob("*.c")) + sorted(
        str(p) for p in (tree / "src" / "irnet").glob("*.c"))
    program = tree / "stack_driver"
    command = [cross.cc, *toolchain.STRICT_CFLAGS.split(), *cross.cflags.split(), "-ffp-contract=off",
               f"-I{tree / 'src'}", *sources, str(tree / "stack_driver.c"), "-o", str(program), "-static",
               "-lpthread"]
    # the driver itself needs POSIX (mmap, pthreads): it is built with the model's strict flags but GNU C
    command[command.index("-std=c99")] = "-std=gnu99"
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return program, cross.launcher


def run_stack_driver(program, launcher, stack: int, inputs, work):
    """(completed process, logits or None)."""
    inputs_path, outputs_path = work / "inputs.bin", work / "outputs.bin"
    inputs.numpy().astype(np.uint8).tofile(inputs_path)
    outputs_path.unlink(missing_ok=True)
    result = subprocess.run([*launcher, str(program), str(stack), str(inputs_path), str(outputs_path)],
                            capture_output=True, text=True, timeout=600)
    logits = np.fromfile(outputs_path, dtype=np.float32) if result.returncode == 0 else None
    return result, logits


@pytest.fixture(scope="module")
def drivers(stage1_model, tmp_path_factory):
    graph, ckpt, _ = stage1_model
    return {isa: build_stack_driver(graph, ckpt, isa, tmp_path_factory.mktemp(f"stack-{isa}")) for isa in ARCHS}


@pytest.mark.parametrize("isa", ARCHS)
def test_stage1_bconvs_run_bit_exact_in_a_64kb_thread_stack(isa, stage1_model, drivers, tmp_path):
    graph, _, inputs = stage1_model
    program, launcher = drivers[isa]
    result, logits = run_stack_driver(program, launcher, STACK, inputs, tmp_path)
    assert result.returncode == 0, f"status {result.returncode}: {result.stderr[-2000:]}"
    used = int(result.stdout.split("stack used: ")[1].split()[0])
    assert 0 < used <= STACK_BOUND, result.stdout
    expected = reference.run(graph, inputs).numpy()
    assert np.array_equal(logits.reshape(expected.shape).view(np.int32), expected.view(np.int32))


@pytest.mark.parametrize("isa", ARCHS)
def test_a_small_stack_fails_the_driver(isa, stage1_model, drivers, tmp_path):
    """The driver's guard works: with 4 KB of stack the inference faults and the driver dies."""
    _, _, inputs = stage1_model
    program, launcher = drivers[isa]
    result, logits = run_stack_driver(program, launcher, 4096, inputs[:1], tmp_path)
    assert result.returncode != 0 and logits is None, result.stdout


# ---- the scratch: runtime and planner agree, the arena holds it, the frame is fixed -------------------------

def scratch_grid() -> list[tuple]:
    """(h, w, cin, cout, k, stride, pad, pad_one, bits) layers: the first stages of the ImageNet ResNet-18 and
    seeded random ones over every branch of the size (paired taps, 1/2/3 border classes, short last output
    words, chunked weight packing, beyond IRNET_MAX_BITS)."""
    cases = [(56, 56, 64, 64, 3, 1, 1, 0, 1), (56, 56, 64, 128, 3, 2, 1, 0, 0), (28, 28, 128, 128, 3, 1, 1, 0, 1),
             (14, 14, 256, 256, 3, 1, 1, 0, 1), (7, 7, 512, 512, 3, 1, 1, 0, 0), (56, 56, 64, 64, 3, 1, 1, 1, 1),
             (224, 224, 16, 64, 7, 2, 3, 0, 1), (8, 8, 4000, 32, 3, 1, 1, 0, 1), (32, 32, 1, 16, 5, 1, 2, 0, 0)]
    rng = np.random.default_rng(12)
    while len(cases) < 400:
        k = int(rng.choice([1, 2, 3, 5, 7]))
        pad = int(rng.integers(0, k // 2 + 1))
        h, w = (int(v) for v in rng.integers(max(1, k - 2 * pad), 60, size=2))
        cases.append((h, w, int(rng.choice([1, 3, 15, 16, 17, 31, 32, 33, 64, 100, 256, 512])),
                      int(rng.choice([1, 4, 12, 28, 29, 32, 33, 60, 64, 100, 128, 512])), k,
                      int(rng.integers(1, 4)), pad, int(rng.integers(0, 2)), int(rng.integers(0, 2))))
    return cases


def _out_side(size: int, k: int, stride: int, pad: int) -> int:
    return (size + 2 * pad - k) // stride + 1


SCRATCH_DRIVER = r"""
#include <stdio.h>
#include "irnet_runtime.h"

static const int cases[][9] = {
%s
};

int main(void)
{
    static const int32_t threshold[1] = {0};
    unsigned i;
    for (i = 0; i < sizeof cases / sizeof cases[0]; ++i) {
        const int *c = cases[i];
        irnet_bconv_params p = {0};
        p.h = c[0]; p.w = c[1]; p.cin = c[2]; p.cout = c[3]; p.k = c[4]; p.stride = c[5]; p.pad = c[6];
        p.pad_one = c[7];
        p.ho = (c[0] + 2 * c[6] - c[4]) / c[5] + 1;
        p.wo = (c[1] + 2 * c[6] - c[4]) / c[5] + 1;
        p.threshold = c[8] ? threshold : 0;
        printf("%%lu\n", (unsigned long)irnet_bconv_neon_scratch_bytes(&p));
    }
    return 0;
}
"""


@pytest.mark.parametrize("isa", ARCHS)
def test_planner_scratch_equals_the_runtime_function(isa, tmp_path):
    from irnet_edge.codegen.planner import bconv_neon_scratch_bytes
    from irnet_edge.codegen.render import RUNTIME_DIR

    cases = scratch_grid()
    cross = toolchain.CROSS[isa]
    toolchain.require_tool(cross.cc, cross.packages)
    (tmp_path / "scratch.c").write_text(SCRATCH_DRIVER % ",\n".join(
        "    {" + ", ".join(map(str, c)) + "}" for c in cases))
    program = tmp_path / "scratch"
    result = subprocess.run([cross.cc, *toolchain.STRICT_CFLAGS.split(), *cross.cflags.split(), f"-I{RUNTIME_DIR}",
                             str(tmp_path / "scratch.c"), str(RUNTIME_DIR / "irnet_kernels_neon.c"),
                             str(RUNTIME_DIR / "irnet_kernels.c"), "-o", str(program), "-static"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-4000:]
    result = subprocess.run([*cross.launcher, str(program)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    got = [int(v) for v in result.stdout.split()]
    expected = [bconv_neon_scratch_bytes(h, w, cin, cout, k, s, p, bool(one), _out_side(h, k, s, p),
                                         _out_side(w, k, s, p), bool(bits))
                for h, w, cin, cout, k, s, p, one, bits in cases]
    assert got == expected
    big = [i for i, (_, _, cin, _, k, *_) in enumerate(cases) if k * k * cin > 32766]
    assert 7 in big and all((v == 0) == (i in big) for i, v in enumerate(expected))  # beyond: the portable kernel


def test_arena_holds_the_scratch_apart_from_the_ops_tensors(stage1_model, drivers):
    """The cortex-a arena (manifest.json, NAME_ARENA_SIZE, the static arena) includes each binary conv's
    scratch and the normalisation-fused stem's band, placed away from the tensors alive during its op; host C
    has the band only."""
    import json

    from irnet_edge.codegen.planner import op_scratch, plan, scratch_name
    from irnet_edge.codegen.schedule import schedule

    graph, ckpt, _ = stage1_model
    ran = schedule(graph, get_target("cortex-a")).graph  # the stem reads the pixels: the normalisation fused
    tree = drivers["aarch64"][0].parent
    manifest = json.loads((tree / "manifest.json").read_text())
    scratch = {i: op_scratch(ran, op, "bconv_neon" if op.kind == "bconv" else op.kind) for i, op in enumerate(ran.ops)}
    placements, arena = plan(ran, scratch)
    band_only = {i: nbytes for i, nbytes in scratch.items() if ran.ops[i].kind != "bconv"}
    assert manifest["arena_bytes"] == arena > plan(ran, band_only)[1]
    model_c = (tree / "src" / "stk.c").read_text()
    assert f"stk_arena[{max(arena // 4, 1)}]" in model_c
    for i, op in enumerate(ran.ops):
        entry = manifest["ops"][i]
        assert entry["scratch_bytes"] == scratch[i]
        assert (scratch[i] > 0) == (op.kind == "bconv" or "norm" in op.consts)
        if not scratch[i]:
            assert entry["scratch_offset"] is None
            continue
        where = placements[scratch_name(i)]
        assert entry["scratch_offset"] == where.offset and where.offset + where.size <= arena
        member = ".scratch = &stk_arena[{}].u}};" if op.kind == "bconv" else ".band = &stk_arena[{}].f,"
        assert member.format(where.offset // 4) in model_c
        for name in (*op.inputs, op.output):
            if name in placements:
                other = placements[name]
                assert other.offset + other.size <= where.offset or where.offset + where.size <= other.offset
    files, host_manifest = render(graph, get_target("host"), "stk", ckpt.sha256)
    host = schedule(graph, get_target("host"))
    assert ".scratch" not in files["src/stk.c"] and host_manifest["arena_bytes"] == host.arena
    assert [entry["scratch_bytes"] > 0 for entry in host_manifest["ops"]] == ["norm" in op.consts
                                                                             for op in host.graph.ops]


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
@pytest.mark.parametrize("isa", ARCHS)
def test_bconv_frame_is_fixed_and_below_8kb(isa, compiler, tmp_path):
    """-fstack-usage: no frame of the NEON binary convolution depends on the layer (no VLA, no alloca) and
    each is below 8 KB, with and without OpenMP (docs/arithmetic.md)."""
    from irnet_edge.codegen.render import RUNTIME_DIR

    cross = toolchain.CROSS[isa]
    if compiler == "gcc":
        command = [cross.cc, *cross.cflags.split()]
        toolchain.require_tool(cross.cc, cross.packages)
    else:
        triple = {"aarch64": "aarch64-linux-gnu", "armv7": "armv7a-linux-gnueabihf"}[isa]
        command = ["clang", f"--target={triple}", *cross.cflags.split()]
        toolchain.require_tool("clang", "clang")
    for openmp in ([], ["-fopenmp"]):
        result = subprocess.run([*command, *toolchain.STRICT_CFLAGS.split(), "-Wvla", *openmp, "-fstack-usage",
                                 f"-I{RUNTIME_DIR}", "-c", str(RUNTIME_DIR / "irnet_kernels_neon.c"), "-o",
                                 str(tmp_path / "neon.o")], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-4000:]
        frames = {}
        for line in (tmp_path / "neon.su").read_text().splitlines():
            where, size, kind = line.split("\t")
            frames[where.rsplit(":", 1)[-1]] = (int(size), kind)
        bconv = {name: frame for name, frame in frames.items() if name.startswith("irnet_bconv_neon")}
        assert "irnet_bconv_neon" in bconv, frames
        for name, (size, kind) in bconv.items():
            assert kind == "static" and size < 8192, (openmp, name, size, kind)
