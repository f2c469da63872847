"""Importing models trained with the official IR-Net code (irnet_edge.official_import, `irnet-edge import`).

Official-layout state_dicts come from tests/official_models.py, an independent re-implementation of the official
model classes (module names, shapes and forward passes as in htqin/IR-Net), with seeded random weights and
BatchNorm statistics. Random float weights and activations are never exactly 0, so torch.sign and irnet-edge's
sign agree on them and the forward passes must match.
"""
import pytest
import torch
from click.testing import CliRunner

from irnet_edge import import_official, names
from irnet_edge.cli import main
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.nn import official
from irnet_edge.nn.checkpoint import load_checkpoint
from irnet_edge.nn.spec import build_model
from irnet_edge.nn.summary import storage_mbit, summarize
from irnet_edge.nn.zoo import zoo_spec

from .official_models import IRConv2d, official_model, randomize

CIFAR = ("resnet20", "resnet20_1w32a", "resnet18", "vgg_small")
LOG_SOFTMAX = ("resnet18", "resnet18_imagenet", "resnet34_imagenet")  # the official forward ends in LogSoftmax


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _normalized(x, spec):
    norm = spec["layers"][0]
    mean, std = (torch.tensor(norm[k]).view(1, -1, 1, 1) for k in ("mean", "std"))
    return (x - mean) / std


def _same(ours, theirs, arch):
    if arch in LOG_SOFTMAX:
        ours = torch.log_softmax(ours, 1)
    scale = theirs.abs().max().clamp(min=1.0)
    assert ((ours - theirs).abs().max() / scale).item() < 1e-5, arch
    assert torch.equal(ours.argmax(1), theirs.argmax(1)), arch


def test_names_list_the_importable_architectures():
    assert names.OFFICIAL_ARCHS == official.OFFICIAL_ARCHS
    assert set(official.OFFICIAL_ARCHS) <= set(names.ARCHS)


@pytest.mark.parametrize("arch", CIFAR)
def test_imported_model_computes_the_official_forward(arch):
    theirs = randomize(official_model(arch), seed=1)
    state = {f"module.{k}": v for k, v in theirs.state_dict().items()}  # as DataParallel saves it
    ckpt = import_official(state, arch)
    assert ckpt.config["dataset"] == "cifar10" and ckpt.spec["name"] == arch
    x = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        _same(ckpt.build()(x), theirs(_normalized(x, ckpt.spec)), arch)


@pytest.mark.parametrize("arch", ("resnet20", "vgg_small"))
def test_exported_reference_agrees_with_the_official_forward(arch):
    from irnet_edge.api import convert

    theirs = randomize(official_model(arch), seed=2)
    ckpt = import_official(theirs.state_dict(), arch)
    pixels = torch.randint(0, 256, (24, 32, 32, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(4))
    reference = torch.from_numpy(convert(ckpt).reference(pixels))
    with torch.no_grad():
        expected = theirs(_normalized(pixels.permute(0, 3, 1, 2).float() / 255, ckpt.spec))
    # the reference folds BatchNorm into integer thresholds: random weights leave a few near-ties
    assert (reference.argmax(1) == expected.argmax(1)).float().mean().item() >= 0.9


@pytest.mark.parametrize("arch", ("resnet18_imagenet", "resnet34_imagenet"))
def test_imagenet_import_computes_the_official_forward(arch):
    theirs = randomize(official_model(arch), seed=5)
    state = theirs.state_dict()
    assert any(k.startswith("bn3.") for k in state)  # defined by the official class, unused by its forward
    ckpt = import_official(state, arch)
    assert ckpt.spec["input"] == {"channels": 3, "height": 224, "width": 224} and ckpt.spec["num_classes"] == 1000
    assert "dataset" not in ckpt.config  # nothing here to test it on
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        _same(ckpt.build()(x), theirs(_normalized(x, ckpt.spec)), arch)


def test_imagenet_import_exports_and_its_reference_agrees():
    from irnet_edge.api import convert

    theirs = randomize(official_model("resnet18_imagenet"), seed=5)
    ckpt = import_official(theirs.state_dict(), "resnet18_imagenet")
    pixels = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    reference = torch.from_numpy(convert(ckpt).reference(pixels))
    with torch.no_grad():
        expected = theirs(_normalized(pixels.permute(0, 3, 1, 2).float() / 255, ckpt.spec))
    assert torch.equal(reference.argmax(1), expected.argmax(1))


def test_imagenet_zoo_storage_matches_the_paper():
    r18 = storage_mbit(summarize(build_model(zoo_spec("resnet18_imagenet")), (3, 224, 224)))
    assert round(r18["float32"], 1) == 374.1  # the paper's full-precision ResNet-18
    assert 33.5 <= r18["binary"] <= 33.7 and 33.3 <= r18["deployed"] <= 33.7  # the paper: 33.7 Mbit, 11.1x
    r34 = storage_mbit(summarize(build_model(zoo_spec("resnet34_imagenet")), (3, 224, 224)))
    assert 697 <= r34["float32"] <= 698 and 43.5 <= r34["binary"] <= 44.0  # 21.8 M parameters; 21.1 M binary


def test_imagenet_networks_take_only_imagenet_inputs(tmp_path):
    with pytest.raises(IrnetEdgeError, match=r"resnet18_imagenet is the paper's ImageNet network \(3x224x224"):
        zoo_spec("resnet18_imagenet", 3, 32, 10, [0.5] * 3, [0.25] * 3)
    out = tmp_path / "run"
    result = _run("train", "--arch", "resnet34_imagenet", "--dataset", "cifar10", "--out", out)
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert result.output.startswith("Error: resnet34_imagenet is the paper's ImageNet network (3x224x224 input, "
                                    "1000 classes) and cannot take cifar10 (3x32x32, 10 classes)")
    assert "irnet-edge import" in result.output and not out.exists()


def test_cli_imports_every_form_of_official_file(tmp_path):
    theirs = randomize(official_model("resnet20"), seed=7)
    state = theirs.state_dict()
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}  # PyTorch 0.4.0
    forms = {"plain.th": state, "parallel.th": {f"module.{k}": v for k, v in state.items()},
             "trainer.th": {"state_dict": {f"module.{k}": v for k, v in state.items()}, "best_prec1": 86.5,
                            "epoch": 400},
             "old.th": old}
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(8))
    for name, content in forms.items():
        source, out = tmp_path / name, tmp_path / f"{name}.pt"
        torch.save(content, source, _use_new_zipfile_serialization=name != "old.th")  # PyTorch < 1.6: legacy
        result = _run("import", source, "--arch", "resnet20", "--out", out)
        assert result.exit_code == 0, result.output
        assert f"wrote {out}" in result.output and "sign(0) = 0" in result.output
        ckpt = load_checkpoint(out)
        assert ckpt.config["imported_from"]["code"] == "htqin/IR-Net"
        with torch.no_grad():
            _same(ckpt.build()(x), theirs(_normalized(x, ckpt.spec)), "resnet20")
    assert int(load_checkpoint(tmp_path / "old.th.pt").state_dict["2.num_batches_tracked"]) == 0  # bn1
    result = _run("summary", tmp_path / "plain.th.pt")
    assert result.exit_code == 0 and "storage: float32 model" in result.output, result.output


class _Code:
    """Pickled as a global: weights_only=True refuses it."""


def _bad_inputs(tmp_path):
    state = randomize(official_model("resnet20"), seed=9).state_dict()
    missing = dict(state)
    del missing["layer2.1.bn1.running_var"]
    extra = dict(state, **{"layer9.0.conv1.weight": torch.zeros(3)})
    shaped = dict(state, **{"linear.weight": torch.zeros(100, 64)})
    nan = dict(state, **{"bn1.weight": torch.full((16,), float("nan"))})
    files = {"missing": missing, "extra": extra, "shaped": shaped, "nan": nan, "tensor": torch.zeros(3),
             "list": [state], "code": {"state_dict": state, "args": _Code()}}
    expected = {"missing": "lacks 'layer2.1.bn1.running_var'",
                "extra": "has 'layer9.0.conv1.weight', which the official model does not",
                "shaped": "entry 'linear.weight' has shape (100, 64), the official model's is (10, 64)",
                "nan": "entry 'bn1.weight' holds 16 non-finite value(s)",
                "tensor": "is Tensor, not a state_dict of the official IR-Net model",
                "list": "is list, not a state_dict",
                "code": "holds objects that could run code (the class tests.test_official_import._Code)"}
    for name, content in files.items():
        torch.save(content, tmp_path / f"{name}.th")
    (tmp_path / "garbage.th").write_bytes(b"not a torch file at all")
    expected["garbage"] = "is not a readable PyTorch file"
    expected["absent"] = "does not exist"
    return expected


def test_bad_files_are_one_error_line_and_write_nothing(tmp_path):
    expected = _bad_inputs(tmp_path)
    for name, message in expected.items():
        out = tmp_path / f"{name}.pt"
        result = _run("import", tmp_path / f"{name}.th", "--arch", "resnet20", "--out", out)
        assert result.exit_code == 1, (name, result.output)
        assert result.output.startswith("Error: ") and result.output.count("\n") == 1, (name, result.output)
        assert message in result.output, (name, result.output)
        assert not out.exists(), name
        if name == "nan":  # the layout is right: another --arch would not help
            assert "pass --arch" not in result.output, result.output
    assert not [p for p in tmp_path.iterdir() if p.suffix == ".pt" or ".tmp" in p.name]


def test_wrong_architecture_is_named_with_the_one_that_fits(tmp_path):
    source = tmp_path / "vgg.th"
    torch.save(randomize(official_model("vgg_small"), seed=10).state_dict(), source)
    result = _run("import", source, "--arch", "resnet18", "--out", tmp_path / "m.pt")
    assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
    assert "does not fit the official resnet18 (CIFAR-10/ResNet18/resnet.py ResNet18())" in result.output
    assert "lacks 'layer1.0.conv1.weight'" in result.output and "pass --arch vgg_small" in result.output
    assert not (tmp_path / "m.pt").exists()
    # the ImageNet nets take no --dataset, a CIFAR net's input follows it (and its weights must fit it)
    result = _run("import", source, "--arch", "resnet18_imagenet", "--dataset", "cifar10", "--out", tmp_path / "m.pt")
    assert result.exit_code == 1 and "applies to the CIFAR architectures only" in result.output
    result = _run("import", source, "--arch", "vgg_small", "--dataset", "mnist", "--out", tmp_path / "m.pt")
    assert result.exit_code == 1 and "entry 'conv0.weight' has shape (128, 3, 3, 3)" in result.output
    assert not (tmp_path / "m.pt").exists()


def test_existing_output_needs_force(tmp_path):
    source, out = tmp_path / "r20.th", tmp_path / "m.pt"
    torch.save(randomize(official_model("resnet20"), seed=11).state_dict(), source)
    out.write_bytes(b"keep")
    result = _run("import", source, "--arch", "resnet20", "--out", out)
    assert result.exit_code == 1 and "already exists; pass --force" in result.output and out.read_bytes() == b"keep"
    assert _run("import", source, "--arch", "resnet20", "--out", out, "--force").exit_code == 0
    load_checkpoint(out)


def test_official_sign_of_zero_differs_from_the_deployed_one():
    """The documented difference: torch.sign(0) = 0 drops a tap, irnet-edge's +1 keeps it."""
    from irnet_edge.nn import IRConv2d as OursConv

    theirs = IRConv2d(2, 1, 1, bias=False)
    ours = OursConv(2, 1, 1)
    with torch.no_grad():
        theirs.weight.copy_(torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
        ours.weight.copy_(theirs.weight)
        x = torch.tensor([0.0, -0.5]).view(1, 2, 1, 1)  # the first activation is exactly 0
        # official: s * (0 * 1 + (-1)(-1)) = s; ours: s * ((+1)(1) + (-1)(-1)) = 2s (s: the Libra-PB scale)
        assert theirs(x).item() > 0 and ours(x).item() == 2 * theirs(x).item()
        x = torch.tensor([0.25, -0.5]).view(1, 2, 1, 1)  # no zero: the same
        assert ours(x).item() == theirs(x).item()
