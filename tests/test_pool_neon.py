"""irnet_maxpool_f32_neon, irnet_avgpool_neon and irnet_shortcut_a_neon against the portable kernels, bit for bit,
under aarch64 and armv7, gcc and clang: channels 1-65, odd maps, min channels, and values that include +-0.0,
NaNs, infinities and subnormals (which armv7 NEON float would flush)."""
import pytest

from .test_cortex_a import FLOAT_BUILDS, SPECIAL_FLOATS_C, run_neon_driver

POOL_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "irnet_runtime.h"
""" + SPECIAL_FLOATS_C + r"""


/* mode 0: spread values; 1: one in three special (+-0, subnormals, +-inf, NaNs, extremes); 2: ties only */
static float value(int mode)
{
    static const unsigned ties[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x3F800000u};
    const unsigned r = next();
    if (mode == 1 && r % 3 == 0) {
        return bits_float(special[next() % 18]);
    }
    if (mode == 2) {
        return bits_float(ties[r % 5]);
    }
    return ((float)(int)(r % 20001u) - 10000.0f) / 997.0f;
}

static float *fill(int n, int mode)
{
    float *x = malloc(sizeof(float) * (size_t)n);
    int i;
    for (i = 0; i < n; ++i) {
        x[i] = value(mode);
    }
    return x;
}

static int maxpool_case(int h, int w, int channels, int k, int mode)
{
    const int ho = h / k, wo = w / k, n = ho * wo * channels;
    float *in = fill(h * w * channels, mode), *want = malloc(sizeof(float) * (size_t)n);
    float *got = malloc(sizeof(float) * (size_t)n);
    uint8_t *min_mask = malloc((size_t)channels);
    int c, ok;
    for (c = 0; c < channels; ++c) {
        min_mask[c] = (uint8_t)(mode == 0 ? 0 : next() % 2);
    }
    {
        irnet_maxpool_f32_params p = {w, channels, k, ho, wo, min_mask};
        memset(want, 0x55, sizeof(float) * (size_t)n);
        memset(got, 0x66, sizeof(float) * (size_t)n);
        irnet_maxpool_f32(&p, in, want);
        irnet_maxpool_f32_neon(&p, in, got);
        ok = memcmp(want, got, sizeof(float) * (size_t)n) == 0;
    }
    if (!ok) {
        printf("maxpool differs: %dx%dx%d, k %d, mode %d\n", h, w, channels, k, mode);
    }
    free(in), free(want), free(got), free(min_mask);
    return ok;
}

static int avgpool_case(int pixels, int channels, int mode)
{
    float *in = fill(pixels * channels, mode), *want = malloc(sizeof(float) * (size_t)channels);
    float *got = malloc(sizeof(float) * (size_t)channels);
    int ok;
    memset(want, 0x55, sizeof(float) * (size_t)channels);
    memset(got, 0x66, sizeof(float) * (size_t)channels);
    irnet_avgpool(in, pixels, channels, want);
    irnet_avgpool_neon(in, pixels, channels, got);
    ok = memcmp(want, got, sizeof(float) * (size_t)channels) == 0;
    if (!ok) {
        printf("avgpool differs: %d pixels, %d channels, mode %d\n", pixels, channels, mode);
    }
    free(in), free(want), free(got);
    return ok;
}

/* in place (out = in) where the portable kernel allows it: w even, pad <= channels / 2 */
static int shortcut_case(int h, int w, int channels, int pad, int in_place)
{
    const int n_in = h * w * channels, n_out = ((h + 1) / 2) * ((w + 1) / 2) * (channels + 2 * pad);
    const int n = n_in > n_out ? n_in : n_out;
    float *in = fill(n, 1), *want = malloc(sizeof(float) * (size_t)n), *got = malloc(sizeof(float) * (size_t)n);
    int ok;
    memset(want, 0x55, sizeof(float) * (size_t)n);
    memset(got, 0x66, sizeof(float) * (size_t)n);
    if (in_place) {
        memcpy(want, in, sizeof(float) * (size_t)n);
        memcpy(got, in, sizeof(float) * (size_t)n);
        irnet_shortcut_a(want, h, w, channels, pad, want);
        irnet_shortcut_a_neon(got, h, w, channels, pad, got);
    } else {
        irnet_shortcut_a(in, h, w, channels, pad, want);
        irnet_shortcut_a_neon(in, h, w, channels, pad, got);
    }
    ok = memcmp(want, got, sizeof(float) * (size_t)n_out) == 0;
    if (!ok) {
        printf("shortcut_a differs: %dx%dx%d, pad %d, in place %d\n", h, w, channels, pad, in_place);
    }
    free(in), free(want), free(got);
    return ok;
}

int main(void)
{
    static const int channels[] = {1, 3, 4, 16, 31, 32, 33, 64, 65};
    int c, k, size, mode, pad, n = 0, fails = 0;
    for (c = 0; c < 9; ++c) {
        for (k = 1; k <= 4; ++k) {
            for (size = 0; size < 3; ++size) {
                for (mode = 0; mode < 3; ++mode, ++n) {
                    fails += !maxpool_case(size == 0 ? 8 : size == 1 ? 9 : 13, size == 0 ? 8 : size == 1 ? 7 : 11,
                                           channels[c], k, mode);
                }
            }
        }
        for (size = 0; size < 5; ++size) {
            for (mode = 0; mode < 3; ++mode) {
                static const int pixels[] = {1, 2, 7, 49, 64};
                fails += !avgpool_case(pixels[size], channels[c], mode);
            }
        }
        for (pad = 0; pad <= channels[c]; pad += channels[c] / 2 > 0 ? channels[c] / 2 : 1) {
            fails += !shortcut_case(8, 8, channels[c], pad, 0);
            fails += !shortcut_case(7, 9, channels[c], pad, 0);
            fails += !shortcut_case(5, 3, channels[c], pad, 0);
            if (pad <= channels[c] / 2) {
                fails += !shortcut_case(8, 8, channels[c], pad, 1);
                fails += !shortcut_case(7, 6, channels[c], pad, 1);
            }
        }
    }
    fails += !maxpool_case(8, 8, 512, 2, 1); /* vgg_small's last pool */
    fails += !avgpool_case(64, 64, 1);       /* resnet20's */
    puts(fails ? "differs" : "ok");
    return fails != 0;
}
"""

@pytest.mark.parametrize("cc,arch", FLOAT_BUILDS, ids=[f"{cc}-{arch}" for cc, arch in FLOAT_BUILDS])
def test_neon_pools_and_shortcut_equal_the_portable_ones(cc, arch, tmp_path):
    runtime = ("irnet_kernels.c", "irnet_conv_f32_neon.c", "irnet_elementwise_neon.c")
    assert run_neon_driver(POOL_DRIVER, runtime, cc, arch, tmp_path) == "ok"
