"""The NEON convolutions' fused ops (irnet_fusion: residual add, in place or not, and sign output) against the
unfused sequence of portable kernels (irnet_bconv or irnet_conv_f32, then irnet_add, then irnet_sign_pack), bit
for bit, cross-compiled for aarch64 and armv7 with gcc and clang and run under qemu-user."""
import subprocess

import pytest

from .test_cortex_a import CLANG_TARGET

FUSED_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "irnet_runtime.h"

#if defined(_OPENMP)
void omp_set_num_threads(int); /* of the OpenMP API (omp.h, which a cross toolchain's clang may lack) */
#endif

static unsigned state = 2024u;
static unsigned next(void) { state = state * 1664525u + 1013904223u; return state >> 8; }

static float bits_float(unsigned b) { float f; memcpy(&f, &b, sizeof f); return f; }

/* special: one in four is +-0, an infinity, an extreme, a subnormal or 1; else integers and halves in
 * [-8, 8], so that sums meet 0 exactly (ties at 0 after the add, +0.0 against -0.0); plain: spread values */
static float value(int special)
{
    static const unsigned odd[] = {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u, 0x7F7FFFFFu, 0xFF7FFFFFu,
                                   0x00000001u, 0x80000001u, 0x3F800000u, 0xBF800000u};
    const unsigned r = next();
    if (special && r % 4 == 0) {
        return bits_float(odd[next() % 10]);
    }
    if (special) {
        return (float)((int)(r % 33) - 16) * 0.5f;
    }
    return ((float)(r % 20001) - 10000.0f) / 3333.0f;
}

/* mult, add of channel c: with special, multipliers 1, -1, 0.5, 0 and 1e30 and adds that are +-0 or halves */
static void transform(int cout, int special, float *mult, float *add)
{
    static const float m[] = {1.0f, -1.0f, 0.5f, 0.0f, 1e30f, 1.0f};
    int c;
    for (c = 0; c < cout; ++c) {
        mult[c] = special ? m[next() % 6] : value(0) * 0.05f;
        add[c] = special ? (next() % 3 == 0 ? -0.0f : (float)((int)(next() % 9) - 4) * 0.5f) : value(0);
    }
}

static const char *const mode_names[] = {"residual in place + sign", "residual + sign", "residual in place",
                                         "sign", "residual"};

/* The fused call against the oracle: y (the unfused output), then want = residual_act(y + res) (irnet_add)
 * and its bits (irnet_sign_pack). got starts as the residual (in place) or as garbage, the sign words as
 * garbage too: every word must be written, unused bits 0. */
static int compare(const float *y, const float *res, int pixels, int cout, int ract, int mode, float *got,
    uint32_t *gbits, const char *what)
{
    const int n = pixels * cout, ow = (cout + 31) / 32, residual = mode != 3, sign = mode != 2 && mode != 4;
    float *want = malloc(sizeof(float) * (size_t)n);
    uint32_t *wbits = malloc(4u * (size_t)(pixels * ow));
    int ok;
    if (residual) {
        irnet_add(y, res, n, ract, want);
    } else {
        memcpy(want, y, sizeof(float) * (size_t)n);
    }
    irnet_sign_pack(want, pixels, cout, wbits);
    ok = memcmp(want, got, sizeof(float) * (size_t)n) == 0 &&
         (!sign || memcmp(wbits, gbits, 4u * (size_t)(pixels * ow)) == 0);
    if (!ok) {
        printf("%s, %s differs\n", what, mode_names[mode]);
    }
    free(want), free(wbits);
    return ok;
}

/* got and the fusion for mode (see mode_names) */
static void fusion(irnet_fusion *f, const float *res, int n, int ow, int ract, int mode, float *got, uint32_t *gbits)
{
    memset(f, 0, sizeof *f);
    memset(got, 0x66, sizeof(float) * (size_t)n);
    memset(gbits, 0xA5, 4u * (size_t)ow);
    if (mode == 0 || mode == 2) {
        memcpy(got, res, sizeof(float) * (size_t)n);
        f->residual = got;
    } else if (mode != 3) {
        f->residual = res;
    }
    f->residual_act = ract;
    f->sign = mode != 2 && mode != 4 ? gbits : 0;
}

/* pad_one: +1 padding (bits 0), else zero padding */
static int bconv_case(int h, int w, int cin, int cout, int k, int s, int pad, int pad_one, int act, int ract,
    int mode, int special)
{
    const int ho = (h + 2 * pad - k) / s + 1, wo = (w + 2 * pad - k) / s + 1, words = (cin + 31) / 32;
    const int ow = (cout + 31) / 32, pixels = ho * wo, n = pixels * cout;
    const uint32_t top = cin % 32 ? (1u << cin % 32) - 1u : 0xFFFFFFFFu;
    uint32_t *in = malloc(4u * (size_t)(h * w * words)), *weight = malloc(4u * (size_t)(cout * k * k * words));
    uint32_t *gbits = malloc(4u * (size_t)(pixels * ow));
    float *mult = malloc(4u * (size_t)cout), *add = malloc(4u * (size_t)cout), *res = malloc(4u * (size_t)n);
    float *y = malloc(4u * (size_t)n), *got = malloc(4u * (size_t)n);
    char *scratch;
    irnet_bconv_params p;
    int i, ok;
    char what[160];
    for (i = 0; i < h * w * words; ++i) {
        in[i] = (next() ^ next() << 16) & (i % words == words - 1 ? top : 0xFFFFFFFFu);
    }
    for (i = 0; i < cout * k * k * words; ++i) {
        weight[i] = (next() ^ next() << 16) & (i % words == words - 1 ? top : 0xFFFFFFFFu);
    }
    transform(cout, special, mult, add);
    for (i = 0; i < n; ++i) {
        res[i] = value(special);
    }
    memset(&p, 0, sizeof p);
    p.h = h, p.w = w, p.cin = cin, p.cout = cout, p.k = k, p.stride = s, p.pad = pad, p.pad_one = pad_one;
    p.ho = ho, p.wo = wo, p.weight = weight, p.mult = mult, p.add = add, p.act = act;
    irnet_bconv(&p, in, 0, y);
    /* the scratch as the generated code sets it: irnet_bconv_neon_scratch_bytes, 4-byte aligned */
    scratch = malloc(irnet_bconv_neon_scratch_bytes(&p) + 16);
    p.scratch = scratch + 4 * (next() % 4);
    fusion(&p.fuse, res, n, pixels * ow, ract, mode, got, gbits);
    irnet_bconv_neon(&p, in, 0, got);
    sprintf(what, "bconv %dx%dx%d -> %d, k %d, stride %d, pad %d%s, act %d, residual act %d, special %d", h, w,
            cin, cout, k, s, pad, pad_one ? " (+1)" : "", act, ract, special);
    ok = compare(y, res, pixels, cout, ract, mode, got, gbits, what);
    free(in), free(weight), free(gbits), free(mult), free(add), free(res), free(y), free(got), free(scratch);
    return ok;
}

/* The bits output, which shares the fused kernel's blocks: the same call as the portable one */
static int bits_case(int h, int w, int cin, int cout, int k, int s, int pad, int pad_one)
{
    const int ho = (h + 2 * pad - k) / s + 1, wo = (w + 2 * pad - k) / s + 1, words = (cin + 31) / 32;
    const int ow = (cout + 31) / 32, pixels = ho * wo, reach = k * k * cin;
    const uint32_t top = cin % 32 ? (1u << cin % 32) - 1u : 0xFFFFFFFFu;
    uint32_t *in = malloc(4u * (size_t)(h * w * words)), *weight = malloc(4u * (size_t)(cout * k * k * words));
    uint32_t *wbits = malloc(4u * (size_t)(pixels * ow)), *gbits = malloc(4u * (size_t)(pixels * ow));
    int32_t *threshold = malloc(4u * (size_t)cout);
    char *scratch;
    irnet_bconv_params p;
    int i, ok;
    for (i = 0; i < h * w * words; ++i) {
        in[i] = (next() ^ next() << 16) & (i % words == words - 1 ? top : 0xFFFFFFFFu);
    }
    for (i = 0; i < cout * k * k * words; ++i) {
        weight[i] = (next() ^ next() << 16) & (i % words == words - 1 ? top : 0xFFFFFFFFu);
    }
    for (i = 0; i < cout; ++i) { /* within the dots' range, and beyond it both ways */
        threshold[i] = i % 9 == 0 ? (i % 2 ? 40000 : -40000) : (int32_t)(next() % (unsigned)(reach + 1)) - reach / 2;
    }
    memset(&p, 0, sizeof p);
    p.h = h, p.w = w, p.cin = cin, p.cout = cout, p.k = k, p.stride = s, p.pad = pad, p.pad_one = pad_one;
    p.ho = ho, p.wo = wo, p.weight = weight, p.threshold = threshold;
    memset(wbits, 0x55, 4u * (size_t)(pixels * ow));
    memset(gbits, 0xA5, 4u * (size_t)(pixels * ow));
    irnet_bconv(&p, in, wbits, 0);
    scratch = malloc(irnet_bconv_neon_scratch_bytes(&p) + 16);
    p.scratch = scratch + 4 * (next() % 4);
    irnet_bconv_neon(&p, in, gbits, 0);
    ok = memcmp(wbits, gbits, 4u * (size_t)(pixels * ow)) == 0;
    if (!ok) {
        printf("bconv bits %dx%dx%d -> %d, k %d, stride %d, pad %d%s differs\n", h, w, cin, cout, k, s, pad,
               pad_one ? " (+1)" : "");
    }
    free(in), free(weight), free(wbits), free(gbits), free(threshold), free(scratch);
    return ok;
}

static int conv_case(int h, int w, int cin, int cout, int k, int s, int pad, int act, int ract, int mode,
    int special)
{
    const int ho = (h + 2 * pad - k) / s + 1, wo = (w + 2 * pad - k) / s + 1, ow = (cout + 31) / 32;
    const int pixels = ho * wo, n = pixels * cout;
    float *in = malloc(4u * (size_t)(h * w * cin)), *wp = malloc(4u * (size_t)(cout * k * k * cin));
    float *wn = malloc(4u * (size_t)(cout * k * k * cin)), *mult = malloc(4u * (size_t)cout);
    float *add = malloc(4u * (size_t)cout), *res = malloc(4u * (size_t)n), *y = malloc(4u * (size_t)n);
    float *got = malloc(4u * (size_t)n), *norm = malloc(4u * 256u * (size_t)cin);
    float *band = malloc(4u * (size_t)(h * w * cin));
    uint32_t *gbits = malloc(4u * (size_t)(pixels * ow));
    uint8_t *pixels_u8 = malloc((size_t)(h * w * cin));
    irnet_conv_f32_params p;
    irnet_conv_f32_u8_params up;
    int i, co, t, c, ok;
    char what[200];
    /* the map is a normalisation table's values of random pixels, so that it can be given as uint8 pixels too */
    for (i = 0; i < 256 * cin; ++i) {
        norm[i] = value(special);
    }
    for (i = 0; i < h * w * cin; ++i) {
        pixels_u8[i] = (uint8_t)(next() % 256);
        in[i] = norm[(i % cin) * 256 + pixels_u8[i]];
    }
    for (co = 0; co < cout; ++co) {
        for (t = 0; t < k * k; ++t) {
            for (c = 0; c < cin; ++c) { /* [cout][k][k][cin] for the oracle, [k][k][cin][cout] for NEON */
                wp[(co * k * k + t) * cin + c] = wn[(t * cin + c) * cout + co] = value(special);
            }
        }
    }
    transform(cout, special, mult, add);
    for (i = 0; i < n; ++i) {
        res[i] = value(special);
    }
    memset(&p, 0, sizeof p);
    p.h = h, p.w = w, p.cin = cin, p.cout = cout, p.k = k, p.stride = s, p.pad = pad, p.ho = ho, p.wo = wo;
    p.weight = wp, p.mult = mult, p.add = add, p.act = act;
    irnet_conv_f32(&p, in, 0, y);
    p.weight = wn;
    fusion(&p.fuse, res, n, pixels * ow, ract, mode, got, gbits);
    irnet_conv_f32_neon(&p, in, 0, got);
    sprintf(what, "conv_f32 %dx%dx%d -> %d, k %d, stride %d, pad %d, act %d, residual act %d, special %d", h, w,
            cin, cout, k, s, pad, act, ract, special);
    ok = compare(y, res, pixels, cout, ract, mode, got, gbits, what);
    /* over the uint8 pixels with the normalisation fused, in bands of any number of rows */
    memset(&up, 0, sizeof up);
    up.conv = p;
    fusion(&up.conv.fuse, res, n, pixels * ow, ract, mode, got, gbits);
    up.norm = norm, up.rows = 1 + (int)(next() % (unsigned)ho), up.band = band, up.kernel = irnet_conv_f32_neon;
    irnet_conv_f32_u8(&up, pixels_u8, 0, got);
    sprintf(what + strlen(what), ", uint8 in (normalisation fused), bands of %d rows", up.rows);
    ok = compare(y, res, pixels, cout, ract, mode, got, gbits, what) && ok;
    free(in), free(wp), free(wn), free(mult), free(add), free(res), free(y), free(got), free(gbits);
    free(norm), free(band), free(pixels_u8);
    return ok;
}

/* every: the channel grid's cases n with n % every == 0 (all of ResNet-20's layers always) */
static int grid(int every)
{
    static const int chans[] = {1, 3, 16, 31, 32, 33, 64, 65}, ks[] = {1, 3, 5};
    /* ResNet-20's binary convolutions (h, cin, cout, stride) */
    static const int resnet[][4] = {{32, 16, 16, 1}, {32, 16, 32, 2}, {16, 32, 32, 1}, {16, 32, 64, 2},
                                    {8, 64, 64, 1}};
    int ci, co, ki, s, padding, i, mode, n = 0, fails = 0;
    for (ci = 0; ci < 8; ++ci) {
        for (co = 0; co < 8; ++co) {
            for (ki = 0; ki < 3; ++ki) {
                for (s = 1; s <= 2; ++s) {
                    /* 0: none, 1: k / 2 of zeros, 2: k / 2 of +1 (bconv) */
                    for (padding = 0; padding < (ks[ki] > 1 ? 3 : 1); ++padding, ++n) {
                        const int h = n % 2 ? 7 : 6, w = n % 2 ? 9 : 11, k = ks[ki], pad = padding ? k / 2 : 0;
                        if (n % every != 0) {
                            continue;
                        }
                        fails += !bconv_case(h, w, chans[ci], chans[co], k, s, pad, padding == 2, n % 3, n / 3 % 3,
                                             n % 5, n % 4 != 1);
                        if (n % 3 == 0) {
                            fails += !bits_case(h, w, chans[ci], chans[co] == 65 ? 48 : chans[co], k, s, pad,
                                                padding == 2);
                        }
                        if (padding < 2) {
                            fails += !conv_case(h, w, chans[ci], chans[co], k, s, pad, n % 3, (n + 1) / 3 % 3,
                                                (n + 2) % 5, n % 4 != 2);
                        }
                    }
                }
            }
        }
    }
    for (i = 0; i < 5; ++i) {
        for (mode = 0; mode < 5; ++mode, ++n) {
            fails += !bconv_case(resnet[i][0], resnet[i][0], resnet[i][1], resnet[i][2], 3, resnet[i][3], 1, n % 2,
                                 IRNET_ACT_NONE, n % 3, mode, n % 2);
        }
        fails += !bconv_case(resnet[i][0], resnet[i][0], resnet[i][1], resnet[i][2], 3, resnet[i][3], 1, 0,
                             IRNET_ACT_HARDTANH, IRNET_ACT_RELU, 0, 1);
        fails += !bits_case(resnet[i][0], resnet[i][0], resnet[i][1], resnet[i][2], 3, resnet[i][3], 1, i % 2);
    }
    for (i = 0; i < 9; ++i) { /* 3x3 stride 1 into 16 channels, widths of whole blocks of 4 (irnet_c16) */
        static const int cins[3] = {1, 7, 16};
        const int pad = i % 3, cin = cins[i / 3];
        fails += !bconv_case(8, 12, cin, 16, 3, 1, pad, i % 2, i % 3, (i + 1) % 3, i % 5, i % 2);
        fails += !bits_case(5, 16, cin, 16, 3, 1, pad, (i + 1) % 2);
        fails += !bits_case(9, 4, cin, 16, 3, 1, pad, 0);
    }
    for (mode = 0; mode < 5; ++mode) { /* padding as wide as the kernel or wider: windows wholly in the padding */
        fails += !conv_case(5, 6, 3, 16, 1, 1, 1, mode % 3, IRNET_ACT_NONE, mode, mode % 2);
        fails += !conv_case(6, 7, 1, 8, 3, 2, 3, IRNET_ACT_HARDTANH, mode % 3, mode, 1);
        fails += !bconv_case(6, 5, 16, 16, 3, 1, 4, mode % 2, IRNET_ACT_NONE, mode % 3, mode, mode % 2);
        fails += !bconv_case(5, 6, 32, 32, 1, 1, 2, 0, IRNET_ACT_HARDTANH, mode % 3, mode, 1);
        fails += !bits_case(6, 5, 16, 16, 3, 1, 3 + mode % 2, mode % 2);
    }
    for (mode = 0; mode < 5; ++mode) { /* the stem */
        fails += !conv_case(32, 32, 3, 16, 3, 1, 1, mode % 3, IRNET_ACT_HARDTANH, mode, mode % 2);
    }
    return fails;
}

int main(void)
{
    int fails = grid(1);
#if defined(_OPENMP)
    omp_set_num_threads(4); /* a fifth of the grid: qemu-user runs the threads one after another */
    fails += grid(5);
#endif
    puts(fails ? "differs" : "ok");
    return fails != 0;
}
"""

# (compiler, isa, OpenMP): the cross gcc links its libgomp statically; clang has no OpenMP runtime for the targets
BUILDS = [("gcc", "aarch64", True), ("clang", "aarch64", False), ("gcc", "armv7", True), ("clang", "armv7", False)]


@pytest.mark.parametrize("cc,arch,openmp", BUILDS, ids=[f"{cc}-{arch}" for cc, arch, _ in BUILDS])
def test_fused_neon_convolutions_equal_the_unfused_portable_sequence(cc, arch, openmp, tmp_path):
    """irnet_bconv_neon and irnet_conv_f32_neon with residual (in place and not) and sign fused (the float conv
    also over uint8 pixels through irnet_conv_f32_u8, normalisation fused, in bands of random rows): channels 1, 3,
    16, 31-33, 64, 65, kernels 1, 3, 5, strides 1 and 2, no padding and k / 2 of zeros (or +1 for bconv), odd
    maps, every activation before and after the add, special values and ties at 0, ResNet-20's layers and stem,
    the scratch as generated code sets it; with OpenMP once more on 4 threads. The plain bits output of
    irnet_bconv_neon too (its blocks are the fused kernel's), 48 output channels among the counts."""
    from irnet_edge.codegen.render import RUNTIME_DIR
    from irnet_edge.verify.toolchain import CROSS, require_tool

    cross = CROSS[arch]
    require_tool(cross.launcher[0], "qemu-user")
    compiler = [require_tool(cross.cc, cross.packages)] if cc == "gcc" else \
        [require_tool("clang", "clang"), f"--target={CLANG_TARGET[arch]}"]
    (tmp_path / "driver.c").write_text(FUSED_DRIVER)
    sources = [str(tmp_path / "driver.c")] + [str(RUNTIME_DIR / name) for name in
                                              ("irnet_kernels.c", "irnet_kernels_neon.c", "irnet_conv_f32_neon.c")]
    omp = ["-fopenmp"] if openmp else []
    subprocess.run([*compiler, *cross.cflags.split(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
                    *omp, "-static", "-I", str(RUNTIME_DIR), *sources, "-o", str(tmp_path / "t")], check=True)
    result = subprocess.run([*cross.launcher, str(tmp_path / "t")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stdout[-4000:] + result.stderr
