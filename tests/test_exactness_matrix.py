"""Exact in your build: the generated C gives the reference executor's logits bit for bit whatever compiler and
flags build it, or refuses to compile with a message naming the flag (irnet_edge/runtime/irnet_exact.h).

Every cell builds the generated trees as a user would (`make CC=... CFLAGS=...` with their own Makefile, or the
firmware project's Makefile) and runs the first 100 MNIST test images through three models, compiled once per
cell: mcu_m4 (float stem conv, binary convs, a binary conv with float output, float max pooling, FC) and mcu_m0,
calibrated with real BatchNorm statistics and random affine parameters (negative and near-zero scales), and a
float-path probe (see float_path_checkpoint) on which any changed bit or flushed subnormal reaches the logits.
The logits are compared as int32; a wrong cell names the first op that differs where the runner can dump.

- host x86-64: gcc and clang, -O0 to -O3 and -Os, C99 and GNU modes, -march=native, -ffp-contract=fast;
- aarch64 and armv7 (the cortex-a target, NEON kernels): gcc cross compilers and clang --target, under qemu-user;
- Cortex-M firmware: arm-none-eabi-gcc with vendor-IDE style flags, hard and soft float, under qemu-system-arm;
- refused: the flags that could not be exact, each by an #error that names it; clang's flags that announce no
  macro must leave the models exact instead;
- disassembly: no multiply and add fused into one instruction (nor Helium float arithmetic, which flushes
  subnormals), with a positive control showing the check finds them in the same kernels when the header's
  protections are taken away.

"fast" cells put -ffp-contract=fast last on every compiler command line (a wrapper around CC), after the
Makefile's `override CFLAGS += -ffp-contract=off`: the sources themselves must keep every product unfused.
"""
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from irnet_edge.codegen import get_target, render, write_tree
from irnet_edge.codegen.firmware import load_board, load_cpu, render_firmware
from irnet_edge.codegen.render import RUNTIME_DIR
from irnet_edge.codegen.schedule import schedule
from irnet_edge.data import load_split
from irnet_edge.ir import export, reference
from irnet_edge.ir.graph import Graph
from irnet_edge.nn import InputNorm, spec_from_module, zoo_spec
from irnet_edge.verify import toolchain
from irnet_edge.verify.compare import first_mismatch

from .helpers import calibrate, calibrated, checkpoint_of

SAMPLES = 100
MODELS = ("mcu_m4", "mcu_m0", "fp_path", "resnet20")


@dataclass
class Model:
    graph: Graph
    sha256: str
    images: torch.Tensor  # SAMPLES uint8 HWC images
    inputs: Path  # the same, as the runners read them
    expected: np.ndarray  # the reference executor's float32 logits


def float_path_checkpoint(images: torch.Tensor, path: Path):
    """A probe: every op float from the normalized input to the logits (normalize, two float convs, the
    classifier), so that one changed bit anywhere reaches the logits instead of vanishing in a binarization; and
    the classifier scaled by 2^-127, so that many of its products and over a quarter of its logits are
    subnormal: a build that flushes subnormals to zero shows too."""
    torch.manual_seed(1)
    model = nn.Sequential(InputNorm([0.1307], [0.3081]), nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8),
                          nn.Hardtanh(), nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.Hardtanh(),
                          nn.Flatten(), nn.BatchNorm1d(16 * 7 * 7), nn.Linear(16 * 7 * 7, 10))
    spec = spec_from_module(model, (1, 28, 28), "grid")
    calibrate(model, images, torch.Generator().manual_seed(1))
    with torch.no_grad():
        model[-1].weight.mul_(2.0 ** -127)
        model[-1].bias.mul_(2.0 ** -127)
    return checkpoint_of(model, spec, "mnist", path)


@pytest.fixture(scope="module")
def models(mnist_dir, tmp_path_factory) -> dict[str, Model]:
    """mcu_m4 (float stem conv, binary convs, a binary conv with float output, float max pooling, FC), mcu_m0, the
    float-path probe and resnet20 (residual adds and sign packs fused into its binary convs, in place; option-A
    shortcuts in place), on the first SAMPLES MNIST test images; calibrated on the next 512."""
    root = tmp_path_factory.mktemp("models")
    test = load_split("mnist", "test", mnist_dir)
    inputs = test.images[:SAMPLES].permute(0, 2, 3, 1).contiguous()
    (root / "inputs.bin").write_bytes(inputs.numpy().astype(np.uint8).tobytes())
    calibration = test.images[SAMPLES:SAMPLES + 512]
    out = {}
    for name in MODELS:
        if name == "fp_path":
            ckpt = float_path_checkpoint(calibration, root / f"{name}.pt")
        else:
            ckpt = calibrated(zoo_spec(name, 1, 28, 10, [0.1307], [0.3081]), None, calibration, "mnist",
                              root / f"{name}.pt")
        graph = export(ckpt)
        out[name] = Model(graph, ckpt.sha256, inputs, root / "inputs.bin", reference.run_batched(graph, inputs).numpy())
    assert [op.kind for op in out["fp_path"].graph.ops] == ["normalize", "conv_f32", "conv_f32", "conv_f32"]
    assert (np.abs(out["fp_path"].expected) < 2.0 ** -126).mean() > 0.1  # subnormal logits
    return out


@pytest.fixture(scope="module")
def trees(models, tmp_path_factory):
    """Generated trees, rendered once per model and target; each cell builds a copy."""
    root = tmp_path_factory.mktemp("trees")
    cache: dict[tuple[str, str], Path] = {}

    def get(prefix: str, target: str) -> Path:
        if (prefix, target) not in cache:
            model = models[prefix]
            files, _ = render(model.graph, get_target(target), prefix, model.sha256)
            write_tree(files, root / f"{prefix}-{target}", force=True)
            cache[prefix, target] = root / f"{prefix}-{target}"
        return cache[prefix, target]
    return get


def contract_fast_last(cc: str, folder: Path) -> str:
    """A CC that puts -ffp-contract=fast after every other flag, the Makefile's -ffp-contract=off included."""
    wrapper = folder / "cc-contract-fast"
    wrapper.write_text(f'#!/bin/sh\nexec {cc} "$@" -ffp-contract=fast\n')
    wrapper.chmod(0o755)
    return str(wrapper)


def make(tree: Path, variables: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(tree), *(f"{k}={v}" for k, v in variables.items())],
                          capture_output=True, text=True, timeout=300)


@dataclass
class Outcome:
    exact: int  # samples whose logits all have the reference's bits
    first_bad: int | None = None
    where: str = ""  # the first op whose output differs on first_bad, where the build could dump it

    def __str__(self) -> str:
        if self.first_bad is None:
            return f"{self.exact}/{SAMPLES} bit-exact"
        return f"{self.exact}/{SAMPLES} bit-exact, first wrong sample {self.first_bad}" + (
            f" ({self.where})" if self.where else "")


def compare(got: np.ndarray, expected: np.ndarray) -> Outcome:
    same = (got.reshape(expected.shape).view(np.int32) == expected.view(np.int32)).all(axis=1)
    bad = np.nonzero(~same)[0]
    return Outcome(int(same.sum()), int(bad[0]) if len(bad) else None)


def assert_exact(outcomes: dict[str, Outcome]) -> None:
    assert all(o.exact == SAMPLES for o in outcomes.values()), "; ".join(f"{p}: {o}" for p, o in outcomes.items())


# ---- the compilers -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Compiler:
    cc: str  # CC exactly as a user would give it to make
    arch: str | None = None  # None: the host; else the qemu-user arch of toolchain.CROSS


COMPILERS = {
    "gcc": Compiler("gcc"),
    "clang": Compiler("clang"),
    "aarch64-gcc": Compiler("aarch64-linux-gnu-gcc -march=armv8-a", "aarch64"),
    "aarch64-clang": Compiler("clang --target=aarch64-linux-gnu -march=armv8-a", "aarch64"),
    "armv7-gcc": Compiler("arm-linux-gnueabihf-gcc -march=armv7-a -mfpu=neon -mfloat-abi=hard", "armv7"),
    "armv7-clang": Compiler("clang --target=arm-linux-gnueabihf -march=armv7-a -mfpu=neon -mfloat-abi=hard",
                            "armv7"),
    # VFPv4: the fused VFMA exists (QEMU's cortex-a15 has it)
    "armv7-vfpv4-gcc": Compiler("arm-linux-gnueabihf-gcc -march=armv7-a -mfpu=neon-vfpv4 -mfloat-abi=hard", "armv7"),
    "armv7-vfpv4-clang": Compiler("clang --target=arm-linux-gnueabihf -march=armv7-a -mfpu=neon-vfpv4 "
                                  "-mfloat-abi=hard", "armv7"),
}


def run_runner(runner: Path, arch: str | None, *args: Path) -> None:
    launcher = toolchain.CROSS[arch].launcher if arch else ()
    subprocess.run([*launcher, str(runner), *map(str, args)], check=True, capture_output=True, timeout=300)


def build_and_run(models, trees, tmp_path: Path, compiler: str, cflags: str | None, fast: bool = False
                  ) -> dict[str, Outcome]:
    """Builds each model's tree with its Makefile (cflags None: the Makefile's default CFLAGS), runs the
    SAMPLES images (qemu-user for a cross arch) and compares with the reference; on a difference, names the first
    op that differs (a second build with the runner's debug dump)."""
    comp = COMPILERS[compiler]
    outcomes = {}
    for prefix, model in models.items():
        source = trees(prefix, "cortex-a" if comp.arch else "host")
        tree = shutil.copytree(source, tmp_path / prefix)
        cc = contract_fast_last(comp.cc, tmp_path) if fast else comp.cc
        variables = {"CC": cc, "LDFLAGS": "-static" if comp.arch else ""}
        if cflags is not None:
            variables["CFLAGS"] = cflags
        built = make(tree, variables)
        assert built.returncode == 0, f"{compiler} {cflags} failed to build {prefix}:\n{built.stderr[-3000:]}"
        compiles = [line for line in built.stdout.splitlines() if " -c -o " in line]
        assert compiles and all("-ffp-contract=off -Isrc" in line for line in compiles), built.stdout
        run_runner(tree / f"{prefix}_run", comp.arch, model.inputs, tmp_path / f"{prefix}.out")
        outcome = outcomes[prefix] = compare(np.fromfile(tmp_path / f"{prefix}.out", dtype=np.float32),
                                             model.expected)
        if outcome.first_bad is not None:
            debug = shutil.copytree(source, tmp_path / f"{prefix}-debug")
            flags = variables.get("CFLAGS", toolchain.STRICT_CFLAGS)
            assert make(debug, {**variables, "CFLAGS": f"{flags} -D{prefix.upper()}_DEBUG_DUMP"}).returncode == 0
            sample = model.images[outcome.first_bad:outcome.first_bad + 1]
            sample.numpy().tofile(debug / "sample.bin")
            (debug / "dump").mkdir()
            run_runner(debug / f"{prefix}_run", comp.arch, debug / "sample.bin", debug / "sample.out", debug / "dump")
            target = get_target("cortex-a" if comp.arch else "host")
            ran = schedule(model.graph, target).graph
            dumps = {i: (debug / "dump" / f"op{i:03d}.bin").read_bytes() for i in range(len(ran.ops))}
            mismatch = first_mismatch(model.graph, sample[0], dumps, target)
            outcome.where = mismatch.describe() if mismatch else "no op output differs in the debug build"
    return outcomes


# ---- host x86-64 -------------------------------------------------------------------------------

STRICT = "-std=c99 -O2 -Wall -Wextra -Werror -pedantic"
HOST_CELLS = [  # (CFLAGS on the make command line, -ffp-contract=fast last)
    (None, False),  # the Makefile's own default
    ("-O0", False), ("-O2", False), ("-O3", False), ("-Os", False),
    (STRICT, False), ("-std=gnu11 -O2", False), ("-std=gnu17 -O3", False),
    ("-O3 -march=native", False),
    ("-O3 -march=native -ffp-contract=fast", False),  # as the user writes it: the Makefile's override follows
    ("-O3 -march=native", True), ("-std=gnu17 -O2 -mfma", True),
]


def cell_id(cflags: str | None, fast: bool) -> str:
    text = "default-CFLAGS" if cflags is None else cflags.replace(" ", "")
    return text + ("+fast-last" if fast else "")


@pytest.mark.parametrize("cflags,fast", HOST_CELLS, ids=[cell_id(*c) for c in HOST_CELLS])
@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_host_bit_exact(compiler, cflags, fast, models, trees, tmp_path):
    assert_exact(build_and_run(models, trees, tmp_path, compiler, cflags, fast))


# ---- aarch64 and armv7 under qemu-user ---------------------------------------------------------

CROSS_CELLS = [(c, o, f) for c in ("aarch64-gcc", "aarch64-clang", "armv7-gcc", "armv7-clang")
               for o in ("-O2", "-O3") for f in (False, True)]
CROSS_CELLS += [("armv7-vfpv4-gcc", "-O3", True), ("armv7-vfpv4-clang", "-O3", True)]


@pytest.mark.slow
@pytest.mark.parametrize("compiler,cflags,fast", CROSS_CELLS,
                         ids=[f"{c}-{cell_id(o, f)}" for c, o, f in CROSS_CELLS])
def test_cross_bit_exact_under_qemu_user(compiler, cflags, fast, models, trees, tmp_path):
    assert_exact(build_and_run(models, trees, tmp_path, compiler, cflags, fast))


# ---- Cortex-M firmware under qemu-system-arm ---------------------------------------------------

# what an STM32CubeIDE-style project passes (the Makefile then adds the CPU flags, -ffp-contract=off and -Isrc)
IDE = "-std=gnu11 -g3 -DDEBUG -ffunction-sections -fdata-sections -Wall -fstack-usage -MMD -MP"
FIRMWARE_CELLS = [  # (board, firmware cpu, CPU_FLAGS override or None, optimisation, -ffp-contract=fast last)
    ("mps2-an386", "cortex-m4", None, "-O3", False),
    ("mps2-an386", "cortex-m4", None, "-Os", False),
    ("mps2-an386", "cortex-m4", None, "-O3", True),
    ("mps2-an386", "cortex-m4", "-mcpu=cortex-m4 -mthumb -mfloat-abi=soft", "-O3", False),
    ("mps2-an386", "cortex-m4", "-mcpu=cortex-m4 -mthumb -mfloat-abi=soft", "-Os", False),
    ("mps2-an386", "cortex-m4", "-mcpu=cortex-m4 -mthumb -mfloat-abi=softfp -mfpu=fpv4-sp-d16", "-O3", True),
    ("mps2-an385", "cortex-m3", None, "-O3", False),
    ("mps2-an385", "cortex-m3", None, "-Os", False),
    ("mps2-an500", "cortex-m7", None, "-O3", True),
    ("mps3-an547", "cortex-m55", None, "-O3", True),
]


def firmware_id(board, cpu, cpu_flags, opt, fast) -> str:
    abi = "" if cpu_flags is None else "-" + re.search(r"-mfloat-abi=(\w+)", cpu_flags).group(1)
    return f"{board}-{cpu}{abi}-{opt.lstrip('-')}" + ("+fast-last" if fast else "")


@pytest.mark.slow
@pytest.mark.parametrize("board,cpu,cpu_flags,opt,fast", FIRMWARE_CELLS,
                         ids=[firmware_id(*c) for c in FIRMWARE_CELLS])
def test_firmware_bit_exact_under_qemu_system(board, cpu, cpu_flags, opt, fast, models, tmp_path):
    from irnet_edge.verify.qemu import run_elf

    spec = load_board(board)
    outcomes = {}
    for prefix, model in models.items():
        files = render_firmware(model.graph, prefix, model.sha256, spec, cpu, model.images[:1].numpy(),
                                np.zeros(1, np.uint8), "mnist")
        tree = tmp_path / prefix
        write_tree(files, tree, force=True)
        cc = contract_fast_last("arm-none-eabi-gcc", tmp_path) if fast else "arm-none-eabi-gcc"
        variables = {"CC": cc, "CFLAGS": f"{IDE} {opt}"}
        if cpu_flags is not None:
            variables["CPU_FLAGS"] = cpu_flags
        built = make(tree, variables)
        assert built.returncode == 0, f"{board} {cpu} {opt} failed to build {prefix}:\n{built.stderr[-3000:]}"
        rc, output = run_elf(spec.emulator["machine"], tree / "app.elf", f"{model.inputs} {tmp_path / 'out.bin'}",
                             cwd=tmp_path, timeout=600)
        assert rc == 0, output[-2000:]
        outcomes[prefix] = compare(np.fromfile(tmp_path / "out.bin", dtype=np.float32), model.expected)
    assert_exact(outcomes)


# ---- refused at compile time -------------------------------------------------------------------

REFUSED = [  # (compiler, flags, what the message must name)
    ("gcc", "-ffast-math", "-ffast-math"),
    ("gcc", "-Ofast", "-Ofast"),
    ("gcc", "-funsafe-math-optimizations", "-funsafe-math-optimizations"),
    ("gcc", "-ffinite-math-only", "-ffinite-math-only"),
    ("gcc", "-fassociative-math -fno-signed-zeros -fno-trapping-math", "-fassociative-math"),
    ("gcc", "-freciprocal-math", "-freciprocal-math"),
    ("gcc", "-fno-signed-zeros", "-fno-signed-zeros"),
    ("clang", "-ffast-math", "-ffast-math"),
    ("clang", "-Ofast", "-Ofast"),
    ("clang", "-ffinite-math-only", "-ffinite-math-only"),
    ("aarch64-gcc", "-Ofast", "-Ofast"),
    ("aarch64-clang", "-ffast-math", "-ffast-math"),
    ("armv7-gcc", "-funsafe-math-optimizations", "-funsafe-math-optimizations"),
    ("armv7-clang", "-ffinite-math-only", "-ffinite-math-only"),
]


def assert_refused(built: subprocess.CompletedProcess, named: str) -> None:
    assert built.returncode != 0, "the build should have been refused"
    errors = [line for line in built.stderr.splitlines() if "error:" in line]
    assert errors, built.stderr[-3000:]
    # every error is irnet-edge's own refusal, and one of them names the flag
    assert all("irnet-edge: " in line for line in errors), built.stderr[-3000:]
    assert any(named in line.split("irnet-edge: ", 1)[1] for line in errors), built.stderr[-3000:]


@pytest.mark.parametrize("compiler,flags,named", REFUSED, ids=[f"{c}{f.replace(' ', '')}" for c, f, _ in REFUSED])
def test_unsafe_flags_refused_by_name(compiler, flags, named, trees, tmp_path):
    comp = COMPILERS[compiler]
    tree = shutil.copytree(trees("mcu_m4", "cortex-a" if comp.arch else "host"), tmp_path / "t")
    assert_refused(make(tree, {"CC": comp.cc, "CFLAGS": f"-O2 {flags}"}), named)


@pytest.mark.parametrize("flags,named", [("-ffast-math", "-ffast-math"), ("-Ofast", "-Ofast"),
                                         ("-funsafe-math-optimizations", "-funsafe-math-optimizations")])
def test_unsafe_flags_refused_in_firmware(flags, named, models, tmp_path):
    model = models["mcu_m4"]
    sample = np.zeros((1, 28, 28, 1), np.uint8)
    files = render_firmware(model.graph, "mcu_m4", model.sha256, load_board("mps2-an386"), None, sample,
                            np.zeros(1, np.uint8), "mnist")
    write_tree(files, tmp_path / "fw", force=True)
    assert_refused(make(tmp_path / "fw", {"EXTRA_CFLAGS": flags}), named)


# Clang predefines no macro for these: they cannot be refused by name, so the sources must stay exact with them.
CLANG_SILENT = ["-fassociative-math", "-freciprocal-math", "-fno-signed-zeros", "-funsafe-math-optimizations",
                "-fassociative-math -fno-signed-zeros -fno-trapping-math", "-fno-honor-nans", "-fno-honor-infinities",
                "-fapprox-func"]
CLANG_SILENT_CELLS = [("clang", "-O3 -march=native", f) for f in CLANG_SILENT]
CLANG_SILENT_CELLS += [("aarch64-clang", "-O3", f) for f in CLANG_SILENT[:6]]
CLANG_SILENT_CELLS += [("armv7-clang", "-O3", f) for f in ("-freciprocal-math", "-funsafe-math-optimizations")]


@pytest.mark.slow
@pytest.mark.parametrize("compiler,base,flags", CLANG_SILENT_CELLS,
                         ids=[f"{c}{f.replace(' ', '')}" for c, _, f in CLANG_SILENT_CELLS])
def test_clang_flags_without_a_macro_refused_or_exact(compiler, base, flags, models, trees, tmp_path):
    """Refused by name if the header ever learns to see the flag, else bit-exact: irnet_exact.h takes them back
    (precise mode on x86, opaque divisors everywhere), but linking with -funsafe-math-optimizations is out of its
    reach."""
    comp = COMPILERS[compiler]
    src = trees("mcu_m4", "cortex-a" if comp.arch else "host") / "src"
    probe = subprocess.run([*comp.cc.split(), *base.split(), *flags.split(), f"-I{src}", "-fsyntax-only",
                            str(src / "irnet" / "irnet_kernels.c")], capture_output=True, text=True)
    if probe.returncode != 0:
        assert_refused(probe, flags.split()[0])
        return
    outcomes = build_and_run(models, trees, tmp_path, compiler, f"{base} {flags}")
    # what no header can see: linking with -funsafe-math-optimizations (or -ffast-math) adds crtfastmath.o, whose
    # constructor turns on flush-to-zero (and x86's denormals-are-zero) for the whole program
    flushing = [p for p in models if "set_fast_math" in subprocess.run(
        ["nm", str(tmp_path / p / f"{p}_run")], capture_output=True, text=True).stdout]
    assert all(o.exact == SAMPLES for o in outcomes.values()), "; ".join(f"{p}: {o}" for p, o in outcomes.items()) + (
        f"; the runners of {', '.join(flushing)} were linked with crtfastmath.o (set_fast_math: subnormals flushed "
        "to zero from program start)" if flushing else "")


# ---- disassembly: no fused multiply-add ----------------------------------------------------------

FUSED = {  # mnemonics of a multiply and add in one rounding
    "x86": re.compile(r"\bvf(n?m(add|sub)|maddsub|msubadd)\w*"),
    "aarch64": re.compile(r"\b(fmadd|fmsub|fnmadd|fnmsub|fmla|fmls)\b"),
    "arm": re.compile(r"\bvfn?m[as]s?\b"),
}
# Helium (MVE) float arithmetic: it flushes subnormals to zero whatever FPSCR says
HELIUM_FLOAT = re.compile(r"\bv(add|sub|mul|fma|fms|neg|abs|maxnm|minnm)\.f(16|32)\s+q\d")


@dataclass(frozen=True)
class Disasm:
    cc: str
    flags: str
    target: str  # the generated tree's target
    objdump: str
    isa: str
    helium: bool = False


def _m(cpu: str) -> str:
    return " ".join(load_cpu(cpu)["flags"])


DISASM = {
    "x86-gcc-O2-mfma": Disasm("gcc", "-O2 -mfma", "host", "objdump", "x86"),
    "x86-gcc-O3-native": Disasm("gcc", "-O3 -march=native -mfma", "host", "objdump", "x86"),
    "x86-clang-O2-mfma": Disasm("clang", "-O2 -mfma", "host", "objdump", "x86"),
    "x86-clang-O3-native": Disasm("clang", "-O3 -march=native -mfma", "host", "objdump", "x86"),
    **{f"aarch64-{name}{opt}": Disasm(cc, opt, "cortex-a", "aarch64-linux-gnu-objdump", "aarch64")
       for name, cc in (("gcc", "aarch64-linux-gnu-gcc"), ("clang", "clang --target=aarch64-linux-gnu"))
       for opt in ("-O2", "-O3")},
    **{f"{name}-O3": Disasm(COMPILERS[name].cc, "-O3", "cortex-a", "arm-none-eabi-objdump", "arm")
       for name in ("armv7-vfpv4-gcc", "armv7-vfpv4-clang")},
    **{f"{cpu}-gcc{opt}": Disasm("arm-none-eabi-gcc", f"{_m(cpu)} {opt}", "cortex-m", "arm-none-eabi-objdump", "arm",
                                 helium=load_cpu(cpu)["mve"])
       for cpu in ("cortex-m4", "cortex-m7", "cortex-m55") for opt in ("-O2", "-O3")},
}


def compile_objects(cfg: Disasm, src: Path, sources: list[Path], extra: list[str], out: Path) -> list[Path]:
    """Each source compiled on its own command line, extra last (no Makefile: nothing follows them)."""
    jobs = [(out / f"{source.stem}.o", subprocess.Popen(
        [*cfg.cc.split(), *cfg.flags.split(), "-std=gnu11", "-Wall", f"-I{src}", *extra, "-c", "-o",
         str(out / f"{source.stem}.o"), str(source)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for source in sources]
    for _, job in jobs:
        output = job.communicate(timeout=300)[0]
        assert job.returncode == 0, output[-3000:]
    return [obj for obj, _ in jobs]


def instructions(cfg: Disasm, objects: list[Path], pattern: re.Pattern) -> list[str]:
    listing = subprocess.run([cfg.objdump, "-d", *map(str, objects)], capture_output=True, text=True, check=True)
    return [line.strip() for line in listing.stdout.splitlines() if "\t" in line and pattern.search(line)]


@pytest.mark.parametrize("fast", [False, True], ids=["default-contraction", "fp-contract=fast"])
@pytest.mark.parametrize("config", list(DISASM))
def test_no_fused_multiply_add_in_the_objects(config, fast, trees, tmp_path):
    """The runtime and the model compiled with the flag last (no Makefile override) hold no fused multiply-add
    (nor, on Helium, vector float arithmetic); the portable kernels without irnet_exact.h's pragmas, fences and
    opaque divisors, compiled with the same flags, do: the check can fail."""
    cfg = DISASM[config]
    src = trees("mcu_m4", cfg.target) / "src"
    contract = ["-ffp-contract=fast"] if fast else []
    (tmp_path / "exact").mkdir()
    objects = compile_objects(cfg, src, sorted(src.glob("*.c")) + sorted((src / "irnet").glob("*.c")), contract,
                              tmp_path / "exact")
    fused = instructions(cfg, objects, FUSED[cfg.isa])
    assert not fused, f"{config}: fused multiply-adds in the runtime or model:\n" + "\n".join(fused[:20])
    if cfg.helium:
        flushing = instructions(cfg, objects, HELIUM_FLOAT)
        assert not flushing, f"{config}: Helium float arithmetic (subnormals flushed):\n" + "\n".join(flushing[:20])
    # positive control: the same portable kernels, the header's protections taken away
    (tmp_path / "control").mkdir()
    unprotected = ["-ffp-contract=fast", "-DIRNET_EXACT_H", "-DIRNET_FENCE(x)=((void)0)", "-DIRNET_OPAQUE(x)=((void)0)",
                   "-DIRNET_SCALAR_LOOP="]
    control = compile_objects(cfg, src, [src / "irnet" / "irnet_kernels.c"], unprotected, tmp_path / "control")
    assert instructions(cfg, control, FUSED[cfg.isa]), f"{config}: the control produced no fused multiply-add"
    if cfg.helium and "-O3" in cfg.flags:
        assert instructions(cfg, control, HELIUM_FLOAT), f"{config}: the control produced no Helium float arithmetic"


# ---- what irnet_exact.h accepts and refuses about evaluation width ------------------------------

def header_only(cc: str) -> subprocess.CompletedProcess:
    """irnet_exact.h alone (it includes nothing, so no C library is needed for the target)."""
    return subprocess.run([*cc.split(), f"-I{RUNTIME_DIR}", "-fsyntax-only", "-x", "c", "-"],
                          input='#include "irnet_exact.h"\n', capture_output=True, text=True)


def test_wider_float_evaluation_refused():
    """x87 code (32-bit x86 without SSE) evaluates float expressions in long double: refused."""
    for cc in ("gcc -m32 -mfpmath=387", "clang -m32 -mno-sse"):
        built = header_only(cc)
        assert built.returncode != 0 and "irnet-edge: float expressions are evaluated in a wider type" in built.stderr


@pytest.mark.parametrize("cc", ["arm-none-eabi-gcc -mcpu=cortex-m55 -mthumb -mfloat-abi=hard -std=gnu11",
                                "aarch64-linux-gnu-gcc -march=armv8.2-a+fp16 -std=gnu17",
                                "gcc -m32 -msse2 -mfpmath=sse"])
def test_float_evaluated_as_float_accepted(cc):
    """GCC's GNU modes report FLT_EVAL_METHOD 16 (ISO/IEC TS 18661-3) where _Float16 arithmetic is native: float
    is still evaluated as float, so the build goes on."""
    built = header_only(cc)
    assert built.returncode == 0, built.stderr
