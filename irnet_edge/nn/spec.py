"""A model's architecture as plain data (JSON-able dicts), so checkpoints never hold pickled code.

A spec is {"format": 1, "name", "input": {"channels", "height", "width"}, "num_classes", "layers": [node]}.
Each node is {"type": T, ...params}; "residual" nests {"body": [node], "shortcut": [node]} and
"sequential" nests {"layers": [node]}. `build_model` turns a spec into an nn.Sequential whose
state_dict keys depend only on the spec, and `spec_from_module` turns a model made of the supported
layers back into a spec.
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import IrnetEdgeError
from .layers import InputNorm, IRConv2d, IRLinear, Residual, ShortcutA

SPEC_FORMAT = 1


@dataclass(frozen=True)
class NodeType:
    name: str
    module_type: type
    build: Callable[[dict], nn.Module]
    describe: Callable[[nn.Module], dict]


def _int(value) -> int:
    """Conv attributes are tuples in PyTorch; the spec keeps square kernels, strides and paddings."""
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise IrnetEdgeError(f"only square kernels, strides and paddings are supported, got {value}")
        return int(value[0])
    return int(value)


def _conv_params(m: nn.Conv2d) -> dict:
    if m.groups != 1 or _int(m.dilation) != 1 or m.padding_mode != "zeros":
        raise IrnetEdgeError("Conv2d with groups, dilation or non-zero padding_mode is not supported")
    return {"in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel_size": _int(m.kernel_size), "stride": _int(m.stride), "padding": _int(m.padding),
            "bias": m.bias is not None}


def _build_sequence(nodes: list[dict]) -> nn.Sequential:
    return nn.Sequential(*(build_layer(node) for node in nodes))


def _describe_sequence(seq: nn.Sequential) -> list[dict]:
    return [describe_layer(m) for m in seq]


NODE_TYPES = [
    NodeType("input_norm", InputNorm,
             lambda n: InputNorm(n["mean"], n["std"]),
             lambda m: {"mean": m.mean_values, "std": m.std_values}),
    NodeType("irconv2d", IRConv2d,
             lambda n: IRConv2d(n["in_channels"], n["out_channels"], n["kernel_size"], n["stride"],
                                n["padding"], n["bias"], n["binary_act"], n["padding_value"]),
             lambda m: {**_conv_params(m), "binary_act": m.binary_act, "padding_value": m.padding_value}),
    NodeType("conv2d", nn.Conv2d,
             lambda n: nn.Conv2d(n["in_channels"], n["out_channels"], n["kernel_size"], n["stride"],
                                 n["padding"], bias=n["bias"]),
             _conv_params),
    NodeType("batchnorm2d", nn.BatchNorm2d,
             lambda n: nn.BatchNorm2d(n["num_features"], eps=n["eps"]),
             lambda m: {"num_features": m.num_features, "eps": m.eps}),
    NodeType("batchnorm1d", nn.BatchNorm1d,
             lambda n: nn.BatchNorm1d(n["num_features"], eps=n["eps"]),
             lambda m: {"num_features": m.num_features, "eps": m.eps}),
    NodeType("irlinear", IRLinear,
             lambda n: IRLinear(n["in_features"], n["out_features"], n["bias"], n["binary_act"]),
             lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                        "bias": m.bias is not None, "binary_act": m.binary_act}),
    NodeType("linear", nn.Linear,
             lambda n: nn.Linear(n["in_features"], n["out_features"], bias=n["bias"]),
             lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                        "bias": m.bias is not None}),
    NodeType("hardtanh", nn.Hardtanh,
             lambda n: nn.Hardtanh(),
             lambda m: {} if (m.min_val, m.max_val) == (-1.0, 1.0) else _unsupported(m, "bounds other than +/-1")),
    NodeType("relu", nn.ReLU, lambda n: nn.ReLU(), lambda m: {}),
    NodeType("maxpool2d", nn.MaxPool2d,
             lambda n: nn.MaxPool2d(n["kernel_size"], n["stride"]),
             lambda m: {"kernel_size": _int(m.kernel_size), "stride": _int(m.stride)}
             if _int(m.padding) == 0 and _int(m.dilation) == 1 and not m.ceil_mode
             else _unsupported(m, "padding, dilation or ceil_mode")),
    NodeType("global_avgpool", nn.AdaptiveAvgPool2d,
             lambda n: nn.AdaptiveAvgPool2d(1),
             lambda m: {} if _int(m.output_size) == 1 else _unsupported(m, "output_size other than 1")),
    NodeType("flatten", nn.Flatten,
             lambda n: nn.Flatten(),
             lambda m: {} if (m.start_dim, m.end_dim) == (1, -1) else _unsupported(m, "start_dim != 1")),
    NodeType("shortcut_a", ShortcutA, lambda n: ShortcutA(n["pad"]), lambda m: {"pad": m.pad}),
    NodeType("residual", Residual,
             lambda n: Residual(_build_sequence(n["body"]), _build_sequence(n["shortcut"])),
             lambda m: {"body": _describe_sequence(m.body), "shortcut": _describe_sequence(m.shortcut)}),
    NodeType("sequential", nn.Sequential,
             lambda n: _build_sequence(n["layers"]),
             lambda m: {"layers": _describe_sequence(m)}),
]
_BY_NAME = {t.name: t for t in NODE_TYPES}
SUPPORTED = ", ".join(t.name for t in NODE_TYPES)


def _unsupported(module: nn.Module, what: str):
    raise IrnetEdgeError(f"{type(module).__name__} with {what} is not supported")


def build_layer(node: dict) -> nn.Module:
    kind = _BY_NAME.get(node.get("type"))
    if kind is None:
        raise IrnetEdgeError(f"unknown layer type {node.get('type')!r} in the model spec; supported: {SUPPORTED}")
    try:
        return kind.build(node)
    except KeyError as missing:
        raise IrnetEdgeError(f"layer {node['type']!r} in the model spec lacks the field {missing}") from None


def describe_layer(module: nn.Module) -> dict:
    # exact type match: IRConv2d is also an nn.Conv2d, and a subclass of a supported layer may
    # compute something else entirely
    for kind in NODE_TYPES:
        if type(module) is kind.module_type:
            return {"type": kind.name, **kind.describe(module)}
    raise IrnetEdgeError(f"layer {type(module).__name__} cannot be saved as a spec; supported: {SUPPORTED}")


def build_model(spec: dict) -> nn.Sequential:
    if spec.get("format") != SPEC_FORMAT:
        raise IrnetEdgeError(f"model spec format {spec.get('format')!r} is not {SPEC_FORMAT}; "
                             "upgrade irnet-edge to read this checkpoint")
    return _build_sequence(spec["layers"])


def spec_from_module(model: nn.Sequential, input_shape: tuple[int, int, int], name: str = "custom") -> dict:
    """Describe a user model (an nn.Sequential of supported layers) as a spec.

    The number of classes is read off a forward pass so the spec cannot disagree with the model.
    """
    if not isinstance(model, nn.Sequential):
        raise IrnetEdgeError("a custom model must be an nn.Sequential of irnet_edge.nn layers")
    layers = _describe_sequence(model)
    channels, height, width = input_shape
    was_training = model.training
    model.eval()
    with torch.no_grad():
        out = model(torch.zeros(1, channels, height, width))
    model.train(was_training)
    if out.dim() != 2:
        raise IrnetEdgeError(f"a model must end in class logits (N, classes); this one gives {tuple(out.shape)}")
    return {"format": SPEC_FORMAT, "name": name,
            "input": {"channels": channels, "height": height, "width": width},
            "num_classes": int(out.shape[1]), "layers": layers}


def complete_spec(spec: dict, dataset) -> dict:
    """Fill what a hand-written spec may leave out from the dataset it trains on (input shape, classes,
    format, input normalisation), then check that it builds and ends in the right number of logits."""
    if not isinstance(spec, dict) or not isinstance(spec.get("layers"), list):
        raise IrnetEdgeError('a model spec is a JSON object with a "layers" list (see README)')
    layers = list(spec["layers"])
    if not layers or layers[0].get("type") != "input_norm":
        layers.insert(0, {"type": "input_norm", "mean": list(dataset.mean), "std": list(dataset.std)})
    full = {"format": SPEC_FORMAT, "name": spec.get("name", "custom"),
            "input": spec.get("input", {"channels": dataset.channels, "height": dataset.size,
                                        "width": dataset.size}),
            "num_classes": spec.get("num_classes", dataset.num_classes), "layers": layers}
    model = build_model(full)
    shape = (full["input"]["channels"], full["input"]["height"], full["input"]["width"])
    try:
        described = spec_from_module(model, shape, full["name"])
    except RuntimeError as exc:
        raise IrnetEdgeError(f"the model spec does not fit input {shape}: {str(exc).splitlines()[0]}") from None
    if described["num_classes"] != full["num_classes"]:
        raise IrnetEdgeError(f"the model spec ends in {described['num_classes']} logits, "
                             f"{full['num_classes']} classes are needed")
    return described
