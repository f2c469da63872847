"""Fused convolution outputs (irnet_fusion: residual add in place or not, sign output, tiling max-pool) against the
unfused sequence of portable kernels (conv -> irnet_add -> irnet_sign_pack; conv -> irnet_maxpool_f32 /
irnet_maxpool_bits), and float convolutions over uint8 pixels with the input normalisation fused (irnet_conv_f32_u8,
bands of any number of rows, around each kernel under test) against the normalised map's, bit for bit: the portable
kernels on the host under gcc and clang, and irnet_bconv_cm / irnet_conv_f32_cm on emulated Cortex-M cores (v6-M, the
DSP assembly, Helium) in firmware built from the project's own board files. One C driver loops over the whole grid
(channels 1 to 65 in and out, kernels 1, 3, 5, strides 1 and 2, zero and +1 padding, pools 2 and 3, three activations,
+-0 and ties) and the zoo models' layers."""
import shutil
import subprocess

import pytest

from irnet_edge.codegen.firmware import clock_of, load_board, load_cpu
from irnet_edge.codegen.render import RUNTIME_DIR, render_dir
from irnet_edge.resources import asset_dir
from irnet_edge.verify import qemu

DRIVER = r"""
/* Fused convolutions (irnet_fusion) against the unfused sequence of portable kernels, bit for bit. FUSED_BCONV and
 * FUSED_CONV name the kernels under test; with CM_WEIGHTS FUSED_CONV takes [k][k][cin][cout] weights. BUDGET caps
 * the multiply-adds of one float convolution. */
#include "irnet_runtime.h"

#include <string.h>

#if defined(HOST)
#include <stdio.h>
static void say(const char *text)
{
    fputs(text, stdout);
}
#else
#include "board.h"
static void say(const char *text)
{
    board_puts(text);
}

/* startup.c's vector table names it; no timer here */
void SysTick_Handler(void);
void SysTick_Handler(void)
{
}
#endif

#define MAXF 10000 /* floats of a map */
#define MAXW 12000 /* float weights */

#define NORM_CHANNELS 65 /* inputs of up to this many channels are also tried as uint8 pixels */
static float in_f[MAXF], wf[MAXW], wf_t[MAXW], mult[320], add[320], res[MAXF], norm[NORM_CHANNELS * 256];
static float band[MAXF];
static uint8_t pixels_u8[MAXF];
static float ref_f[MAXF], got_f[MAXF], tmp_f[MAXF];
static uint32_t in_b[MAXF / 8], wb[8192], ref_b[MAXF / 8], got_b[MAXF / 8], tmp_b[MAXF / 8];
static uint32_t ref_s[MAXF / 8], got_s[MAXF / 8];
static int32_t thr[320];
static uint8_t pmin[320], zeros8[320], dot_min[320];
static float add_dot[320];
static uint32_t por[10], zeros32[10];
static uint32_t seed = 12345u;
static long cases, failures;

static void say_num(long v)
{
    char buf[24];
    int i = 22;
    const int neg = v < 0;
    buf[23] = 0;
    if (neg) {
        v = -v;
    }
    do {
        buf[i--] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    if (neg) {
        buf[i--] = '-';
    }
    say(buf + i + 1);
}

static uint32_t rnd(void)
{
    seed = seed * 1664525u + 1013904223u;
    return seed >> 8;
}

/* small values: +-0, ties (quarters) and values that round */
static float value(void)
{
    const uint32_t r = rnd() % 16;
    if (r == 0) {
        return 0.0f;
    }
    if (r == 1) {
        return -0.0f;
    }
    if (r < 9) {
        return (float)((int)(rnd() % 9) - 4) * 0.25f;
    }
    return (float)((int)(rnd() % 2001) - 1000) / 300.0f;
}

/* random bits with the unused bits of each pixel's last word 0 */
static void bits_fill(uint32_t *dst, int pixels, int channels)
{
    const int words = (channels + 31) / 32;
    int p, i;
    for (p = 0; p < pixels; ++p) {
        for (i = 0; i < words; ++i) {
            uint32_t v = rnd() ^ rnd() << 16;
            if (i == words - 1 && (channels & 31) != 0) {
                v &= (1u << (channels & 31)) - 1u;
            }
            dst[p * words + i] = v;
        }
    }
}

static void report(const char *what, int kind, int cin, int cout, int k, int stride, int pad, int pad_one, int h,
                   int w, int mode, int act)
{
    const int v[11] = {kind, cin, cout, k, stride, pad, pad_one, h, w, mode, act};
    static const char *const names[11] = {" kind=", " cin=", " cout=", " k=", " stride=", " pad=", " pad_one=",
                                          " h=", " w=", " mode=", " act="};
    int i;
    ++failures;
    if (failures > 20) {
        return;
    }
    say("FAIL ");
    say(what);
    for (i = 0; i < 11; ++i) {
        say(names[i]);
        say_num(v[i]);
    }
    say("\n");
}

/* The fused call's outputs as garbage, and its float output as the residual where it is added in place (modes 2
 * and 4): n floats */
static void fresh_outputs(int mode, int n)
{
    memset(got_f, 0xA5, sizeof got_f);
    memset(got_b, 0xA5, sizeof got_b);
    memset(got_s, 0x5A, sizeof got_s);
    if (mode == 2 || mode == 4) {
        memcpy(got_f, res, (size_t)n * sizeof(float));
    }
}

/* mode: 0 nothing fused, 1 residual, 2 residual in place, 3 residual + sign, 4 residual in place + sign, 5 sign,
 * 6 pool 2, 7 pool 3; kind: 0 bconv float output, 1 bconv bits, 2 conv_f32 float, 3 conv_f32 bits. The inputs
 * and weights are those of the last fill (new ones each configuration). */
static void run(int kind, int cin, int cout, int k, int stride, int pad, int pad_one, int h, int w, int mode, int act)
{
    const int bits_out = kind == 1 || kind == 3;
    const int pool = mode == 6 ? 2 : mode == 7 ? 3 : 0;
    const int ho_full = (h + 2 * pad - k) / stride + 1, wo_full = (w + 2 * pad - k) / stride + 1;
    const int ho = pool ? ho_full - ho_full % pool : ho_full, wo = pool ? wo_full - wo_full % pool : wo_full;
    const int out_words = (cout + 31) / 32;
    const int pixels = pool ? (ho / pool) * (wo / pool) : ho * wo;
    const int ract = (int)(rnd() % 3);
    const int masked = rnd() % 4 != 0;
    const size_t nf = (size_t)(pixels * cout + 64) * sizeof(float);
    const size_t nb = (size_t)(pixels * out_words + 16) * sizeof(uint32_t);
    irnet_fusion fz;
    irnet_bconv_params bp;
    irnet_conv_f32_params cp;
    irnet_conv_f32_u8_params up;
    int i, variant;
    if (ho < 1 || wo < 1 || (bits_out && mode >= 1 && mode <= 5) || h * w * cin > MAXF || ho * wo * cout > MAXF) {
        return;
    }
    memset(&fz, 0, sizeof fz);
    if (mode >= 1 && mode <= 4) {
        fz.residual = mode == 2 || mode == 4 ? got_f : res;
        fz.residual_act = ract;
    }
    if (mode >= 3 && mode <= 5) {
        fz.sign = got_s;
    }
    if (pool) {
        fz.pool = pool;
        fz.pool_min = masked ? pmin : 0;
        fz.pool_or = masked ? por : 0;
    }
    for (i = 0; i < ho * wo * cout; ++i) {
        res[i] = value();
    }
    memset(ref_f, 0xA5, sizeof ref_f);
    memset(ref_b, 0xA5, sizeof ref_b);
    memset(ref_s, 0x5A, sizeof ref_s);
    fresh_outputs(mode, ho * wo * cout);
    memset(&bp, 0, sizeof bp);
    bp.h = h, bp.w = w, bp.cin = cin, bp.cout = cout, bp.k = k, bp.stride = stride, bp.pad = pad;
    bp.pad_one = pad_one, bp.ho = ho, bp.wo = wo, bp.weight = wb, bp.act = act;
    if (bits_out) {
        bp.threshold = thr;
    } else {
        bp.mult = mult, bp.add = add;
    }
    if (kind == 0 && pool) {
        /* a binary conv with float output pools its dot products: the exporter's pool_min (the channels whose
         * value pool takes the smallest dot) and never a channel with mult +-0 and add -0.0 (it fuses no pool
         * there), both for the reference and the fused call */
        for (i = 0; i < cout; ++i) {
            add_dot[i] = mult[i] == 0.0f && add[i] == 0.0f ? 0.0f : add[i];
            dot_min[i] = (uint8_t)((mult[i] >= 0.0f) == (masked && pmin[i]));
        }
        bp.add = add_dot;
        fz.pool_min = dot_min;
    }
    memset(&cp, 0, sizeof cp);
    cp.h = h, cp.w = w, cp.cin = cin, cp.cout = cout, cp.k = k, cp.stride = stride, cp.pad = pad, cp.ho = ho;
    cp.wo = wo, cp.weight = wf, cp.mult = mult, cp.add = add, cp.act = act;

    /* the unfused sequence of portable kernels */
    if (kind < 2) {
        irnet_bconv(&bp, in_b, bits_out ? tmp_b : 0, bits_out ? 0 : tmp_f);
    } else {
        irnet_conv_f32(&cp, in_f, bits_out ? tmp_b : 0, bits_out ? 0 : tmp_f);
    }
    if (pool && bits_out) {
        irnet_maxpool_bits_params mp;
        mp.w = wo, mp.channels = cout, mp.k = pool, mp.ho = ho / pool, mp.wo = wo / pool;
        mp.or_mask = masked ? por : zeros32;
        irnet_maxpool_bits(&mp, tmp_b, ref_b);
    } else if (pool) {
        irnet_maxpool_f32_params mp;
        mp.w = wo, mp.channels = cout, mp.k = pool, mp.ho = ho / pool, mp.wo = wo / pool;
        mp.min_mask = masked ? pmin : zeros8;
        irnet_maxpool_f32(&mp, tmp_f, ref_f);
    } else if (bits_out) {
        memcpy(ref_b, tmp_b, (size_t)(ho * wo * out_words) * sizeof(uint32_t));
    } else if (mode >= 1 && mode <= 4) {
        irnet_add(tmp_f, res, ho * wo * cout, ract, ref_f);
    } else {
        memcpy(ref_f, tmp_f, (size_t)(ho * wo * cout) * sizeof(float));
    }
    if (fz.sign != 0) {
        irnet_sign_pack(ref_f, ho * wo, cout, ref_s);
    }

    /* the fused call; for float convolutions also over the uint8 pixels, normalisation fused (variant 1), in bands
     * of a random number of rows (a multiple of the pool) */
    for (variant = 0; variant < (kind < 2 || cin > NORM_CHANNELS ? 1 : 2); ++variant) {
        if (variant == 1) {
            const int unit = pool ? pool : 1;
            fresh_outputs(mode, ho * wo * cout);
            memset(&up, 0, sizeof up);
            up.conv = cp;
            up.norm = norm;
            up.rows = unit * (1 + (int)(rnd() % (uint32_t)(ho / unit)));
            up.band = band;
            up.kernel = FUSED_CONV;
        }
        if (kind < 2) {
            bp.fuse = fz;
            FUSED_BCONV(&bp, in_b, bits_out ? got_b : 0, bits_out ? 0 : got_f);
        } else if (variant == 0) {
#if defined(CM_WEIGHTS)
            cp.weight = wf_t;
#endif
            cp.fuse = fz;
            FUSED_CONV(&cp, in_f, bits_out ? got_b : 0, bits_out ? 0 : got_f);
        } else {
            irnet_conv_f32_u8(&up, pixels_u8, bits_out ? got_b : 0, bits_out ? 0 : got_f);
        }
        ++cases;
        if (bits_out ? memcmp(ref_b, got_b, nb) != 0 : memcmp(ref_f, got_f, nf) != 0) {
            report(variant ? "output (uint8 in, normalisation fused)" : "output", kind, cin, cout, k, stride, pad,
                   pad_one, h, w, mode, act);
        } else if (fz.sign != 0 && memcmp(ref_s, got_s, nb) != 0) {
            report(variant ? "sign (uint8 in, normalisation fused)" : "sign", kind, cin, cout, k, stride, pad,
                   pad_one, h, w, mode, act);
        }
    }
}

/* new inputs, weights and output transforms for one configuration */
static void fill(int cin, int cout, int k, int h, int w)
{
    const int words = (cin + 31) / 32;
    int c, i, t;
    for (c = 0; c < cout; ++c) {
        const uint32_t r = rnd() % 8;
        mult[c] = r == 0 ? -0.0f : r == 1 ? 0.0f : r < 4 ? -value() : value();
        add[c] = r < 2 && rnd() % 2 ? -0.0f : value();
        thr[c] = (int32_t)(rnd() % (uint32_t)(2 * k * k * cin + 5)) - k * k * cin - 2;
        pmin[c] = (uint8_t)(rnd() % 3 == 0);
    }
    for (i = 0; i < (cout + 31) / 32; ++i) {
        por[i] = rnd() ^ rnd() << 16;
    }
    /* the float map is the normalisation table's values of random pixels, as irnet_conv_f32_u8 reads them */
    for (i = 0; i < cin * 256 && cin <= NORM_CHANNELS; ++i) {
        norm[i] = value();
    }
    for (i = 0; i < h * w * cin; ++i) {
        pixels_u8[i] = (uint8_t)(rnd() % 256);
        in_f[i] = cin <= NORM_CHANNELS ? norm[(i % cin) * 256 + pixels_u8[i]] : value();
    }
    for (i = 0; i < cout * k * k * cin && i < MAXW; ++i) {
        wf[i] = value();
    }
    for (c = 0; c < cout && cout * k * k * cin <= MAXW; ++c) {
        for (t = 0; t < k * k; ++t) {
            for (i = 0; i < cin; ++i) {
                wf_t[(t * cin + i) * cout + c] = wf[(c * k * k + t) * cin + i];
            }
        }
    }
    bits_fill(in_b, h * w, cin);
    for (c = 0; c < cout; ++c) {
        bits_fill(wb + c * k * k * words, k * k, cin);
    }
}

/* every kind and mode of one configuration (float convolutions only within BUDGET multiply-adds) */
static void all(int cin, int cout, int k, int stride, int pad, int pad_one, int h, int w, int act)
{
    int kind, mode;
    fill(cin, cout, k, h, w);
    for (kind = 0; kind < 4; ++kind) {
        const int ho = (h + 2 * pad - k) / stride + 1, wo = (w + 2 * pad - k) / stride + 1;
        if (kind >= 2 && ((long)ho * wo * k * k * cin * cout > BUDGET || k * k * cin * cout > MAXW)) {
            continue;
        }
        for (mode = 0; mode < 8; ++mode) {
            run(kind, cin, cout, k, stride, pad, pad_one, h, w, mode, act);
        }
    }
}

int main(void)
{
    static const int chans[8] = {1, 3, 16, 31, 32, 33, 64, 65};
    int a, b, k, stride, i;
    for (a = 0; a < 8; ++a) {
        for (b = 0; b < 8; ++b) {
            for (k = 1; k <= 5; k += 2) {
                for (stride = 1; stride <= 2; ++stride) {
                    const int pad = rnd() % 3 != 0 ? k / 2 : 0;
                    int h = k + (int)(rnd() % 7), w = k + (int)(rnd() % 9);
                    if (k * k * chans[a] * chans[b] > 8000) { /* keep the float convolutions within BUDGET */
                        h = k + (int)(rnd() % 3), w = k + (int)(rnd() % 4);
                    }
                    all(chans[a], chans[b], k, stride, pad, (int)(rnd() % 2), h, w, (int)(rnd() % 3));
                }
            }
        }
    }
    /* the layers of the zoo models, which have fast fused paths, and wide maps (several strips of the 3x3 kernel
     * for few input channels) */
    for (i = 0; i < 3; ++i) {
        static const int cins[3] = {16, 32, 64};
        for (stride = 1; stride <= 2; ++stride) {
            all(cins[i], cins[i], 3, stride, 1, 0, 12, 11, (int)(rnd() % 3));
            all(cins[i], 2 * cins[i], 3, stride, 1, 1, 8, 9, (int)(rnd() % 3));
        }
    }
    all(16, 16, 3, 1, 1, 0, 6, 40, 0);
    all(16, 33, 3, 2, 1, 0, 5, 41, 1);
    all(3, 16, 3, 1, 1, 0, 16, 16, 0);
    all(1, 32, 3, 1, 0, 0, 14, 14, 0);
    all(1, 32, 3, 1, 1, 0, 15, 14, 2);
    all(3, 32, 3, 2, 1, 0, 9, 15, 1); /* rows of windows in one call of the float assembly, stride 2 */
    all(128, 10, 3, 1, 0, 0, 3, 3, 0); /* the mcu classifier: a block of eight channels, two left */
    all(128, 128, 3, 1, 1, 0, 7, 7, 1);
    /* maps one and two pixels wide, and padding wider than k / 2: a window row of one tap in the border paths */
    all(32, 64, 3, 1, 1, 0, 7, 1, 0);
    all(64, 64, 3, 1, 1, 1, 6, 2, 1);
    all(32, 32, 3, 1, 2, 0, 5, 6, 2);
    all(16, 16, 3, 1, 2, 1, 6, 5, 0);
    all(64, 33, 3, 2, 2, 0, 5, 7, 1);
    /* padding as wide as the kernel or wider: rows and columns of windows wholly in the padding (bands of such
     * rows read no row of the map) */
    all(3, 16, 1, 1, 1, 0, 5, 6, 0);
    all(1, 8, 3, 2, 3, 0, 6, 7, 1);
    all(32, 32, 1, 1, 2, 0, 5, 6, 2);
    all(16, 16, 3, 1, 4, 1, 6, 5, 0);
    all(64, 32, 3, 1, 3, 0, 4, 4, 1);
    /* bits output over more than 128 channels (beyond the counters' preset path) */
    all(64, 160, 3, 1, 1, 0, 4, 5, 0);
    /* more than 256 output channels: the optimised kernels pool such bits a chunk at a time */
    all(1, 288, 3, 1, 1, 0, 4, 4, 0);
    all(32, 288, 3, 1, 1, 1, 4, 5, 2);
    say("cases ");
    say_num(cases);
    say(" failures ");
    say_num(failures);
    say("\n");
    return failures != 0 || cases < 1000;
}
"""

HOST_FLAGS = ["-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off"]


def check(output: str, returncode: int) -> None:
    assert returncode == 0 and " failures 0" in output, output[-3000:]


@pytest.mark.parametrize("cc", ["gcc", "clang"])
def test_portable_fused_kernels_match_the_unfused_sequence(cc, tmp_path):
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} is not installed")
    (tmp_path / "driver.c").write_text(DRIVER)
    exe = tmp_path / "driver"
    subprocess.run([cc, *HOST_FLAGS, "-DHOST", "-DBUDGET=3000000", "-DFUSED_BCONV=irnet_bconv",
                    "-DFUSED_CONV=irnet_conv_f32", f"-I{RUNTIME_DIR}", str(tmp_path / "driver.c"),
                    str(RUNTIME_DIR / "irnet_kernels.c"), "-o", str(exe)], check=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    check(run.stdout, run.returncode)


def firmware(tree, board_name: str, cpu: str) -> None:
    """The driver as main.c of a project made of the firmware's own startup, linker script, semihosting console and
    Makefile for the board, with the portable and Cortex-M kernels."""
    board = load_board(board_name)
    clock_hz, reset_clock_hz = clock_of(board, "full")
    ctx = {"banner": "/* irnet-edge fused kernel test */", "make_banner": "# irnet-edge fused kernel test",
           "board": board, "board_name": board.name, "cpu": load_cpu(cpu), "cpu_name": cpu,
           "flash_origin": hex(board.flash["origin"]), "flash_length": board.flash["length"],
           "ram_origin": hex(board.ram["origin"]), "ram_length": board.ram["length"],
           "stack_bytes": board.stack_bytes, "clock_mode": "full", "clock_hz": clock_hz,
           "reset_clock_hz": reset_clock_hz}
    keep = {"startup.c": "startup.c", "linker.ld": "linker.ld", "board.h": "board.h", "Makefile": "Makefile",
            "console_semihosting.c": "console.c", "clock_none.c": "clock.c"}
    for name, text in render_dir(asset_dir("firmware") / "project", ctx, "fused", keep.get).items():
        (tree / name).write_text(text)
    (tree / "src" / "irnet").mkdir(parents=True)
    for name in ("irnet_runtime.h", "irnet_exact.h", "irnet_internal.h", "irnet_kernels.c", "irnet_kernels_cm.c"):
        shutil.copy(RUNTIME_DIR / name, tree / "src" / "irnet" / name)
    (tree / "main.c").write_text(DRIVER)


# v6-M code on the M3 of mps2-an385 (QEMU has no M0+), the DSP assembly on the M4, Helium (and the DSP assembly
# of the 3x3 kernels over few channels) on the M55
CORES = [("mps2-an386", "cortex-m4", "gcc"), ("mps2-an385", "cortex-m0plus", "gcc"),
         ("mps3-an547", "cortex-m55", "gcc"), ("mps2-an386", "cortex-m4", "clang"),
         ("mps3-an547", "cortex-m55", "clang")]


@pytest.mark.parametrize("board,cpu,compiler", CORES, ids=[f"{cpu}-{cc}" for _, cpu, cc in CORES])
def test_cortex_m_fused_kernels_match_the_portable_ones(board, cpu, compiler, tmp_path):
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", compiler):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    firmware(tmp_path, board, cpu)
    flags = "-DBUDGET=60000 -DFUSED_BCONV=irnet_bconv_cm -DFUSED_CONV=irnet_conv_f32_cm -DCM_WEIGHTS -Isrc/irnet"
    elf = qemu.build_firmware(tmp_path, flags, compiler)
    code, output = qemu.run_elf(load_board(board).emulator["machine"], elf, timeout=300)
    check(output, code)
