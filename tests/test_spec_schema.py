"""The model-spec schema (irnet_edge/nn/schema.py): strict fields, one-line errors naming layer and field,
the rules deployment needs checked before training, and docs/spec.md generated from it."""
import copy
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from torch import nn

from irnet_edge.cli import main
from irnet_edge.data import get_dataset_info
from irnet_edge.errors import IrnetEdgeError
from irnet_edge.nn import ARCHS, IRConv2d, build_model, spec_from_module, zoo_spec
from irnet_edge.nn.layers import InputNorm, IRLinear, Residual
from irnet_edge.nn.schema import check_rules, markdown, to_dict, validate_layers, validate_spec
from irnet_edge.nn.spec import complete_spec

from .conftest import REPO

CASES = REPO.parent / "shared" / "cases" / "2026-11-29"
MNIST = get_dataset_info("mnist")

# what the one Error line of each case must say
EXPECTED = {
    "spec_channels_string.json": ["layer 0 (conv2d)", "out_channels must be an integer >= 1", 'not the string "8"'],
    "spec_ignored_fields.json": ["layer 3 (irconv2d)", "dilation must be 1", "groups must be 1",
                                 'bias must be true or false, not the string "false"'],
    "spec_input_mismatch.json": ["1x27x27", "1x28x28"],
    "spec_layer_is_string.json": ["layer 2 is a string, not an object"],
    "spec_padding_same.json": ["layer 3 (irconv2d)", 'padding must be an integer >= 0 ("same" is not supported)'],
    "spec_padding_value_typo.json": ["layer 3 (irconv2d)", 'padding_value must be "zero" or "one"',
                                     'did you mean "one"?'],
    "spec_relu_before_binary.json": ["layer 4 (irconv2d)", "layer 2 (relu)", "always +1"],
}
# case files that were refused and are now exported (issue 12: overlapping pooling), trained and verified below
ACCEPTED = ["spec_overlapping_pool.json"]


def test_every_case_file_has_an_expectation():
    assert sorted(p.name for p in CASES.glob("*.json")) == sorted([*EXPECTED, *ACCEPTED])


def test_overlapping_pool_case_trains_exports_and_is_bit_exact(mnist_dir, tmp_path):
    """Its 3x3 stride-2 max-pool between a hardtanh and a binary conv runs on bits (irnet_maxpool2d_bits)."""
    from irnet_edge.ir import export
    from irnet_edge.nn.checkpoint import load_checkpoint
    from irnet_edge.verify.compare import agreement
    from irnet_edge.verify.host import verify

    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", "--spec", str(CASES / "spec_overlapping_pool.json"), "--dataset",
                                       "mnist", "--data-dir", str(mnist_dir), "--epochs", "1", "--train-limit",
                                       "512", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(out / "model.pt")
    graph = export(ckpt)
    pools = [op for op in graph.ops if op.kind.startswith("maxpool")]
    assert [(op.kind, op.attrs) for op in pools] == [("maxpool_bits", {"k": 3, "stride": 2, "pad": 0})]
    assert graph.tensor(pools[0].output).describe() == "bits 13x13x32"
    from irnet_edge.data import load_split

    test = load_split("mnist", "test", mnist_dir)
    top1, _ = agreement(ckpt, graph, test.images[:500])
    assert top1 >= 0.999
    inputs = test.images[:20].permute(0, 2, 3, 1).contiguous()
    assert verify(graph, "stem_pool", ckpt.sha256, inputs).exact == 20


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_case_files_are_refused_with_one_error_line_and_nothing_written(name, mnist_dir, tmp_path):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", "--spec", str(CASES / name), "--dataset", "mnist", "--data-dir",
                                       str(mnist_dir), "--epochs", "1", "--train-limit", "256", "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for text in EXPECTED[name]:
        assert text in lines[0], lines[0]
    assert not out.exists()


# -- field errors ----------------------------------------------------------------------------------------------------

def _conv(**fields):
    return {"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3, **fields}


def _error(layers) -> str:
    with pytest.raises(IrnetEdgeError) as info:
        validate_layers(layers)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_unknown_field_names_the_closest_one():
    assert "layer 0 (conv2d): kernal_size: unknown field, did you mean kernel_size?" in _error(
        [{"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernal_size": 3}])
    assert "wibble: unknown field, the fields are" in _error([_conv(wibble=1)])


def test_fields_are_strict():
    assert 'stride must be an integer >= 1, not the string "2" (write 2 without quotes)' in _error([_conv(stride="2")])
    assert "stride must be an integer >= 1, not true" in _error([_conv(stride=True)])
    assert "stride must be an integer >= 1, not 2.0" in _error([_conv(stride=2.0)])
    assert "padding must be an integer >= 0, not -1" in _error([_conv(padding=-1)])
    assert 'bias must be true or false, not the string "false"' in _error([_conv(bias="false")])
    assert "bias must be true or false, not 0" in _error([_conv(bias=0)])
    assert "kernel_size is missing (an integer >= 1)" in _error([{"type": "conv2d", "in_channels": 1,
                                                                  "out_channels": 4}])


def test_unknown_or_missing_type_and_non_objects():
    assert "layer 0: unknown layer type 'conv' (did you mean 'conv2d'?)" in _error([{"type": "conv"}])
    assert 'layer 1 has no "type"' in _error([_conv(), {"kernel_size": 3}])
    assert "layer 1 is a list, not an object" in _error([_conv(), []])
    with pytest.raises(IrnetEdgeError, match='"layers" must be a list'):
        validate_layers({"type": "relu"})


def test_nested_layers_are_named_by_their_path():
    residual = {"type": "residual", "body": [{"type": "relu"}, _conv(padding="same")]}
    assert "layer 1.body.1 (conv2d): padding must be" in _error([{"type": "relu"}, residual])


def test_values_that_are_not_supported_say_what_is():
    bn = {"type": "batchnorm2d", "num_features": 4}
    assert "eps must be a number > 0, not 0" in _error([{**bn, "eps": 0}])
    assert "eps must be a number > 0, not -1e-05" in _error([{**bn, "eps": -1e-5}])
    assert "momentum must be a number in (0, 1]" in _error([{**bn, "momentum": 1.5}])
    assert "layer 0 (hardtanh): min_val must be -1, not -2" in _error([{"type": "hardtanh", "min_val": -2}])
    assert "ceil_mode must be false, not true" in _error([{"type": "maxpool2d", "kernel_size": 2,
                                                          "ceil_mode": True}])
    assert "std[1] must be a number > 0, not 0" in _error([{"type": "input_norm", "mean": [0, 0],
                                                           "std": [1, 0]}])


def test_binary_filters_need_two_weights():
    assert "at least 2 weights" in _error([{"type": "irconv2d", "in_channels": 1, "out_channels": 4,
                                            "kernel_size": 1}])
    assert "at least 2 weights" in _error([{"type": "irlinear", "in_features": 1, "out_features": 4}])
    assert 'padding_value "one" needs binary activations' in _error(
        [{"type": "irconv2d", "in_channels": 2, "out_channels": 4, "kernel_size": 3, "binary_act": False,
          "padding_value": "one"}])


def test_several_faults_are_all_named_on_one_line():
    message = _error([_conv(stride="2"), {"type": "batchnorm2d", "num_features": 4, "eps": 0}])
    assert "layer 0 (conv2d): stride" in message and "layer 1 (batchnorm2d): eps" in message


def test_checkpoint_specs_are_checked_by_build_model():
    spec = zoo_spec("mcu_m0", 1, 28, 10, [0.5], [0.25])
    bad = copy.deepcopy(spec)
    bad["layers"][5]["padding"] = "1"
    with pytest.raises(IrnetEdgeError, match=r"layer 5 \(irconv2d\): padding must be an integer >= 0"):
        build_model(bad)


# -- fields PyTorch has: carried or refused, never dropped ----------------------------------------------------------

@pytest.mark.parametrize("module, message", [
    (nn.Conv2d(2, 4, 3, groups=2), "groups must be 1, not 2: grouped convolution is not supported"),
    (nn.Conv2d(2, 4, 3, dilation=2), "dilation must be 1, not 2: dilated convolution is not supported"),
    (nn.Conv2d(2, 4, 3, padding="same"), 'padding must be an integer >= 0 ("same" is not supported)'),
    (nn.Conv2d(2, 4, 3, padding_mode="reflect"), 'padding_mode must be "zeros", not "reflect"'),
    (IRConv2d(2, 4, 3), None),
    (nn.MaxPool2d(2, ceil_mode=True), "ceil_mode must be false"),
    (nn.MaxPool2d(2, padding=2), "padding must be at most kernel_size / 2 (1 for kernel_size 2), not 2"),
    (nn.MaxPool2d(3, 2, padding=1), None),
    (nn.AvgPool2d(3, 2, padding=1, count_include_pad=False, divisor_override=4), None),
    (nn.AvgPool2d(2, ceil_mode=True), "ceil_mode must be false, not true"),
    (nn.AvgPool2d(3, padding=2), "padding must be at most kernel_size / 2 (1 for kernel_size 3), not 2"),
    (nn.MaxPool2d(2, dilation=2), "dilation must be 1, not 2"),
    (nn.Hardtanh(0, 1), "min_val must be -1, not 0"),
    (nn.Hardtanh(-1, 2), "max_val must be 1, not 2"),
    (nn.BatchNorm2d(2, momentum=None), "momentum must be a number in (0, 1]"),
    (nn.BatchNorm2d(2, track_running_stats=False), "track_running_stats must be true, not false"),
])
def test_python_route_refuses_what_the_spec_cannot_carry(module, message):
    model = nn.Sequential(InputNorm([0.5, 0.5], [0.25, 0.25]), module)
    if message is None:
        with pytest.raises(IrnetEdgeError, match="class logits"):  # accepted by the schema, the rest is shape
            spec_from_module(model, (2, 8, 8))
        return
    with pytest.raises(IrnetEdgeError) as info:
        spec_from_module(model, (2, 8, 8))
    assert "layer 1 (" in str(info.value)
    assert message in str(info.value)


def test_json_route_refuses_groups_and_dilation_too():
    assert "groups must be 1, not 4" in _error([_conv(groups=4)])
    assert "dilation must be 1, not 2" in _error([_conv(dilation=2)])
    spec = to_dict(validate_layers([_conv(groups=1, dilation=1)])[0])
    assert "groups" not in spec and "dilation" not in spec  # defaults stay out of the canonical form


def _bn_model():
    return nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4, affine=False),
                         nn.Hardtanh(), IRConv2d(4, 8, 3, padding=1), nn.MaxPool2d(2),
                         nn.BatchNorm2d(8, momentum=0.3), nn.Hardtanh(), nn.Flatten(),
                         nn.BatchNorm1d(8 * 14 * 14, affine=False, momentum=0.05), nn.Linear(8 * 14 * 14, 10))


def test_batchnorm_affine_and_momentum_round_trip():
    model = _bn_model()
    spec = spec_from_module(model, (1, 28, 28), "bn")
    bn_nodes = [node for node in spec["layers"] if node["type"].startswith("batchnorm")]
    assert bn_nodes[0] == {"type": "batchnorm2d", "num_features": 4, "eps": 1e-5, "affine": False}
    assert bn_nodes[1] == {"type": "batchnorm2d", "num_features": 8, "eps": 1e-5, "momentum": 0.3}
    assert bn_nodes[2] == {"type": "batchnorm1d", "num_features": 1568, "eps": 1e-5, "momentum": 0.05,
                           "affine": False}
    rebuilt = build_model(spec)
    assert (rebuilt[2].affine, rebuilt[6].momentum, rebuilt[9].momentum) == (False, 0.3, 0.05)
    assert list(rebuilt.state_dict()) == list(model.state_dict())
    assert "2.weight" not in rebuilt.state_dict() and "2.running_mean" in rebuilt.state_dict()
    assert spec_from_module(rebuilt, (1, 28, 28), "bn") == spec
    # the JSON route carries them as well
    assert complete_spec({"layers": spec["layers"][1:]}, MNIST)["layers"] == spec["layers"][:0] + [
        {"type": "input_norm", "mean": [0.1307], "std": [0.3081]}] + spec["layers"][1:]


def test_batchnorm_without_affine_exports_and_matches_the_model():
    from irnet_edge.ir import export, reference
    from irnet_edge.nn.checkpoint import Checkpoint

    torch.manual_seed(1)
    model = _bn_model()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    spec = spec_from_module(model, (1, 28, 28), "bn")
    graph = export(Checkpoint(spec=spec, state_dict=model.state_dict(), ede={"k": 1.0, "t": 1.0}))
    images = torch.randint(0, 256, (16, 28, 28, 1), dtype=torch.uint8)
    logits = reference.run(graph, images)
    expected = model.eval()(images.permute(0, 3, 1, 2).float() / 255)
    assert torch.allclose(logits, expected, atol=1e-3), (logits - expected).abs().max()


# -- rules on layer sequences ---------------------------------------------------------------------------------------

def _rules(layers, channels=1, normalized=True):
    check_rules(validate_layers(layers), channels, normalized)


def _irconv(cin=4, **fields):
    return {"type": "irconv2d", "in_channels": cin, "out_channels": 4, "kernel_size": 3, "padding": 1, **fields}


RELU, HARDTANH, POOL = {"type": "relu"}, {"type": "hardtanh"}, {"type": "maxpool2d", "kernel_size": 2}
BN = {"type": "batchnorm2d", "num_features": 4}


@pytest.mark.parametrize("layers", [
    [_conv(), RELU, _irconv()],
    [_conv(), RELU, POOL, HARDTANH, _irconv()],
    [_conv(), RELU, {"type": "flatten"}, {"type": "irlinear", "in_features": 4, "out_features": 2}],
    [_conv(), RELU, {"type": "residual", "body": [_irconv()]}],
    [_conv(), {"type": "residual", "body": [_conv(in_channels=4), RELU]}, RELU, _irconv()],
])
def test_relu_before_a_binarized_layer_is_refused(layers):
    with pytest.raises(IrnetEdgeError, match=r"binarizes its input, but layer \S+ \((relu|residual)\) makes"):
        _rules(layers)


@pytest.mark.parametrize("layers", [
    [_conv(), RELU, _irconv(binary_act=False)],
    [_conv(), RELU, BN, _irconv()],
    [_conv(), RELU, {"type": "residual", "body": [_conv(in_channels=4)]}, _irconv()],
    [_conv(), HARDTANH, _irconv()],
])
def test_relu_with_something_signed_in_between_is_fine(layers):
    _rules(layers)


def test_raw_pixels_into_a_binary_layer_are_refused_on_the_python_route():
    with pytest.raises(IrnetEdgeError, match="the raw input"):
        _rules([_irconv(cin=1)], normalized=False)
    _rules([{"type": "input_norm", "mean": [0.5], "std": [0.25]}, _irconv(cin=1)], normalized=False)


def test_other_export_refusals_are_decided_from_the_spec():
    # overlapping and padded pooling are exported (issue 12); a window that could miss the map is not
    _rules([_conv(), {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 1},
            {"type": "avgpool2d", "kernel_size": 3, "stride": 1, "padding": 1}])
    assert "layer 1 (maxpool2d): padding must be at most kernel_size / 2 (1 for kernel_size 3), not 2" in _error(
        [_conv(), {"type": "maxpool2d", "kernel_size": 3, "stride": 2, "padding": 2}])
    with pytest.raises(IrnetEdgeError, match=r"layer 1 \(input_norm\): input_norm may only be the first layer"):
        _rules([_conv(), {"type": "input_norm", "mean": [0.5], "std": [0.25]}])
    with pytest.raises(IrnetEdgeError, match="mean and std have 2 values, the input has 1 channels"):
        _rules([{"type": "input_norm", "mean": [0.5, 0.5], "std": [0.25, 0.25]}])
    with pytest.raises(IrnetEdgeError, match=r"layer 0 \(sequential\): nested sequential"):
        _rules([{"type": "sequential", "layers": [_conv()]}])
    # a max-pool written as in PyTorch (stride defaults to the kernel) is fine
    assert to_dict(validate_layers([{"type": "maxpool2d", "kernel_size": 2}])[0])["stride"] == 2


def test_shape_rules_name_the_layer():
    flat = nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(),
                         nn.BatchNorm1d(2 * 28 * 28), IRLinear(2 * 28 * 28, 10))
    with pytest.raises(IrnetEdgeError, match=r"layer 3 \(batchnorm1d\) normalizes a flattened 2x28x28"):
        spec_from_module(flat, (1, 28, 28))
    wide = nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 2, 3, padding=1), nn.Flatten(), nn.Linear(48, 10))
    with pytest.raises(IrnetEdgeError, match=r"layer 3 \(linear\) follows a non-square 2x4x6"):
        spec_from_module(wide, (1, 4, 6))
    with pytest.raises(IrnetEdgeError, match=r"layer 1 \(linear\) does not fit input 784"):
        complete_spec({"layers": [{"type": "flatten"}, {"type": "linear", "in_features": 5, "out_features": 10}]},
                      MNIST)


@pytest.mark.parametrize("layers,expected", [
    ([{"type": "conv2d", "in_channels": 3, "out_channels": 4, "kernel_size": 3}],
     r"layer 0 \(conv2d\) does not fit input 1x28x28: in_channels is 3, but its input has 1 channels; set "
     r"in_channels to 1"),
    ([{"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 31, "padding": 1}],
     r"its 31x31 kernel is larger than its input with padding \(30x30\); use a smaller kernel_size"),
    ([{"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3}, {"type": "batchnorm2d",
      "num_features": 8}], r"layer 1 \(batchnorm2d\) .*num_features is 8, but its input has 4; set num_features to 4"),
    ([{"type": "flatten"}, {"type": "linear", "in_features": 5, "out_features": 10}],
     r"in_features is 5, but its input has 784 features; set in_features to 784"),
    ([{"type": "linear", "in_features": 784, "out_features": 10}],
     r"needs a flat input, but its input is a 1x28x28 feature map; put a flatten layer before it"),
    ([{"type": "flatten"}, {"type": "conv2d", "in_channels": 1, "out_channels": 4, "kernel_size": 3}],
     r"needs a C x H x W feature map, but its input is flattened \(784\); move it before the flatten"),
    ([{"type": "global_avgpool"}, {"type": "batchnorm1d", "num_features": 1}, {"type": "flatten"}],
     r"layer 1 \(batchnorm1d\) does not fit input 1x1x1: needs a flat input, .*put a flatten layer before it"),
    ([{"type": "residual", "body": [{"type": "conv2d", "in_channels": 4, "out_channels": 1, "kernel_size": 3,
                                     "padding": 1}], "shortcut": []}],
     r"layer 0 \(residual\) body layer 0 \(conv2d\) does not fit input 1x28x28: in_channels is 4, .*set "
     r"in_channels to 1"),
    ([{"type": "residual", "body": [{"type": "conv2d", "in_channels": 1, "out_channels": 2, "kernel_size": 3,
                                     "padding": 1}], "shortcut": []}],
     r"layer 0 \(residual\): its body gives 2x28x28 but its shortcut gives 1x28x28, and they are added"),
    ([{"type": "flatten"}, {"type": "residual", "body": [{"type": "linear", "in_features": 784, "out_features": 784}],
                            "shortcut": []}],
     r"layer 1 \(residual\) adds to a flattened 1x28x28 feature map, which deployment cannot export"),
])
def test_shape_errors_say_what_would_fit(layers, expected):
    """A layer whose fields do not fit its input is named with the value that would (not PyTorch's wording)."""
    with pytest.raises(IrnetEdgeError, match=expected):
        complete_spec({"layers": layers}, MNIST)


def test_declared_input_and_classes_must_match_the_dataset():
    layers = [{"type": "flatten"}, {"type": "linear", "in_features": 784, "out_features": 10}]
    with pytest.raises(IrnetEdgeError, match="input 1x27x27 is declared, but mnist images are 1x28x28"):
        complete_spec({"layers": layers, "input": {"channels": 1, "height": 27, "width": 27}}, MNIST)
    with pytest.raises(IrnetEdgeError, match="num_classes 5 is declared, but mnist has 10 classes"):
        complete_spec({"layers": layers, "num_classes": 5}, MNIST)
    with pytest.raises(IrnetEdgeError, match='input.height must be an integer >= 1, not the string "28"'):
        complete_spec({"layers": layers, "input": {"channels": 1, "height": "28", "width": 28}}, MNIST)
    spec = complete_spec({"layers": layers, "input": {"channels": 1, "height": 28, "width": 28},
                          "num_classes": 10, "format": 1}, MNIST)
    assert spec["input"] == {"channels": 1, "height": 28, "width": 28}
    with pytest.raises(IrnetEdgeError, match="a model spec is a JSON object"):
        complete_spec([], MNIST)


def test_duplicate_keys_in_a_spec_file_are_refused(tmp_path):
    path = tmp_path / "dup.json"
    path.write_text('{"layers": [{"type": "flatten", "type": "relu"}]}')
    result = CliRunner().invoke(main, ["train", "--spec", str(path), "--dataset", "mnist", "--out",
                                       str(tmp_path / "out")])
    assert result.exit_code == 1 and "type given twice in one object" in result.output, result.output
    assert str(path) in result.output


# -- the zoo and the docs -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", list(ARCHS))
def test_zoo_specs_validate_and_pass_the_rules(arch):
    if ARCHS[arch].fixed_input is not None:  # the ImageNet networks take their own input only
        spec = zoo_spec(arch, padding_value="one")
    else:
        spec = zoo_spec(arch, 3, 32, 10, [0.5] * 3, [0.25] * 3, padding_value="one")
    checked = validate_spec(spec)
    assert to_dict(checked) == spec
    check_rules(checked.layers, 3, normalized_input=False)


def test_residual_blocks_round_trip():
    model = nn.Sequential(InputNorm([0.5], [0.25]), nn.Conv2d(1, 4, 3, padding=1), nn.Hardtanh(),
                          Residual(nn.Sequential(IRConv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4)), nn.Sequential()),
                          nn.Hardtanh(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    spec = spec_from_module(model, (1, 8, 8))
    assert spec["layers"][3]["shortcut"] == [] and build_model(spec)(torch.zeros(1, 1, 8, 8)).shape == (1, 3)


def test_docs_spec_md_is_generated_from_the_schema():
    docs = Path(REPO / "docs" / "spec.md").read_text()
    assert docs == markdown(), "docs/spec.md is stale: run `python -m irnet_edge.nn.schema > docs/spec.md`"
    for node_type in ("irconv2d", "batchnorm2d", "maxpool2d", "residual", "padding_value", "momentum", "affine"):
        assert f"`{node_type}`" in docs
    example = json.loads(docs.split("```json\n")[1].split("```")[0])
    assert complete_spec(example, MNIST)["name"] == "tiny"
