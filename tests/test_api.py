"""The Python API (irnet_edge.convert / CompiledModel) and the README's Python examples."""
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import irnet_edge
from irnet_edge.data import load_split
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.nn import InputNorm, IRConv2d, IRLinear, zoo_spec

from .conftest import REPO
from .helpers import calibrate, calibrated, checkpoint_of


@pytest.fixture(scope="module")
def mnist_test(mnist_dir):
    return load_split("mnist", "test", mnist_dir)


@pytest.fixture(scope="module")
def ckpt_path(mnist_test, tmp_path_factory):
    path = tmp_path_factory.mktemp("api") / "model.pt"
    calibrated(zoo_spec("mcu_m0", 1, 28, 10, [0.1307], [0.3081]), None, mnist_test.images[:512], "mnist", path)
    return path


@pytest.fixture(scope="module")
def model(ckpt_path):
    return irnet_edge.convert(ckpt_path)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype == np.float32 and (a.view(np.int32) == b.view(np.int32)).all()


def test_import_is_light():
    code = ("import sys, irnet_edge; assert 'torch' not in sys.modules; irnet_edge.convert; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "True"  # torch only once the API is used


def test_convert_checkpoint_properties_and_summary(model, ckpt_path):
    assert (model.name, model.input_shape, model.num_classes) == ("mcu_m0", (1, 28, 28), 10)
    assert model.prefix == "mcu_m0"
    assert model.arena_bytes > 0 and model.weight_bytes > 20_000
    summary = model.summary()
    assert summary.splitlines()[0] == "mcu_m0: input 1x28x28, 10 classes"
    assert "binary share of MACs" in summary
    renamed = irnet_edge.convert(str(ckpt_path), name="digits", input_shape=(1, 28, 28))
    assert (renamed.name, renamed.prefix) == ("digits", "digits")
    assert renamed.checkpoint.sha256 == model.checkpoint.sha256


def test_predict_both_layouts_bit_identical_to_reference(model, mnist_test):
    images = mnist_test.images[:200]  # uint8 (N, 1, 28, 28)
    nhwc = images.permute(0, 2, 3, 1).contiguous()
    expected = model.reference(nhwc)
    assert expected.shape == (200, 10) and expected.dtype == np.float32
    for x in (nhwc, nhwc.numpy(), images.float() / 255, (images.double() / 255).numpy()):
        assert _same_bits(model.predict(x), expected)
        assert _same_bits(model.reference(x), expected)
    assert len(set(expected.argmax(1).tolist())) > 1  # real, varied logits


def test_convert_module_uses_its_statistics(mnist_test, tmp_path):
    net = nn.Sequential(InputNorm([0.1307], [0.3081]), nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8),
                        nn.Hardtanh(), IRConv2d(8, 16, 3, padding=1), nn.MaxPool2d(2), nn.BatchNorm2d(16),
                        nn.Hardtanh(), nn.Flatten(), IRLinear(16 * 14 * 14, 10))
    calibrate(net, mnist_test.images[:256], torch.Generator().manual_seed(1))
    for bn in (net[2], net[6]):
        bn.momentum = 0.1  # calibrate's cumulative average (None) is not a deployable spec
    net.train()  # convert must neither need eval mode nor change the statistics
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(IrnetEdgeError, match="input_shape"):
        irnet_edge.convert(net)
    model = irnet_edge.convert(net, input_shape=(1, 28, 28), name="mynet")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert (model.name, model.input_shape, model.num_classes) == ("mynet", (1, 28, 28), 10)
    assert len(model.checkpoint.sha256) == 64
    x = mnist_test.images[:64].float() / 255
    got = model.predict(x)
    assert _same_bits(got, model.reference(x))
    # the same function as a checkpoint of the same weights
    from irnet_edge.nn import spec_from_module

    ckpt = checkpoint_of(net, spec_from_module(net, (1, 28, 28), "mynet"), "mnist", tmp_path / "m.pt")
    assert _same_bits(irnet_edge.convert(ckpt).reference(x), got)
    with torch.no_grad():  # and the module's own forward agrees on the class of most inputs
        own = net.eval()(x).argmax(1).numpy()
    assert (own == got.argmax(1)).mean() > 0.9


def test_save_writes_a_tree_that_builds(model, mnist_test, tmp_path):
    out = tmp_path / "generated"
    manifest = model.save(out, selftest_input=mnist_test.images[3].float() / 255)
    assert (manifest["arena_bytes"], manifest["weight_bytes"]) == (model.arena_bytes, model.weight_bytes)
    assert (out / "manifest.json").is_file() and (out / "src" / "mcu_m0.h").is_file()
    build = subprocess.run(["make", "-C", str(out)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    selftest = subprocess.run([str(out / "mcu_m0_run"), "--selftest"], capture_output=True, text=True)
    assert selftest.returncode == 0, selftest.stdout + selftest.stderr
    with pytest.raises(IrnetEdgeError, match="not empty"):
        model.save(out)
    manifest = model.save(out, prefix="digits", force=True)
    assert manifest["prefix"] == "digits" and (out / "src" / "digits.h").is_file()


def test_verify_host_all_exact(model, mnist_test):
    result = model.verify(mnist_test.images[:50].permute(0, 2, 3, 1).numpy())
    assert (result.samples, result.exact, result.first_bad) == (50, 50, None)



def test_verify_emulated_targets_and_bench(model, mnist_test):
    x = mnist_test.images[:4].float() / 255
    for options in ({"target": "cortex-m", "board": "mps2-an386"}, {"target": "cortex-a", "isa": "aarch64"}):
        result = model.verify(x, **options)
        assert (result.samples, result.exact) == (4, 4), options
    bench = model.bench(target="host").to_json()
    assert bench["schema"].startswith("irnet-edge-bench/") and bench["model"] == "mcu_m0"

def test_a_plain_pytorch_residual_module_converts_and_runs_bit_exact(mnist_test, mnist_dir):
    """Not an nn.Sequential: torch.fx traces it (irnet_edge.nn.trace) and convert keeps its weights."""
    from torch.nn import functional as F

    from irnet_edge.nn import InputNorm, IRConv2d

    class Block(nn.Module):
        def __init__(self, c):
            super().__init__()
            self.conv, self.bn = IRConv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

        def forward(self, x):
            return F.hardtanh(self.bn(self.conv(x)) + x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.norm, self.stem = InputNorm([0.1307], [0.3081]), nn.Conv2d(1, 8, 3, padding=1)
            self.bn, self.blocks, self.fc = nn.BatchNorm2d(8), nn.Sequential(Block(8), Block(8)), nn.Linear(8, 10)

        def forward(self, x):
            x = self.blocks(F.hardtanh(self.bn(self.stem(self.norm(x)))))
            return self.fc(F.adaptive_avg_pool2d(x, 1).view(x.size(0), -1))

    torch.manual_seed(3)
    net = Net().eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    x = mnist_test.images[:8].float() / 255
    compiled = irnet_edge.convert(net, input_shape=(1, 28, 28), name="resnet_mini", dataset="mnist")
    with torch.no_grad():
        expected = net(x).numpy()
    assert np.abs(compiled.reference(x) - expected).max() < 1e-3  # the deployed arithmetic folds BatchNorm
    assert (compiled.predict(x).view(np.int32) == compiled.reference(x).view(np.int32)).all()
    assert compiled.verify(x).exact == 8
    assert compiled.verify(samples=4, data_dir=mnist_dir).exact == 4  # its dataset's own test images


NHWC = np.zeros((2, 28, 28, 1), np.uint8)
NCHW = np.zeros((2, 1, 28, 28), np.float32)


@pytest.mark.parametrize("x, message", [
    (NHWC.transpose(0, 3, 1, 2), "must be NHWC.*NCHW\\?"),
    (NCHW.transpose(0, 2, 3, 1), "must be NCHW.*NHWC\\?"),
    (NHWC[0], "must be NHWC"),
    (np.zeros((2, 28, 28, 3), np.uint8), "must be NHWC"),
    (NHWC.astype(np.int64), "dtype int64"),
    (torch.zeros(2, 1, 28, 28, dtype=torch.bool), "dtype bool"),
    (NCHW + 1.5, "must lie in \\[0, 1\\]"),
    (NCHW - 0.1, "must lie in \\[0, 1\\]"),
    (np.full((2, 1, 28, 28), np.nan, np.float32), "NaN"),
    (NHWC[:0], "empty batch"),
    ([[0.0]], "numpy array or a torch tensor"),
])
def test_wrong_inputs_are_one_line_errors(model, x, message):
    for method in (model.predict, model.reference, model.verify):
        with pytest.raises(IrnetEdgeError, match=message) as info:
            method(x)
        assert "\n" not in str(info.value)


def test_wrong_arguments_are_one_line_errors(model, tmp_path):
    cases = [
        (lambda: irnet_edge.convert(tmp_path / "missing.pt"), "does not exist"),
        (lambda: irnet_edge.convert(42), "checkpoint path.*got int"),
        (lambda: irnet_edge.convert(model.checkpoint, input_shape=(3, 32, 32)), "differs from the checkpoint"),
        (lambda: irnet_edge.convert(model.checkpoint, input_shape=(1, 28)), "three positive integers"),
        (lambda: irnet_edge.convert(model.checkpoint, name=""), "non-empty string"),
        (lambda: irnet_edge.convert(nn.Sequential(nn.Linear(4, 2)), input_shape=(1, 2, 2)), "does not fit input"),
        (lambda: irnet_edge.convert(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), input_shape=(1, 2, 2)),
         "must start with input_norm"),
        (lambda: model.save(tmp_path / "a", prefix="int"), "prefix 'int' is not a valid"),
        (lambda: model.save(tmp_path / "b", target="gpu"), "unknown target"),
        (lambda: model.save(tmp_path / "c", selftest_input=NHWC), "one input"),
        (lambda: model.verify(NHWC, target="cortex-a"), "needs isa='aarch64' or isa='armv7'"),
        (lambda: model.verify(NHWC, target="cortex-a", isa="riscv"), "unknown instruction set 'riscv'"),
        (lambda: model.verify(NHWC, target="cortex-m"), "board=, one of"),
        (lambda: model.verify(NHWC, target="cortex-m", board="nope"), "unknown board"),
        (lambda: model.verify(NHWC, board="mps2-an386"), "board= applies only to target='cortex-m'"),
        (lambda: model.bench(target="host", isa="armv7"), "isa= applies only to target='cortex-a'"),
        (lambda: model.bench(target="cortex-m", board="mps2-an386", cpu="z80"), "unknown CPU 'z80'"),
        (lambda: model.bench(target="cortex-m", board="nucleo-f446re"),
         "nucleo-f446re is a real board; bench runs on an emulated one: count on mps2-an386"),
        (lambda: model.verify(target="cortex-m", board="nrf52840dk"),
         "nrf52840dk is a real board that no emulator here runs"),
        (lambda: model.bench(target="host", baseline="none"), "baseline must be True or False"),
        (lambda: model.save(None), "directory must be a path"),
        (lambda: model.firmware(tmp_path / "f", board="mps2-an386", force="no"), "force must be True or False"),
        (lambda: model.firmware(tmp_path / "g", board="mps2-an386", samples=0), "samples must be an integer from 1"),
        (lambda: model.verify(samples=0), "samples must be an integer of at least 1"),
        (lambda: model.verify(samples=-9998), "samples must be an integer of at least 1"),
        (lambda: model.verify(samples=2.7), "samples must be an integer"),
        (lambda: model.verify(NHWC, samples=1), "with inputs x, leave them out"),
        (lambda: irnet_edge.evaluate(123), "checkpoint must be a path"),
        (lambda: irnet_edge.convert(model.checkpoint, dataset="cifar10"), "trained on mnist; leave it out"),
        (lambda: irnet_edge.convert(nn.Sequential(InputNorm([0.5], [0.25]), nn.Flatten(), nn.Linear(784, 10)),
                                    input_shape=(1, 28, 28), dataset="cifar10"),
         "cifar10 has 3x32x32 images and 10 classes, the model takes 1x28x28"),
        (lambda: irnet_edge.convert(nn.Sequential(InputNorm([0.5], [0.25]), nn.Flatten(), nn.Linear(784, 10)).double(),
                                    input_shape=(1, 28, 28)), "the module's 2.weight is torch.float64"),
        (lambda: irnet_edge.evaluate(irnet_edge.convert(nn.Sequential(InputNorm([0.5], [0.25]), nn.Flatten(),
                                                                      nn.Linear(784, 10)),
                                                        input_shape=(1, 28, 28), name="lin").checkpoint),
         "^the checkpoint of 'lin' does not say which dataset"),
    ]
    for call, message in cases:
        with pytest.raises(IrnetEdgeError, match=message) as info:
            call()
        assert "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())


def test_readme_python_examples_run(mnist_dir, tmp_path, monkeypatch):
    """Every ```python block of README.md, in order, in one fresh working directory (later blocks use what
    earlier ones wrote), with the data found through IRNET_EDGE_DATA as a user's would be."""
    blocks = re.findall(r"^```python\n(.*?)^```", (REPO / "README.md").read_text(), re.S | re.M)
    assert len(blocks) >= 2 and any("irnet_edge.convert" in b for b in blocks)
    monkeypatch.setenv("IRNET_EDGE_DATA", str(mnist_dir.parent))
    monkeypatch.chdir(tmp_path)
    for i, block in enumerate(blocks):
        exec(compile(block, f"README.md python block {i}", "exec"), {"__name__": "__readme__"})
    assert (tmp_path / "generated" / "manifest.json").is_file()
