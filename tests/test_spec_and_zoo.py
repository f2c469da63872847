import pytest
import torch
from torch import nn

from irnet_edge.data import get_dataset_info
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.nn import ARCHS, IRConv2d, build_model, spec_from_module, zoo_spec
from irnet_edge.nn.layers import IRLinear, Residual
from irnet_edge.nn.spec import complete_spec
from irnet_edge.nn.summary import format_summary, summarize

SHAPES = {"mcu_m4": (1, 28), "mcu_m0": (1, 28), "resnet20": (3, 32), "resnet20_1w32a": (3, 32),
          "vgg_small": (3, 32), "resnet18": (3, 32), "resnet18_imagenet": (3, 224), "resnet34_imagenet": (3, 224)}
CLASSES = {"resnet18_imagenet": 1000, "resnet34_imagenet": 1000}  # the ImageNet networks' input is fixed


def _spec(arch):
    if ARCHS[arch].fixed_input is not None:
        return zoo_spec(arch)
    c, s = SHAPES[arch]
    return zoo_spec(arch, c, s, 10, [0.5] * c, [0.25] * c)


@pytest.mark.parametrize("arch", list(ARCHS))
def test_zoo_spec_round_trips_and_gives_logits(arch):
    spec = _spec(arch)
    model = build_model(spec)
    c, s = SHAPES[arch]
    assert model.eval()(torch.rand(2, c, s, s)).shape == (2, CLASSES.get(arch, 10))
    assert spec_from_module(model, (c, s, s), arch) == spec
    assert list(build_model(spec).state_dict()) == list(model.state_dict())


def _count(model, kind):
    return sum(1 for m in model.modules() if type(m) is kind)


def test_zoo_models_are_faithful_to_the_official_layouts():
    r20 = build_model(_spec("resnet20"))
    assert _count(r20, IRConv2d) == 18 and _count(r20, nn.Conv2d) == 1  # every conv but the stem is binary
    assert sum(p.numel() for p in r20.parameters()) == pytest.approx(270_000, rel=0.03)
    vgg = build_model(_spec("vgg_small"))
    assert _count(vgg, IRConv2d) == 5 and vgg[-1].in_features == 8192
    r18 = build_model(_spec("resnet18"))
    assert _count(r18, IRConv2d) == 16 and _count(r18, nn.Conv2d) == 4  # stem + three 1x1 downsamples
    w32a = build_model(_spec("resnet20_1w32a"))
    assert all(not m.binary_act for m in w32a.modules() if isinstance(m, IRConv2d))
    for arch, blocks in (("resnet18_imagenet", 8), ("resnet34_imagenet", 16)):  # Bi-Real: a shortcut per conv
        net = build_model(_spec(arch))
        stem, pool = net[1], net[4]
        assert (stem.kernel_size, stem.stride, stem.padding) == ((7, 7), (2, 2), (3, 3))
        assert (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)
        assert _count(net, IRConv2d) == 2 * blocks and _count(net, nn.Conv2d) == 4  # stem + three 1x1 downsamples
        assert _count(net, Residual) == 2 * blocks and net[-1].out_features == 1000


def test_first_conv_and_last_fc_stay_full_precision():
    for arch in ARCHS:
        layers = [m for m in build_model(_spec(arch)).modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        assert type(layers[0]) is nn.Conv2d and type(layers[-1]) is nn.Linear, arch


def _bits(rows):
    return sum(r.binary_params for r in rows) / 8 + sum(r.float_params for r in rows) * 4


def test_mcu_model_weights_leave_room_in_their_boards_flash():
    m4 = summarize(build_model(_spec("mcu_m4")), (1, 28, 28))
    m0 = summarize(build_model(_spec("mcu_m0")), (1, 28, 28))
    assert sum(r.deployed_bytes for r in m4) < 256 * 1024 / 2
    assert sum(r.deployed_bytes for r in m0) < 128 * 1024 / 2
    assert _bits(m0) < _bits(m4)


def test_summary_counts_binary_macs():
    rows = summarize(build_model(_spec("resnet20")), (3, 32, 32))
    binary = sum(r.binary_macs for r in rows)
    floats = sum(r.float_macs for r in rows)
    assert binary == 16 * 16 * 9 * 32 * 32 * 6 + (16 * 32 * 9 + 32 * 32 * 9 * 5) * 16 * 16 + (
        32 * 64 * 9 + 64 * 64 * 9 * 5) * 8 * 8
    assert floats == 3 * 16 * 9 * 32 * 32 + 64 * 10
    text = format_summary(rows, "resnet20")
    assert "binary share of MACs: 98.9" in text and "total" in text


def test_custom_sequential_round_trips():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.Hardtanh(),
                          IRConv2d(8, 16, 3, padding=1, padding_value="one"), nn.MaxPool2d(2),
                          nn.BatchNorm2d(16), nn.Flatten(), IRLinear(16 * 14 * 14, 32), nn.BatchNorm1d(32),
                          nn.Linear(32, 10))
    spec = spec_from_module(model, (1, 28, 28), "mine")
    assert spec["num_classes"] == 10
    rebuilt = build_model(spec)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(3, 1, 28, 28)
    assert torch.equal(rebuilt.eval()(x), model.eval()(x))


def test_unsupported_layers_are_named():
    with pytest.raises(IrnetEdgeError, match="GELU cannot be saved as a spec; supported: input_norm"):
        spec_from_module(nn.Sequential(nn.Flatten(), nn.GELU(), nn.Linear(4, 2)), (1, 2, 2))
    with pytest.raises(IrnetEdgeError, match="only square"):
        spec_from_module(nn.Sequential(nn.Conv2d(1, 2, (1, 3)), nn.Flatten()), (1, 4, 4))
    with pytest.raises(IrnetEdgeError, match="unknown layer type 'lstm'"):
        build_model({"format": 1, "layers": [{"type": "lstm"}]})


def test_hand_written_spec_is_completed_from_the_dataset():
    spec = complete_spec({"name": "tiny", "layers": [
        {"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, "stride": 2, "padding": 1,
         "bias": False},
        {"type": "batchnorm2d", "num_features": 4, "eps": 1e-5}, {"type": "flatten"},
        {"type": "irlinear", "in_features": 784, "out_features": 10, "bias": False, "binary_act": True}]},
        get_dataset_info("mnist"))
    assert spec["layers"][0] == {"type": "input_norm", "mean": [0.1307], "std": [0.3081]}
    assert spec["input"] == {"channels": 1, "height": 28, "width": 28} and spec["num_classes"] == 10
    with pytest.raises(IrnetEdgeError, match="does not fit input"):
        complete_spec({"layers": [{"type": "flatten"}, {"type": "linear", "in_features": 5, "out_features": 10,
                                                         "bias": True}]}, get_dataset_info("mnist"))
