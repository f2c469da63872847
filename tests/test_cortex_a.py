"""Cortex-A: the NEON kernels cross-compiled for aarch64 and armv7, run under qemu-user, bit-exact."""
import pytest
from click.testing import CliRunner

from irnet_edge.cli import main
from irnet_edge.data import load_split
from irnet_edge.ir import export
from irnet_edge.nn.checkpoint import load_checkpoint
from irnet_edge.verify.host import verify

from .test_export_c import GRID, grid_id, grid_model

ARCHS = ["aarch64", "armv7"]


@pytest.mark.parametrize("arch", ARCHS)
def test_mcu_model_bit_exact_under_qemu_user(arch, trained_mcu, mnist_dir):
    test = load_split("mnist", "test", mnist_dir)
    ckpt = load_checkpoint(trained_mcu["mcu_m4"])
    result = verify(export(ckpt), "mcu_m4", ckpt.sha256, test.images[:100].permute(0, 2, 3, 1).contiguous(),
                    isa=arch)
    assert result.exact == result.samples == 100


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_neon_kernel_grid(arch, case, tmp_path):
    ckpt, graph, inputs = grid_model(case, tmp_path)
    result = verify(graph, "grid", ckpt.sha256, inputs[:8], isa=arch)
    assert result.exact == result.samples == 8


def test_verify_cli_cortex_a(trained_mcu, mnist_dir):
    result = CliRunner().invoke(main, ["verify", str(trained_mcu["mcu_m0"]), "--target", "cortex-a", "--isa",
                                       "aarch64", "--samples", "30", "--agreement-samples", "0",
                                       "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "30/30 bit-exact on aarch64 (qemu-user)" in result.output
    result = CliRunner().invoke(main, ["verify", str(trained_mcu["mcu_m0"]), "--target", "cortex-a"])
    assert result.exit_code == 1 and "needs --isa aarch64 or --isa armv7" in result.output


@pytest.mark.parametrize("arch", ARCHS)
def test_one_and_four_threads_give_the_same_bits(arch, trained_mcu, mnist_dir, tmp_path):
    import numpy as np

    from irnet_edge.ir import reference
    from irnet_edge.verify.host import run_c

    test = load_split("mnist", "test", mnist_dir)
    ckpt = load_checkpoint(trained_mcu["mcu_m4"])
    graph = export(ckpt)
    inputs = test.images[:20].permute(0, 2, 3, 1).contiguous()
    outputs = [run_c(graph, "m4", ckpt.sha256, inputs, tmp_path, cflags="-std=c99 -O2 -Wall -Wextra -Werror "
                     "-pedantic -fopenmp", ldflags="-fopenmp", isa=arch, threads=n, tree_name=f"t{n}")
               for n in (1, 4)]
    expected = reference.run(graph, inputs).numpy()
    for got in outputs:
        assert np.array_equal(got.view(np.int32), expected.view(np.int32))


@pytest.fixture(scope="module")
def cifar_models(cifar_dir, tmp_path_factory):
    """Zoo CIFAR models after a few real SGD steps, each trained once for both architectures."""
    from irnet_edge.data import get_dataset_info
    from irnet_edge.nn import zoo_spec

    from .helpers import briefly_trained

    train_set = load_split("cifar10", "train", cifar_dir)
    info = get_dataset_info("cifar10")
    cache = {}

    def get(model: str):
        if model not in cache:
            cache[model] = briefly_trained(zoo_spec(model, 3, 32, 10, info.mean, info.std),
                                           train_set.images[:2048], train_set.labels[:2048],
                                           tmp_path_factory.mktemp(model) / "m.pt", steps=10, batch=32)
        return cache[model]
    return get


@pytest.mark.parametrize("model", ["resnet20", "vgg_small", "resnet18", "resnet20_1w32a"])
@pytest.mark.parametrize("arch", ARCHS)
def test_cifar_zoo_models_under_qemu_user(arch, model, cifar_models, cifar_dir):
    test = load_split("cifar10", "test", cifar_dir)
    ckpt = cifar_models(model)
    result = verify(export(ckpt), model, ckpt.sha256, test.images[:4].permute(0, 2, 3, 1).contiguous(), isa=arch)
    assert result.exact == result.samples == 4


ELEMENTWISE_DRIVER = r"""
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "irnet_runtime.h"

static float special(unsigned i)
{
    static const unsigned bits[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007FFFFFu, 0x807FFFFFu,
                                    0x00800000u, 0x80800000u, 0x3F800000u, 0xBF800000u, 0x7F800000u, 0xFF800000u,
                                    0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFF800001u, 0x7F7FFFFFu, 0xFF7FFFFFu,
                                    0x3F7FFFFFu, 0xBF800001u, 0x3F800001u, 0xBF7FFFFFu};
    unsigned n = sizeof bits / sizeof bits[0], b = i < n ? bits[i] : i * 2654435761u;
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

/* the same bits, or both NaN: with two NaN operands C does not fix which one's payload an addition keeps */
static int same(const float *x, const float *y, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        if (memcmp(&x[i], &y[i], sizeof x[i]) != 0 && !(isnan(x[i]) && isnan(y[i]))) {
            return 0;
        }
    }
    return 1;
}

int main(void)
{
    static float a[4096], b[4096], want[4096], got[4096];
    static uint32_t wbits[4096], gbits[4096];
    int channels, act, n;
    for (n = 0; n < 4096; ++n) {
        a[n] = special((unsigned)n % 97u);
        b[n] = special((unsigned)(n * 7 + 3) % 89u);
    }
    for (channels = 1; channels <= 70; ++channels) {
        const int pixels = 4096 / channels / 2, words = (channels + 31) / 32;
        irnet_sign_pack(a, pixels, channels, wbits);
        irnet_sign_pack_neon(a, pixels, channels, gbits);
        if (memcmp(wbits, gbits, (size_t)(pixels * words) * 4u) != 0) {
            printf("sign_pack differs at %d channels\n", channels);
            return 1;
        }
    }
    for (act = 0; act <= 3; ++act) {
        for (n = 1; n <= 4096; n = n * 3 + 1) {
            irnet_add(a, b, n, act, want);
            irnet_add_neon(a, b, n, act, got);
            if (!same(want, got, n)) {
                printf("add differs: act %d, n %d\n", act, n);
                return 1;
            }
        }
    }
    puts("ok");
    return 0;
}
"""


@pytest.mark.parametrize("arch", ARCHS)
def test_neon_elementwise_kernels_equal_the_portable_ones_on_special_values(arch, tmp_path):
    """-0.0, NaNs, infinities and subnormals (which armv7 NEON float would flush) through sign_pack and add."""
    import subprocess

    from irnet_edge.codegen.render import RUNTIME_DIR
    from irnet_edge.verify.toolchain import CROSS

    (tmp_path / "driver.c").write_text(ELEMENTWISE_DRIVER)
    cross = CROSS[arch]
    sources = [str(tmp_path / "driver.c"), str(RUNTIME_DIR / "irnet_kernels.c"),
               str(RUNTIME_DIR / "irnet_elementwise_neon.c")]
    subprocess.run([cross.cc, *cross.cflags.split(), "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror",
                    "-static", "-I", str(RUNTIME_DIR), *sources, "-o", str(tmp_path / "t")], check=True)
    result = subprocess.run([*cross.launcher, str(tmp_path / "t")], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stdout + result.stderr


# The C test drivers' random numbers and special floats: +-0, subnormals, the smallest normals, +-1, infinities,
# NaNs (quiet and signalling), the largest finite values
SPECIAL_FLOATS_C = r"""
static unsigned state = 12345u;
static unsigned next(void) { state = state * 1664525u + 1013904223u; return state >> 8; }

static float bits_float(unsigned b) { float f; memcpy(&f, &b, sizeof f); return f; }

static const unsigned special[] = {0x00000000u, 0x80000000u, 0x00000001u, 0x80000001u, 0x007FFFFFu, 0x807FFFFFu,
                                   0x00800000u, 0x80800000u, 0x3F800000u, 0xBF800000u, 0x7F800000u, 0xFF800000u,
                                   0x7FC00000u, 0xFFC00000u, 0x7F800001u, 0xFF800001u, 0x7F7FFFFFu, 0xFF7FFFFFu};
"""

FLOAT_DRIVER = r"""
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "irnet_runtime.h"
""" + SPECIAL_FLOATS_C + r"""

static float *floats(int n) { return malloc(sizeof(float) * (size_t)n); }


/* mode 0: spread values; 1: one in five special (+-0, subnormals, +-inf, NaNs, extremes); 2: ties (+-0, +-1,
 * +-the smallest subnormal, the smallest normal, 0.5) */
static float value(int mode)
{
    static const unsigned ties[] = {0x00000000u, 0x80000000u, 0x3F800000u, 0xBF800000u, 0x00000001u,
                                    0x80000001u, 0x00800000u, 0x3F000000u};
    const unsigned r = next();
    if (mode == 1 && r % 5 == 0) {
        return bits_float(special[next() % 18]);
    }
    if (mode == 2) {
        return bits_float(ties[r % 8]);
    }
    return ((float)(r % 20001) - 10000.0f) / 3333.0f;
}

/* the same bits, or both NaN: with two NaN operands C does not fix which one's payload an addition keeps */
static int same_or_nan(const float *x, const float *y, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        if (memcmp(&x[i], &y[i], sizeof x[i]) != 0 && !(isnan(x[i]) && isnan(y[i]))) {
            return 0;
        }
    }
    return 1;
}

static int conv_case(int h, int w, int cin, int cout, int k, int s, int pad, int mode, int act, int bits)
{
    const int ho = (h + 2 * pad - k) / s + 1, wo = (w + 2 * pad - k) / s + 1, words = (cout + 31) / 32;
    float *in = floats(h * w * cin), *wp = floats(cout * k * k * cin), *wn = floats(cout * k * k * cin);
    float *mult = floats(cout), *add = floats(cout), *want = floats(ho * wo * cout), *got = floats(ho * wo * cout);
    uint32_t *wbits = malloc(4u * (size_t)(ho * wo * words)), *gbits = malloc(4u * (size_t)(ho * wo * words));
    int i, co, t, c, ok;
    for (i = 0; i < h * w * cin; ++i) {
        in[i] = value(mode == 1);
    }
    for (co = 0; co < cout; ++co) {
        for (t = 0; t < k * k; ++t) {
            for (c = 0; c < cin; ++c) { /* [cout][k][k][cin] for the oracle, [k][k][cin][cout] for NEON */
                wp[(co * k * k + t) * cin + c] = wn[(t * cin + c) * cout + co] = value(mode == 2 ? 2 : 0);
            }
        }
        mult[co] = co % 7 == 0 ? 0.0f : value(0); /* acc * 0 + -0.0: the sign of acc decides */
        add[co] = co % 7 == 0 ? -0.0f : value(0);
    }
    {
        irnet_conv_f32_params p = {.h = h, .w = w, .cin = cin, .cout = cout, .k = k, .stride = s, .pad = pad,
                                   .ho = ho, .wo = wo, .weight = wp, .mult = mult, .add = add, .act = act};
        irnet_conv_f32_params q = p;
        q.weight = wn;
        memset(want, 0x55, sizeof(float) * (size_t)(ho * wo * cout));
        memset(got, 0x66, sizeof(float) * (size_t)(ho * wo * cout));
        memset(wbits, 0x55, 4u * (size_t)(ho * wo * words));
        memset(gbits, 0x66, 4u * (size_t)(ho * wo * words));
        irnet_conv_f32(&p, in, bits ? wbits : 0, bits ? 0 : want);
        irnet_conv_f32_neon(&q, in, bits ? gbits : 0, bits ? 0 : got);
        ok = bits ? memcmp(wbits, gbits, 4u * (size_t)(ho * wo * words)) == 0 : same_or_nan(want, got, ho * wo * cout);
    }
    if (!ok) {
        printf("conv differs: %dx%dx%d -> %d, k %d, stride %d, pad %d, mode %d, act %d, bits %d\n", h, w, cin, cout,
               k, s, pad, mode, act, bits);
    }
    free(in), free(wp), free(wn), free(mult), free(add), free(want), free(got), free(wbits), free(gbits);
    return ok;
}

static int pool_case(int h, int w, int channels, int k, int s, int pad, int mode)
{
    const int ho = (h + 2 * pad - k) / s + 1, wo = (w + 2 * pad - k) / s + 1;
    float *in = floats(h * w * channels), *want = floats(ho * wo * channels), *got = floats(ho * wo * channels);
    uint8_t *min_mask = malloc((size_t)channels);
    int i, ok;
    for (i = 0; i < h * w * channels; ++i) {
        in[i] = value(mode);
    }
    for (i = 0; i < channels; ++i) { /* any non-zero byte marks a min channel */
        min_mask[i] = (uint8_t)(mode == 0 ? 0 : next() % 2 * (1 + next() % 200));
    }
    {
        irnet_maxpool2d_f32_params p = {h, w, channels, k, s, pad, ho, wo, min_mask};
        memset(want, 0x55, sizeof(float) * (size_t)(ho * wo * channels));
        memset(got, 0x66, sizeof(float) * (size_t)(ho * wo * channels));
        irnet_maxpool2d_f32(&p, in, want);
        irnet_maxpool2d_f32_neon(&p, in, got);
        ok = memcmp(want, got, sizeof(float) * (size_t)(ho * wo * channels)) == 0; /* bit for bit, NaNs too */
    }
    if (!ok) {
        printf("maxpool differs: %dx%dx%d, k %d, stride %d, pad %d, mode %d\n", h, w, channels, k, s, pad, mode);
    }
    free(in), free(want), free(got), free(min_mask);
    return ok;
}

int main(void)
{
    static const int cins[] = {1, 2, 3, 4, 5, 8, 16, 31, 32, 33, 64, 65}, ks[] = {1, 3, 5, 7};
    static const int couts[] = {16, 33, 64, 20}, channels[] = {1, 3, 4, 16, 31, 32, 33, 64, 65};
    int ci, ki, s, padded, size, n = 0, fails = 0, seed, c, k, p;
    for (ci = 0; ci < 12; ++ci) {
        for (ki = 0; ki < 4; ++ki) {
            for (s = 1; s <= 2; ++s) {
                for (padded = 0; padded < 2; ++padded) {
                    for (size = 0; size < 2; ++size, ++n) {
                        const int k7 = ks[ki] == 7 ? 2 : 0, big = cins[ci] > 8 && ks[ki] > 3;
                        const int h = (size ? 13 : 9) + k7 - 2 * big, w = (size ? 11 : 16) + k7 - 3 * big;
                        fails += !conv_case(h, w, cins[ci], couts[n % 4], ks[ki], s, padded ? ks[ki] / 2 : 0,
                                            n % 3, n % 4, n % 5 == 0);
                    }
                }
            }
        }
    }
    for (seed = 0; seed < 3; ++seed) { /* the ImageNet stem, 7x7/2 pad 3 on 3 channels to 64, on a 64x64 map */
        fails += !conv_case(64, 64, 3, 64, 7, 2, 3, seed, 1, 0);
    }
    fails += !conv_case(64, 64, 3, 64, 7, 2, 3, 0, 0, 1);
    for (c = 0; c < 9; ++c) {
        for (k = 1; k <= 5; ++k) {
            for (s = 1; s <= 3; ++s) {
                for (p = 0; p <= k / 2; ++p) {
                    for (size = 0; size < 2; ++size, ++n) {
                        fails += !pool_case(size ? 13 : 6, size ? 11 : 7, channels[c], k, s, p, n % 3);
                    }
                }
            }
        }
    }
    fails += !pool_case(112, 112, 64, 3, 2, 1, 0); /* the stem's pool */
    fails += !pool_case(112, 112, 64, 3, 2, 1, 2);
    puts(fails ? "differs" : "ok");
    return fails != 0;
}
"""

# (compiler, isa): clang cross-compiles with --target and the isa's flags
FLOAT_BUILDS = [("gcc", "aarch64"), ("clang", "aarch64"), ("gcc", "armv7"), ("clang", "armv7")]
CLANG_TARGET = {"aarch64": "aarch64-linux-gnu", "armv7": "arm-linux-gnueabihf"}


@pytest.mark.parametrize("cc,arch", FLOAT_BUILDS, ids=[f"{cc}-{arch}" for cc, arch in FLOAT_BUILDS])
def test_neon_float_conv_and_maxpool_equal_the_portable_ones(cc, arch, tmp_path):
    """irnet_conv_f32_neon (the register-blocked few-channel path, the per-pixel path and the borders) and
    irnet_maxpool2d_f32_neon against the portable kernels: input channels 1-5, 8, 16, 31-33, 64, 65, kernels 1-7,
    strides 1 and 2, with and without padding, odd maps, every activation and bits output, the ImageNet stem on a
    64x64 map; max-pools of kernels 1-5, strides 1-3, every padding, max and min channels, on ties of +-0 and
    subnormals and on NaNs, infinities and subnormals (pools bit for bit, convolutions up to NaN payloads)."""
    assert run_neon_driver(FLOAT_DRIVER, ("irnet_kernels.c", "irnet_conv_f32_neon.c"), cc, arch,
                           tmp_path).endswith("ok")


def run_neon_driver(driver: str, runtime: tuple[str, ...], cc: str, arch: str, tmp_path) -> str:
    """Builds a C test driver with the named runtime files for arch (strict flags, static) with gcc or clang,
    runs it under the arch's emulator and returns its stripped output; asserts it exits 0."""
    import subprocess

    from irnet_edge.codegen.render import RUNTIME_DIR
    from irnet_edge.verify.toolchain import CROSS, STRICT_CFLAGS

    (tmp_path / "driver.c").write_text(driver)
    cross = CROSS[arch]
    compiler = [cross.cc] if cc == "gcc" else ["clang", f"--target={CLANG_TARGET[arch]}"]
    sources = [str(tmp_path / "driver.c"), *(str(RUNTIME_DIR / name) for name in runtime)]
    subprocess.run([*compiler, *cross.cflags.split(), *STRICT_CFLAGS.split(), "-static", "-I", str(RUNTIME_DIR),
                    *sources, "-o", str(tmp_path / "t")], check=True)
    result = subprocess.run([*cross.launcher, str(tmp_path / "t")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()
