"""Cortex-M: firmware for the emulated boards, run under qemu-system-arm, bit-exact with the reference."""
import json
import subprocess

import pytest
from click.testing import CliRunner

from irnet_edge.cli import main
from irnet_edge.codegen.firmware import board_names, load_board
from irnet_edge.data import get_dataset_info, load_split
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.ir import export
from irnet_edge.nn import build_model, zoo_spec
from irnet_edge.nn.checkpoint import load_checkpoint
from irnet_edge.verify import qemu

from .helpers import checkpoint_of
from .test_export_c import GRID, grid_id, grid_model

EMULATED = [b for b in board_names() if load_board(b).emulator]


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    return load_split("mnist", "test", mnist_dir)


def test_every_emulated_qemu_board_is_listed():
    assert set(EMULATED) >= {"mps2-an385", "mps2-an386", "mps2-an500", "mps2-an505", "mps3-an547"}


@pytest.mark.parametrize("board", EMULATED)
def test_mcu_model_bit_exact_on_every_emulated_board(board, trained_mcu, mnist_test):
    ckpt = load_checkpoint(trained_mcu["mcu_m4"])
    inputs = mnist_test.images[:40].permute(0, 2, 3, 1).contiguous()
    result = qemu.verify(export(ckpt), "mcu_m4", ckpt.sha256, inputs, load_board(board), None, "mnist",
                         mnist_test.labels[:40].numpy())
    assert result.exact == result.samples == 40


def test_armv6m_code_bit_exact(trained_mcu, mnist_test):
    """QEMU has no Cortex-M0+; its v6-M code runs on the M3 of mps2-an385."""
    ckpt = load_checkpoint(trained_mcu["mcu_m0"])
    inputs = mnist_test.images[:40].permute(0, 2, 3, 1).contiguous()
    result = qemu.verify(export(ckpt), "mcu_m0", ckpt.sha256, inputs, load_board("mps2-an385"), "cortex-m0plus",
                         "mnist")
    assert result.exact == result.samples == 40


@pytest.mark.parametrize("cpu,board", [("cortex-m0plus", "mps2-an385"), ("cortex-m4", "mps2-an386"),
                                       ("cortex-m55", "mps3-an547")])
@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_kernel_grid_on_emulated_cores(cpu, board, case, tmp_path):
    """The Cortex-M kernels (v6-M, DSP and Helium paths) against the reference, which the portable kernels
    match bit for bit over the same grid on the host."""
    ckpt, graph, inputs = grid_model(case, tmp_path)
    result = qemu.verify(graph, "grid", ckpt.sha256, inputs[:8], load_board(board), cpu)
    assert result.exact == result.samples == 8


def test_firmware_build_and_demo_run(trained_mcu, mnist_dir, tmp_path):
    out = tmp_path / "fw"
    runner = CliRunner()
    result = runner.invoke(main, ["firmware", str(trained_mcu["mcu_m4"]), "--board", "mps2-an386", "--out", str(out),
                                  "--samples", "4", "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "flash" in result.output and "of 4,194,304 bytes" in result.output
    for name in ("app.elf", "app.bin", "app.hex", "linker.ld", "startup.c", "main.c", "Makefile", "src/mcu_m4.c",
                 "src/irnet/irnet_kernels_cm.c"):
        assert (out / name).is_file(), name
    assert json.loads((out / "firmware.json").read_text())["board"] == "mps2-an386"
    symbols = subprocess.run(["arm-none-eabi-nm", str(out / "app.elf")], capture_output=True, text=True,
                             check=True).stdout
    assert "__popcountsi2" not in symbols  # never libgcc's popcount
    result = runner.invoke(main, ["run", str(out)])
    assert result.exit_code == 0, result.output
    assert "mps2-an386 (cortex-m4): mcu_m4" in result.output
    assert "selftest: passed, 10 logits bit-exact" in result.output
    assert "sample 3: class" in result.output and "peak stack:" in result.output


def test_too_big_for_the_board_names_the_numbers(cifar_dir, tmp_path):
    info = get_dataset_info("cifar10")
    spec = zoo_spec("vgg_small", 3, 32, 10, info.mean, info.std)
    checkpoint_of(build_model(spec).eval(), spec, "cifar10", tmp_path / "vgg.pt")
    out = tmp_path / "fw"
    result = CliRunner().invoke(main, ["firmware", str(tmp_path / "vgg.pt"), "--board", "mps3-an547", "--out",
                                       str(out), "--data-dir", str(cifar_dir)])
    assert result.exit_code == 1
    assert "vgg_small is too big for mps3-an547: flash: needs" in result.output
    assert "the board has 524,288" in result.output
    assert not out.exists()


def test_cpu_the_board_cannot_run_is_refused(trained_mcu):
    with pytest.raises(IrnetEdgeError, match="--cpu cortex-m55 needs fpu, dsp, mve, which mps2-an385"):
        ckpt = load_checkpoint(trained_mcu["mcu_m0"])
        qemu.verify(export(ckpt), "m", ckpt.sha256, None, load_board("mps2-an385"), "cortex-m55")


def test_firmware_checks_the_core_and_the_fit_before_the_data(tmp_path):
    """A core the board lacks, or a model too big for it, is named before a missing dataset."""
    info = get_dataset_info("cifar10")
    for arch, board, cpu, expected in (("mcu_m0", "nucleo-f446re", "cortex-m55", "--cpu cortex-m55 needs mve"),
                                       ("vgg_small", "mps3-an547", None, "vgg_small is too big for mps3-an547")):
        spec = zoo_spec(arch, 3, 32, 10, info.mean, info.std)
        checkpoint_of(build_model(spec).eval(), spec, "cifar10", tmp_path / f"{arch}.pt")
        out = tmp_path / "fw"
        result = CliRunner().invoke(main, ["firmware", str(tmp_path / f"{arch}.pt"), "--board", board, "--out",
                                           str(out), "--data-dir", str(tmp_path / "no-data"),
                                           *(["--cpu", cpu] if cpu else [])])
        assert result.exit_code == 1 and expected in result.output and not out.exists(), result.output


def test_verify_cli_on_cortex_m(trained_mcu, mnist_dir):
    result = CliRunner().invoke(main, ["verify", str(trained_mcu["mcu_m0"]), "--target", "cortex-m", "--board",
                                       "mps2-an505", "--samples", "20", "--agreement-samples", "0",
                                       "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "20/20 bit-exact on mps2-an505 (cortex-m33, QEMU)" in result.output
    result = CliRunner().invoke(main, ["verify", str(trained_mcu["mcu_m0"]), "--target", "cortex-m"])
    assert result.exit_code == 1 and "--target cortex-m needs --board" in result.output


REAL = [b for b in board_names() if not load_board(b).emulator]


def test_real_boards_are_listed():
    assert set(REAL) >= {"nucleo-f446re", "nucleo-f411re", "nrf52840dk", "rpi-pico"}


@pytest.fixture(scope="module")
def real_firmware(trained_mcu, mnist_dir, tmp_path_factory):
    projects = {}
    for board in REAL:
        out = tmp_path_factory.mktemp("fw") / board
        result = CliRunner().invoke(main, ["firmware", str(trained_mcu["mcu_m4"]), "--board", board, "--out", str(out),
                                           "--data-dir", str(mnist_dir)])
        assert result.exit_code == 0, result.output
        projects[board] = (out, result.output)
    return projects


@pytest.mark.parametrize("board", REAL)
def test_real_board_firmware_builds_within_limits(board, real_firmware):
    out, report = real_firmware[board]
    spec = load_board(board)
    for name in ("app.elf", "app.bin", "app.hex", "console.c"):
        assert (out / name).is_file()
    flash_line = next(line for line in report.splitlines() if line.startswith("flash "))
    used, total = (int(n.replace(",", "")) for n in flash_line.split()[1:4:2])
    assert total == spec.flash["length"] and 0 < used < total
    # the fit check's estimate, which refuses models before any build, holds what the linker placed
    budget = json.loads((out / "firmware.json").read_text())["budget"]
    assert used <= budget["flash_estimate"], (used, budget)
    assert "semihost" not in (out / "console.c").read_text()  # no debugger needed to run


def test_flash_dry_run_prints_the_exact_commands(real_firmware):
    out = real_firmware["nucleo-f446re"][0]
    elf = (out / "app.elf").resolve()
    result = CliRunner().invoke(main, ["flash", str(out), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == ["pyocd pack install stm32f446retx",
                                          f"pyocd flash --no-wait -t stm32f446retx {elf}"]
    result = CliRunner().invoke(main, ["flash", str(out), "--tool", "openocd", "--dry-run"])
    assert result.output.strip() == f"openocd -f board/st_nucleo_f4.cfg -c 'program {{{elf}}} verify reset exit'"


def test_flash_without_a_probe_says_how_to_connect(real_firmware):
    out = real_firmware["nrf52840dk"][0]
    for tool in ("pyocd", "openocd"):
        result = CliRunner().invoke(main, ["flash", str(out), "--tool", tool])
        assert result.exit_code == 1 and len(result.output.strip().splitlines()) == 1, result.output
        assert "connect nrf52840dk by its USB debug port" in result.output


def test_flash_refuses_emulated_boards_and_other_boards(real_firmware, trained_mcu, mnist_dir, tmp_path):
    out = real_firmware["nrf52840dk"][0]
    result = CliRunner().invoke(main, ["flash", str(out), "--board", "nucleo-f411re", "--dry-run"])
    assert result.exit_code == 1 and "was built for nrf52840dk, not nucleo-f411re" in result.output
    emulated = tmp_path / "emu"
    CliRunner().invoke(main, ["firmware", str(trained_mcu["mcu_m0"]), "--board", "mps2-an385", "--out", str(emulated),
                              "--data-dir", str(mnist_dir)])
    result = CliRunner().invoke(main, ["flash", str(emulated), "--dry-run"])
    assert result.exit_code == 1 and "mps2-an385 is emulated; run it with `irnet-edge run" in result.output


def test_rp2040_image_has_a_valid_boot_loader_and_uf2(real_firmware):
    import runpy
    import struct

    out = real_firmware["rpi-pico"][0]
    tools = runpy.run_path(str(out / "rp2040_image.py"))
    assert tools["crc32_mpeg2"](b"123456789") == 0x0376E6E7  # the CRC-32/MPEG-2 check value
    image = (out / "app.bin").read_bytes()
    assert struct.unpack("<I", image[252:256])[0] == tools["crc32_mpeg2"](image[:252])
    stack, reset = struct.unpack("<II", image[256:264])
    assert stack == 0x20040000 and 0x10000100 < reset < 0x10000000 + len(image) and reset & 1
    uf2 = (out / "app.uf2").read_bytes()
    assert len(uf2) == 512 * -(-len(image) // 256)
    magic0, magic1, flags, address, size, number, total, family = struct.unpack("<8I", uf2[:32])
    assert (magic0, magic1, flags, address, size, family) == (0x0A324655, 0x9E5D5157, 0x2000, 0x10000000, 256,
                                                               0xE48BFF56)
    assert uf2[32:32 + 256] == image[:256] and struct.unpack("<I", uf2[508:512])[0] == 0x0AB16F30


def test_a_firmware_the_linker_cannot_place_is_one_error_line(real_firmware, tmp_path):
    """Where the fit check's estimate was short, the linker's overflow comes back as one line with its numbers,
    not as the build log."""
    import re
    import shutil

    tree = tmp_path / "fw"
    shutil.copytree(real_firmware["nucleo-f446re"][0], tree)
    for built in (*tree.glob("*.o"), tree / "app.elf"):
        built.unlink(missing_ok=True)
    script = tree / "linker.ld"
    script.write_text(re.sub(r"(FLASH \(rx\) : ORIGIN = \w+, LENGTH = )\d+", r"\g<1>65536", script.read_text()))
    with pytest.raises(IrnetEdgeError) as failure:
        qemu.build_firmware(tree)
    message = str(failure.value)
    assert "\n" not in message and re.search(r"FLASH region overflowed by [\d,]+ bytes", message), message
