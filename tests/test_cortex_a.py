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
                    arch=arch)
    assert result.exact == result.samples == 100


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("case", GRID, ids=grid_id)
def test_neon_kernel_grid(arch, case, tmp_path):
    ckpt, graph, inputs = grid_model(case, tmp_path)
    result = verify(graph, "grid", ckpt.sha256, inputs[:8], arch=arch)
    assert result.exact == result.samples == 8


def test_verify_cli_cortex_a(trained_mcu, mnist_dir):
    result = CliRunner().invoke(main, ["verify", str(trained_mcu["mcu_m0"]), "--target", "cortex-a", "--arch",
                                       "aarch64", "--samples", "30", "--agreement-samples", "0",
                                       "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    assert "30/30 bit-exact on aarch64 (qemu-user)" in result.output
    result = CliRunner().invoke(main, ["verify", str(trained_mcu["mcu_m0"]), "--target", "cortex-a"])
    assert result.exit_code == 1 and "needs --arch aarch64 or --arch armv7" in result.output


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
                     "-pedantic -fopenmp", ldflags="-fopenmp", arch=arch, threads=n, tree_name=f"t{n}")
               for n in (1, 4)]
    expected = reference.run(graph, inputs).numpy()
    for got in outputs:
        assert np.array_equal(got.view(np.int32), expected.view(np.int32))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("model", ["resnet20", "vgg_small"])
def test_cifar_zoo_models_under_qemu_user(arch, model, cifar_dir, tmp_path):
    from irnet_edge.data import get_dataset_info
    from irnet_edge.nn import zoo_spec

    from .helpers import briefly_trained

    train_set = load_split("cifar10", "train", cifar_dir)
    test = load_split("cifar10", "test", cifar_dir)
    info = get_dataset_info("cifar10")
    ckpt = briefly_trained(zoo_spec(model, 3, 32, 10, info.mean, info.std), train_set.images[:2048],
                           train_set.labels[:2048], tmp_path / "m.pt", steps=10)
    result = verify(export(ckpt), model, ckpt.sha256, test.images[:4].permute(0, 2, 3, 1).contiguous(), arch=arch)
    assert result.exact == result.samples == 4
