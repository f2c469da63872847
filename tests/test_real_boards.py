"""Real boards (issue 14): their firmware run on an emulator of their chip (the Nucleo STM32F4 boards on QEMU's
netduinoplus2, an STM32F405) over the console UART, verify bit for bit over that UART, and the full-speed clock
set-up: its register programming checked against a model of the chips' clock registers (happy path and every
bounded wait timing out), and its fallback on the emulator, which does not model the STM32 clock tree."""
import dataclasses
import json
import re
import subprocess

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from irnet_edge.api import convert
from irnet_edge.cli import main
from irnet_edge.codegen.firmware import board_names, check_clock, check_emulated_by, load_board, load_cpu, runs_on
from irnet_edge.errors import IrnetEdgeError

REAL = [b for b in board_names() if not load_board(b).emulator]
NUCLEO = ["nucleo-f446re", "nucleo-f411re"]
FELL_BACK = "clock: 16000000 Hz (reset clock, 16 MHz HSI; fell back: PLLRDY not set after 200000 polls)"
FULL = {"nucleo-f446re": "clock: 180000000 Hz (PLL from the 16 MHz HSI)",
        "nucleo-f411re": "clock: 100000000 Hz (PLL from the 16 MHz HSI)"}


def test_board_presets_say_how_they_run():
    assert set(REAL) >= {"nucleo-f446re", "nucleo-f411re", "nrf52840dk", "rpi-pico"}
    assert {b: runs_on(load_board(b)) for b in REAL} == {"nucleo-f446re": "netduinoplus2",
                                                         "nucleo-f411re": "netduinoplus2",
                                                         "nrf52840dk": None, "rpi-pico": None}
    assert {b: load_board(b).clock_hz for b in REAL} == {"nucleo-f446re": 180_000_000, "nucleo-f411re": 100_000_000,
                                                         "nrf52840dk": 64_000_000, "rpi-pico": 125_000_000}


def test_clock_and_memory_presets_are_checked():
    f446 = load_board("nucleo-f446re")

    def with_clock(**changes):
        return dataclasses.replace(f446, clock={**f446.clock, **changes})

    with pytest.raises(IrnetEdgeError, match="APB1 90,000,000 Hz is above 45,000,000"):
        check_clock(with_clock(apb1_div=2))
    with pytest.raises(IrnetEdgeError, match="4 flash wait states are too few for 180,000,000 Hz"):
        check_clock(with_clock(flash_latency=4))
    with pytest.raises(IrnetEdgeError, match="above 168,000,000 Hz the chip needs over-drive"):
        check_clock(with_clock(over_drive=False))
    with pytest.raises(IrnetEdgeError, match="the PLL makes 168,000,000 Hz, clock_hz says 180,000,000"):
        check_clock(with_clock(pll={**f446.clock["pll"], "n": 168}))
    pico = load_board("rpi-pico")
    with pytest.raises(IrnetEdgeError, match="VCO"):
        check_clock(dataclasses.replace(pico, clock={**pico.clock, "pll": {**pico.clock["pll"], "fbdiv": 140}}))
    with pytest.raises(IrnetEdgeError, match="its ram does not fit in the ram of netduinoplus2"):
        check_emulated_by(dataclasses.replace(f446, ram={"origin": 0x20000000, "length": 256 * 1024}))


@pytest.fixture(scope="module")
def rendered(trained_mcu, mnist_dir):
    """board -> mode -> the rendered project files (no build), of the trained mcu_m4."""
    from irnet_edge.codegen.firmware import render_firmware

    model = convert(trained_mcu["mcu_m4"])
    pixels, labels = model.test_inputs(2, mnist_dir)
    return {board: {mode: render_firmware(model.graph, "mcu_m4", model.checkpoint.sha256, load_board(board), None,
                                          pixels, labels, "mnist", clock=mode) for mode in ("full", "reset")}
            for board in REAL}


@pytest.mark.parametrize("board", REAL)
def test_clock_code_compiles_for_every_real_board_with_werror(board, rendered, tmp_path):
    flags = load_cpu(load_board(board).cpu)["flags"]
    for mode, files in rendered[board].items():
        folder = tmp_path / mode
        folder.mkdir()
        for name in ("board.h", "clock.c", "console.c"):
            (folder / name).write_text(files[name])
        for source in ("clock.c", "console.c"):
            result = subprocess.run(["arm-none-eabi-gcc", *flags, "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                                     "-pedantic", "-c", "-o", str(folder / f"{source}.o"), str(folder / source)],
                                    capture_output=True, text=True)
            assert result.returncode == 0, f"{board} {mode} {source}:\n{result.stderr}"
        assert ("PLL" in files["clock.c"].split("#include")[1]) == (mode == "full" and board != "nrf52840dk")


# A model of the clock registers the set-up touches, for a host build of clock.c: each access first updates the
# ready bits from what was written (a ready bit named by STUCK never comes), the RP2040's atomic set/clear
# aliases are applied to their register, and main prints the registers and the clock variables afterwards.
REGISTER_MODEL = r"""
#include <stdio.h>
#include <string.h>
#include "board.h"

volatile uint32_t *fake_reg(uint32_t address);

struct reg { uint32_t address, value; };
static struct reg regs[64];
static int used;
static uint32_t alias_value, alias_target, alias_mode;

static uint32_t *at(uint32_t address)
{
    int i;
    for (i = 0; i < used; ++i) {
        if (regs[i].address == address) {
            return &regs[i].value;
        }
    }
    regs[used].address = address;
    regs[used].value = 0;
    return &regs[used++].value;
}

static void set(uint32_t address, uint32_t mask, int on)
{
    *at(address) = on ? *at(address) | mask : *at(address) & ~mask;
}

static int stuck(const char *bit) { return strcmp(STUCK, bit) == 0; }

static void update(void)
{
    if (alias_mode != 0) {
        set(alias_target, alias_value, alias_mode == 2);
        alias_mode = 0;
    }
#if defined(CHIP_STM32F4)
    {
        const uint32_t pllon = *at(0x40023800u) & (1u << 24), pwr = *at(0x40007000u), sw = *at(0x40023808u) & 3u;
        set(0x40023800u, 1u << 25, pllon && !stuck("PLLRDY"));
        set(0x40007004u, 1u << 16, (pwr & (1u << 16)) && !stuck("ODRDY"));
        set(0x40007004u, 1u << 17, (pwr & (1u << 17)) && !stuck("ODSWRDY"));
        set(0x40007004u, 1u << 14, pllon && !stuck("VOSRDY"));
        if (stuck("FLASH_ACR LATENCY")) {
            set(0x40023C00u, 0xFu, 0);
        }
        *at(0x40023808u) = (*at(0x40023808u) & ~(3u << 2)) | ((stuck("SWS = PLL") ? 0u : sw) << 2);
    }
#elif defined(CHIP_RP2040)
    set(0x40024004u, 1u << 31, (*at(0x40024000u) >> 12) == 0xFABu && !stuck("XOSC STABLE"));
    if (!stuck("CLK_REF_SELECTED = XOSC")) {
        *at(0x40008038u) = 1u << (*at(0x40008030u) & 3u);
    }
    *at(0x4000C008u) = ~*at(0x4000C000u);
    set(0x40028000u, 1u << 31, (*at(0x40028004u) & 0x21u) == 0u && !stuck("PLL_SYS LOCK"));
    if (!stuck("CLK_SYS_SELECTED = PLL")) {
        *at(0x40008044u) = 1u << (*at(0x4000803Cu) & 1u);
    }
#elif defined(CHIP_NRF52)
    if (*at(0x40000000u) != 0u) {
        *at(0x40000000u) = 0u; /* a task register reads 0 */
        *at(0x40000100u) = stuck("EVENTS_HFCLKSTARTED") ? 0u : 1u;
    }
#endif
}

volatile uint32_t *fake_reg(uint32_t address)
{
    update();
#if defined(CHIP_RP2040)
    if ((address >> 12 & 3u) >= 2u) { /* SET and CLEAR aliases: applied at the next access */
        alias_target = address & ~0x3000u;
        alias_mode = address >> 12 & 3u;
        alias_value = 0u;
        return &alias_value;
    }
#endif
    return at(address);
}

int main(void)
{
    int i;
    RESET_VALUES
    board_clock_init();
    update();
    for (i = 0; i < used; ++i) {
        printf("%08x %08x\n", (unsigned)regs[i].address, (unsigned)regs[i].value);
    }
    printf("hz %u\nuart %u\nsource %s\nfailure %s\n", (unsigned)board_clock_hz, (unsigned)board_uart_clock_hz,
           board_clock_source, board_clock_failure ? board_clock_failure : "-");
    return 0;
}
"""

RESET_VALUES = {
    "nucleo-f446re": {0x40023800: 0x83, 0x40023804: 0x24003010, 0x40023808: 0, 0x40023840: 0, 0x40007000: 0xC000,
                      0x40007004: 0, 0x40023C00: 0},
    "nucleo-f411re": {0x40023800: 0x83, 0x40023804: 0x24003010, 0x40023808: 0, 0x40023840: 0, 0x40007000: 0x8000,
                      0x40007004: 0, 0x40023C00: 0},
    "rpi-pico": {0x40024000: 0, 0x40008030: 0, 0x40008038: 1, 0x4000803C: 0, 0x40008044: 1, 0x4000C000: 0x01FFFFFF,
                 0x40028000: 1, 0x40028004: 0x2D, 0x40028008: 0, 0x4002800C: 0x77000},
    "nrf52840dk": {0x40000000: 0, 0x40000004: 0, 0x40000100: 0},
}
CHIP = {"nucleo-f446re": "STM32F4", "nucleo-f411re": "STM32F4", "rpi-pico": "RP2040", "nrf52840dk": "NRF52"}
STUCK = {"nucleo-f446re": ["PLLRDY", "ODRDY", "ODSWRDY", "VOSRDY", "FLASH_ACR LATENCY", "SWS = PLL"],
         "nucleo-f411re": ["PLLRDY", "VOSRDY", "FLASH_ACR LATENCY", "SWS = PLL"],
         "rpi-pico": ["XOSC STABLE", "CLK_REF_SELECTED = XOSC", "PLL_SYS LOCK", "CLK_SYS_SELECTED = PLL"],
         "nrf52840dk": ["EVENTS_HFCLKSTARTED"]}
CASES = [(board, stuck) for board in REAL for stuck in ["", *STUCK[board]]]


def run_clock_model(files: dict, board: str, stuck: str, folder) -> tuple[dict, dict]:
    folder.mkdir()
    for name in ("board.h", "clock.c"):
        (folder / name).write_text(files[name])
    resets = " ".join(f"*at({a:#x}u) = {v:#x}u;" for a, v in RESET_VALUES[board].items())
    (folder / "model.c").write_text(REGISTER_MODEL.replace("RESET_VALUES", resets))
    (folder / "fake.h").write_text("#include <stdint.h>\nvolatile uint32_t *fake_reg(uint32_t address);\n")
    result = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", f"-DCHIP_{CHIP[board]}",
                             f'-DSTUCK="{stuck}"', "-DCLOCK_REG(a)=(*fake_reg(a))", "-include", str(folder / "fake.h"),
                             "-I", str(folder), "-o", str(folder / "model"), str(folder / "model.c"),
                             str(folder / "clock.c")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = subprocess.run([str(folder / "model")], capture_output=True, text=True, check=True).stdout.splitlines()
    regs = {int(a, 16): int(v, 16) for a, v in (line.split() for line in lines if re.match("^[0-9a-f]{8} ", line))}
    state = dict(line.split(" ", 1) for line in lines if not re.match("^[0-9a-f]{8} ", line))
    return regs, state


def field(value: int, low: int, bits: int) -> int:
    return value >> low & ((1 << bits) - 1)


@pytest.mark.parametrize("board,stuck", CASES, ids=[f"{b}-{s or 'ok'}".replace(" ", "_") for b, s in CASES])
def test_clock_setup_against_a_model_of_the_clock_registers(board, stuck, rendered, tmp_path):
    regs, state = run_clock_model(rendered[board]["full"], board, stuck, tmp_path / "model")
    spec = load_board(board)
    hz, uart = int(state["hz"]), int(state["uart"])
    assert state["failure"] == (stuck or "-")
    if board.startswith("nucleo"):
        c = spec.clock
        rcc_cr, pllcfgr, cfgr, acr, pwr = (regs[a] for a in (0x40023800, 0x40023804, 0x40023808, 0x40023C00,
                                                              0x40007000))
        assert (field(pllcfgr, 0, 6), field(pllcfgr, 6, 9), 2 * field(pllcfgr, 16, 2) + 2, field(pllcfgr, 22, 1),
                field(pllcfgr, 24, 4)) == (c["pll"]["m"], c["pll"]["n"], c["pll"]["p"], 0, c["pll"]["q"])
        assert field(pllcfgr, 28, 3) == 2  # PLLR (F446) / reserved bits (F411) kept at their reset value
        assert field(pwr, 14, 2) == 3 and regs[0x40023840] & 1 << 28  # voltage scale 1, PWR clocked
        if not stuck:
            assert (hz, uart) == (spec.clock_hz, spec.clock_hz // c["apb1_div"])
            assert uart <= c["limits"]["apb1_hz"] and hz // c["apb2_div"] <= c["limits"]["apb2_hz"]
            assert field(cfgr, 0, 2) == 2 and field(cfgr, 2, 2) == 2  # SYSCLK = PLL, switched
            ppre = {1: 0, 2: 4, 4: 5, 8: 6, 16: 7}
            assert (field(cfgr, 4, 4), field(cfgr, 10, 3), field(cfgr, 13, 3)) == (0, ppre[c["apb1_div"]],
                                                                                    ppre[c["apb2_div"]])
            assert acr == c["flash_latency"] | 0x700  # wait states, prefetch, I- and D-cache
            assert rcc_cr & 1 << 24 and field(pwr, 16, 2) == (3 if c["over_drive"] else 0)
            assert state["source"] == "PLL from the 16 MHz HSI"
        else:  # back on the reset clock: HSI, prescalers /1, PLL and over-drive off, 0 wait states
            assert (hz, uart) == (16_000_000, 16_000_000)
            assert field(cfgr, 0, 2) == 0 and field(cfgr, 4, 12) == 0 and not rcc_cr & 1 << 24
            assert field(acr, 0, 4) == 0 and field(pwr, 16, 2) == 0
            assert state["source"] == "reset clock, 16 MHz HSI"
        brr = (uart + 57600) // 115200  # console_stm32f4_usart2.c.j2
        assert abs(uart / brr - 115200) / 115200 < 0.005
    elif board == "rpi-pico":
        pll_pwr, clk_sys = regs[0x40028004], regs[0x4000803C]
        expected = {"": 125_000_000, "PLL_SYS LOCK": 12_000_000, "CLK_SYS_SELECTED = PLL": 12_000_000,
                    "XOSC STABLE": 6_500_000, "CLK_REF_SELECTED = XOSC": 6_500_000}[stuck]
        assert hz == uart == expected
        if not stuck:
            assert regs[0x40028000] & 0x3F == 1 and regs[0x40028008] == 125
            assert (field(regs[0x4002800C], 16, 3), field(regs[0x4002800C], 12, 3)) == (6, 2)
            assert pll_pwr & 0x29 == 0 and clk_sys == 1 and regs[0x40008030] == 2
            div = 8 * uart // 115200  # console_rp2040_uart0.c.j2, as the Pico SDK
            assert (div >> 7, ((div & 0x7F) + 1) // 2) == (67, 52)
        else:
            assert clk_sys == 0
        if stuck in ("PLL_SYS LOCK", "CLK_SYS_SELECTED = PLL"):
            assert pll_pwr & 0x21 == 0x21  # the PLL powered down again
    else:
        assert hz == uart == 64_000_000
        assert state["source"] == ("64 MHz from the 32 MHz crystal (HFXO)" if not stuck
                                   else "64 MHz HFINT (internal RC oscillator)")
        assert regs[0x40000004] == (1 if stuck else 0)  # a crystal that never started is stopped again


@pytest.fixture(scope="module")
def nucleo_demos(trained_mcu, mnist_dir, tmp_path_factory):
    """board -> (project, `irnet-edge run` output) of the trained mcu_m4's demo firmware on netduinoplus2."""
    runs = {}
    for board in NUCLEO:
        out = tmp_path_factory.mktemp("fw") / board
        result = CliRunner().invoke(main, ["firmware", str(trained_mcu["mcu_m4"]), "--board", board, "--out",
                                           str(out), "--data-dir", str(mnist_dir)])
        assert result.exit_code == 0, result.output
        run = CliRunner().invoke(main, ["run", str(out), "--timeout", "60"])
        assert run.exit_code == 0, run.output
        assert f"running {board}'s firmware on QEMU netduinoplus2 (an STM32F405" in run.stderr
        runs[board] = out, run.stdout
    return runs


@pytest.mark.parametrize("board", NUCLEO)
def test_nucleo_demo_runs_on_netduinoplus2_with_the_reference_classes(board, nucleo_demos, trained_mcu, mnist_dir):
    out, output = nucleo_demos[board]
    lines = output.splitlines()
    assert lines[0] == f"{board} (cortex-m4): mcu_m4"
    # QEMU 7.2 has no model of the STM32F405's RCC (reads give 0), so the bounded PLLRDY wait times out and the
    # firmware falls back to the reset clock; an emulator that models the clock tree would show the full clock
    assert lines[1] in (FELL_BACK, FULL[board])
    assert lines[2] == "selftest: passed, 10 logits bit-exact" and lines[-1] == "done"
    model = convert(trained_mcu["mcu_m4"])
    pixels, labels = model.test_inputs(8, mnist_dir)
    expected = model.reference(pixels).argmax(axis=1)
    got = [tuple(map(int, m.groups())) for m in re.finditer(r"^sample (\d+): class (\d+) \(label (\d+)\)$", output,
                                                             re.MULTILINE)]
    assert got == [(i, int(expected[i]), int(labels[i])) for i in range(8)]
    info = json.loads((out / "firmware.json").read_text())
    assert info["clock"] == {"mode": "full", "hz": load_board(board).clock_hz, "reset_hz": 16_000_000}
    assert info["emulated_by"]["machine"] == "netduinoplus2"


def test_bounded_clock_wait_falls_back_in_the_emulator(nucleo_demos):
    """QEMU 7.2's netduinoplus2 leaves the RCC unimplemented: the firmware must not hang on PLLRDY."""
    for board in NUCLEO:
        assert FELL_BACK in nucleo_demos[board][1].splitlines()


def test_run_counts_instructions_at_the_emulators_clock(nucleo_demos):
    out, _ = nucleo_demos["nucleo-f446re"]
    result = CliRunner().invoke(main, ["run", str(out), "--count-instructions"])
    assert result.exit_code == 0, result.output
    ticks = int(re.search(r"SysTick cycles per inference: (\d+)", result.output).group(1))
    count = int(re.search(r"instructions per inference: ([\d,]+)", result.output).group(1).replace(",", ""))
    assert count == round(ticks * 1e9 / 168_000_000)  # SysTick runs at netduinoplus2's 168 MHz there
    assert 3_000_000 < count < 8_000_000  # about 5 M instructions for mcu_m4 on an M4 (README)


def test_clock_reset_keeps_the_reset_clock(trained_mcu, mnist_dir, tmp_path):
    out = tmp_path / "fw"
    result = CliRunner().invoke(main, ["firmware", str(trained_mcu["mcu_m4"]), "--board", "nucleo-f411re", "--out",
                                       str(out), "--samples", "2", "--data-dir", str(mnist_dir), "--clock", "reset"])
    assert result.exit_code == 0, result.output
    assert "RCC_PLLCFGR" not in (out / "clock.c").read_text()
    assert json.loads((out / "firmware.json").read_text())["clock"]["mode"] == "reset"
    result = CliRunner().invoke(main, ["run", str(out), "--timeout", "60"])
    assert result.exit_code == 0, result.output
    assert "clock: 16000000 Hz (reset clock, 16 MHz HSI (--clock reset))" in result.output.splitlines()
    assert "sample 1: class" in result.output


def test_verify_on_a_nucleo_board_is_bit_exact_over_the_uart(trained_mcu, mnist_dir):
    result = CliRunner().invoke(main, ["verify", str(trained_mcu["mcu_m4"]), "--target", "cortex-m", "--board",
                                       "nucleo-f446re", "--samples", "20", "--agreement-samples", "0",
                                       "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "20/20 bit-exact on nucleo-f446re (cortex-m4, QEMU netduinoplus2, an STM32F405)" in result.output


def test_logits_are_read_back_bit_for_bit_from_hex(trained_mcu, mnist_dir, monkeypatch):
    """The UART path compares what the firmware printed, not something that always agrees: a changed reference
    logit is reported as a mismatch."""
    from irnet_edge.verify import qemu

    model = convert(trained_mcu["mcu_m4"])
    pixels, labels = model.test_inputs(3, mnist_dir)
    got = qemu._logits_over_uart(model.graph, "mcu_m4", model.checkpoint.sha256, torch.from_numpy(pixels),
                                 load_board("nucleo-f411re"), None, "mnist", labels, "gcc", "")
    expected = model.reference(pixels)
    assert got.view(np.uint32).tolist() == expected.reshape(-1).view(np.uint32).tolist()
    expected[1, 4] = np.nextafter(expected[1, 4], np.float32(np.inf))
    result = qemu.VerifyResult.compare(got, expected)
    assert (result.exact, result.first_bad) == (2, 1)


def test_boards_without_an_emulator_are_refused_with_the_way_out(trained_mcu, mnist_dir, tmp_path):
    project = tmp_path / "pico"
    project.mkdir()
    (project / "firmware.json").write_text(json.dumps({"board": "rpi-pico", "emulator": None}))
    result = CliRunner().invoke(main, ["run", str(project)])
    assert result.exit_code == 1
    assert "rpi-pico is a real board that no emulator here runs; flash it with `irnet-edge flash" in result.output
    result = CliRunner().invoke(main, ["verify", str(trained_mcu["mcu_m4"]), "--target", "cortex-m", "--board",
                                       "nrf52840dk", "--samples", "2", "--agreement-samples", "0",
                                       "--data-dir", str(mnist_dir)])
    assert result.exit_code == 1 and "nrf52840dk is a real board that no emulator here runs" in result.output
    result = CliRunner().invoke(main, ["verify", str(trained_mcu["mcu_m4"]), "--target", "cortex-m"])
    assert "one of the boards QEMU runs" in result.output and "nucleo-f446re" in result.output
    # bench stays on the emulated boards: a chip's emulator runs at its own clock, not the board's
    result = CliRunner().invoke(main, ["bench", str(trained_mcu["mcu_m4"]), "--target", "cortex-m", "--board",
                                       "nucleo-f446re"])
    assert result.exit_code == 1 and "nucleo-f446re is a real board; bench runs on an emulated one" in result.output


def test_a_firmware_that_never_ends_is_stopped_after_the_timeout(tmp_path):
    """run_uart waits for the demo's final line for a bounded time only."""
    from irnet_edge.verify import qemu

    (tmp_path / "hang.c").write_text(
        "#include <stdint.h>\n"
        "void reset(void);\n"
        "void reset(void) { *(volatile uint32_t *)0x40004404u = 'x'; for (;;) { } }\n"
        "__attribute__((section(\".isr_vector\"), used)) const uintptr_t vectors[2] = {0x20001000u, "
        "(uintptr_t)reset};\n")
    (tmp_path / "hang.ld").write_text("MEMORY { FLASH (rx) : ORIGIN = 0x08000000, LENGTH = 64K }\n"
                                      "SECTIONS { .text : { KEEP(*(.isr_vector)) *(.text*) } > FLASH }\n")
    subprocess.run(["arm-none-eabi-gcc", "-mcpu=cortex-m4", "-mthumb", "-nostdlib", "-T", str(tmp_path / "hang.ld"),
                    "-o", str(tmp_path / "hang.elf"), str(tmp_path / "hang.c")], check=True)
    with pytest.raises(IrnetEdgeError, match=r"printed no final line \(done or failed\) under QEMU netduinoplus2: "
                                             r"nothing more within 2 s. Its output:\nx"):
        qemu.run_uart("netduinoplus2", 1, tmp_path / "hang.elf", timeout=2)


def test_verify_over_the_uart_splits_inputs_into_images_that_fit_the_flash(trained_mcu, mnist_dir):
    """As many inputs as one image holds (they are embedded), plus one: two builds, each linked within 512 KB."""
    from irnet_edge.verify import qemu

    model, board = convert(trained_mcu["mcu_m4"]), load_board("nucleo-f411re")
    chunk = qemu.uart_chunk(model.graph, board)
    assert 400 < chunk < 1000
    pixels, labels = model.test_inputs(chunk + 1, mnist_dir)
    result = qemu.verify(model.graph, "mcu_m4", model.checkpoint.sha256, torch.from_numpy(pixels), board, None,
                         "mnist", labels)
    assert result.exact == result.samples == chunk + 1
