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
