"""Cortex-M with clang (LLVM; Arm Compiler 6 and Keil are clang-based): the kernels compile for every M profile at
every optimisation level, and firmware built by clang (`make COMPILER=clang`, arm-none-eabi-gcc still linking)
is bit-exact with the reference under qemu-system-arm, on v6-M, the DSP cores' assembly and Helium."""
import subprocess

import pytest
import torch

from irnet_edge.codegen import write_tree
from irnet_edge.codegen.firmware import load_board, load_cpu, render_firmware
from irnet_edge.codegen.render import RUNTIME_DIR
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.ir import export
from irnet_edge.nn import zoo_spec
from irnet_edge.verify import qemu

from .helpers import calibrated
from .test_export_c import GRID, grid_id, grid_model

# (board, cpu): v6-M code on the M3 of mps2-an385, the DSP assembly on the M4 and the M33, Helium on the M55
BOARDS = [("mps2-an386", "cortex-m4"), ("mps2-an385", "cortex-m0plus"), ("mps2-an505", "cortex-m33"),
          ("mps3-an547", "cortex-m55")]
STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes"]


def newlib_include() -> list[str]:
    """The C library headers arm-none-eabi-gcc compiles against (newlib-nano's), without GCC's own."""
    own = subprocess.run(["arm-none-eabi-gcc", "-print-file-name=include"], capture_output=True, text=True,
                         check=True).stdout.strip()
    search = subprocess.run(["arm-none-eabi-gcc", "--specs=nano.specs", "-xc", "-E", "-Wp,-v", "/dev/null"],
                            capture_output=True, text=True, check=True).stderr
    dirs = [line[1:] for line in search.splitlines() if line.startswith(" /")]
    return [arg for d in dirs if d not in (own, own + "-fixed") for arg in ("-isystem", d)]


@pytest.mark.parametrize("cpu", ["cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33",
                                 "cortex-m55"])
def test_cortex_m_kernels_compile_with_clang_at_every_level(cpu, tmp_path):
    """What used to fail: the DSP assembly asked clang for more registers than it has (clang addresses every "m"
    operand through a register of its own, r7 is its Thumb frame pointer), and the float block's assembly did the
    same to GCC at -O0."""
    preset = load_cpu(cpu)
    include = newlib_include()
    source = str(RUNTIME_DIR / "irnet_kernels_cm.c")
    cells = [("clang", opt, std) for opt in ("-O0", "-O2", "-O3", "-Os") for std in ("-std=c99", "-std=gnu11")]
    cells.append(("gcc", "-O0", "-std=c99"))  # -O2, -O3, -Os: every other test
    for cc, opt, std in cells:
        if cc == "clang":
            command = ["clang", f"--target={preset['clang_target']}", *preset["flags"], *include]
        else:
            command = ["arm-none-eabi-gcc", *preset["flags"]]
        command += [opt, std, *STRICT, "-ffp-contract=off", "-c", source, "-o", str(tmp_path / "k.o")]
        build = subprocess.run(command, capture_output=True, text=True)
        assert build.returncode == 0, f"{' '.join(command)}:\n{build.stderr[-3000:]}"


@pytest.fixture(scope="module")
def zoo_models(tmp_path_factory):
    """mcu_m4 and mcu_m0, calibrated on random images (exactness does not need trained weights)."""
    folder = tmp_path_factory.mktemp("clang-zoo")
    images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator().manual_seed(3))
    models = {}
    for arch in ("mcu_m4", "mcu_m0"):
        ckpt = calibrated(zoo_spec(arch, 1, 28, 10, [0.5], [0.25]), None, images, "mnist", folder / f"{arch}.pt")
        models[arch] = (ckpt, export(ckpt))
    inputs = torch.randint(0, 256, (12, 28, 28, 1), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    return models, inputs


@pytest.mark.parametrize("opt", ["-O2", "-Os"])
@pytest.mark.parametrize("board,cpu", BOARDS, ids=[cpu for _, cpu in BOARDS])
@pytest.mark.parametrize("arch", ["mcu_m4", "mcu_m0"])
def test_zoo_mcu_models_bit_exact_with_clang(arch, board, cpu, opt, zoo_models):
    models, inputs = zoo_models
    ckpt, graph = models[arch]
    result = qemu.verify(graph, arch, ckpt.sha256, inputs, load_board(board), cpu, compiler="clang",
                         extra_cflags=opt)
    assert result.exact == result.samples == len(inputs)


@pytest.fixture(scope="module")
def grid_models(tmp_path_factory):
    return {grid_id(case): grid_model(case, tmp_path_factory.mktemp("grid")) for case in GRID}


# the grid cases that reach every assembly loop of the DSP cores and the float blocks of 16 channels:
# irnet_bconv_h3 with float (cin1-k3) and bit (cin3-k3) outputs, the half-word taps with bits (cin16-k1,
# cin1-k5: 25 tap words) and floats (cin3-k5), the channel-pair loops with bits (cin31-k3, cin65-k3: 27 words)
# and floats (cin32-k3, zero padding: row by row at the borders), and the float convolution's blocks with float
# (fp-cin16-k3, 33 channels) and bit outputs (the stems of the cases with 16 or more channels)
ASM_CASES = [grid_id(c) for c in GRID if grid_id(c).split("-s")[0] in
             ("bin-cin1-k3", "bin-cin3-k3", "bin-cin16-k1", "bin-cin1-k5", "bin-cin3-k5", "bin-cin31-k3",
              "bin-cin32-k3", "bin-cin65-k3", "fp-cin16-k3")]


@pytest.mark.parametrize("board,cpu,opt,cases", [
    ("mps2-an386", "cortex-m4", "-O2", [grid_id(c) for c in GRID]),
    ("mps2-an386", "cortex-m4", "-O0", ASM_CASES),
    ("mps2-an505", "cortex-m33", "-O3", ASM_CASES),
    ("mps3-an547", "cortex-m55", "-Os", ASM_CASES),
    ("mps2-an385", "cortex-m0plus", "-Os", ASM_CASES),
], ids=["cortex-m4-O2-all", "cortex-m4-O0", "cortex-m33-O3", "cortex-m55-Os", "cortex-m0plus-Os"])
def test_kernel_grid_bit_exact_with_clang(board, cpu, opt, cases, grid_models):
    assert len(ASM_CASES) == 9
    for case in cases:
        ckpt, graph, inputs = grid_models[case]
        result = qemu.verify(graph, "grid", ckpt.sha256, inputs[:6], load_board(board), cpu, compiler="clang",
                             extra_cflags=opt)
        assert result.exact == result.samples == 6, case


def test_firmware_objects_are_clang_built_and_linked_by_gcc(zoo_models, tmp_path):
    models, inputs = zoo_models
    ckpt, graph = models["mcu_m0"]
    board = load_board("mps2-an386")
    write_tree(render_firmware(graph, "mcu_m0", ckpt.sha256, board, None, inputs[:1].numpy(),
                               torch.zeros(1, dtype=torch.uint8).numpy(), ""), tmp_path, force=True)
    makefile = (tmp_path / "Makefile").read_text()
    assert "CC = clang --target=thumbv7em-none-eabihf" in makefile
    elf = qemu.build_firmware(tmp_path, "-O2", "clang")
    comments = {}
    for obj in ("src/irnet/irnet_kernels_cm.o", "main.o", "app.elf"):
        comments[obj] = subprocess.run(["arm-none-eabi-readelf", "-p", ".comment", str(tmp_path / obj)],
                                       capture_output=True, text=True, check=True).stdout
    assert "clang version" in comments["src/irnet/irnet_kernels_cm.o"] and "GCC" not in comments["main.o"]
    assert "GCC" in comments["app.elf"]  # newlib and libgcc, linked by arm-none-eabi-gcc
    assert elf == tmp_path / "app.elf"
    with pytest.raises(IrnetEdgeError, match="unknown compiler 'icc'; available: gcc, clang"):
        qemu.build_firmware(tmp_path, "", "icc")
    result = subprocess.run(["make", "-C", str(tmp_path), "COMPILER=icc"], capture_output=True, text=True)
    assert result.returncode != 0 and "COMPILER is gcc or clang, not icc" in result.stderr
