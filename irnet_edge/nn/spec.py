"""A model's architecture as plain data (JSON-able dicts), so checkpoints never hold pickled code.

A spec is {"format": 1, "name", "input": {"channels", "height", "width"}, "num_classes", "layers": [node]}.
Each node is {"type": T, ...params}; "residual" nests {"body": [node], "shortcut": [node]} and
"sequential" nests {"layers": [node]}. `build_model` turns a spec into an nn.Sequential whose
state_dict keys depend only on the spec, and `spec_from_module` turns a model made of the supported
layers back into a spec (any other module through torch.fx, irnet_edge.nn.trace; `describe_module` also
gives its state_dict under the spec's keys).
"""
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import IrnetEdgeError
from . import schema
from .layers import InputNorm, IRConv2d, IRLinear, Residual, ShortcutA
from .schema import (
    PREFIX,
    SPEC_FORMAT,
    check_rules,
    to_dict,
    validate_layers,
    validate_spec,
    validate_spec_file,
)


@dataclass(frozen=True)
class NodeType:
    name: str
    module_type: type
    build: Callable  # validated node (irnet_edge.nn.schema) -> module
    describe: Callable[[nn.Module], dict]  # module -> raw fields, checked by the schema


def _int(value):
    """Conv attributes are tuples in PyTorch; the spec keeps square kernels, strides and paddings. Anything
    else (padding="same") goes to the schema as it is, which refuses it by name."""
    if isinstance(value, tuple):
        if len(set(value)) != 1:
            raise IrnetEdgeError(f"only square kernels, strides and paddings are supported, got {value}")
        return value[0]
    return value


def _conv_params(m: nn.Conv2d) -> dict:
    return {"in_channels": m.in_channels, "out_channels": m.out_channels,
            "kernel_size": _int(m.kernel_size), "stride": _int(m.stride), "padding": _int(m.padding),
            "bias": m.bias is not None, "groups": m.groups, "dilation": _int(m.dilation),
            "padding_mode": m.padding_mode}


def _bn_params(m: nn.modules.batchnorm._BatchNorm) -> dict:
    return {"num_features": m.num_features, "eps": m.eps, "momentum": m.momentum, "affine": m.affine,
            "track_running_stats": m.track_running_stats}


def _build_sequence(nodes) -> nn.Sequential:
    return nn.Sequential(*(_build(node) for node in nodes))


def _describe_sequence(seq: nn.Sequential) -> list[dict]:
    return [describe_layer(m) for m in seq]


NODE_TYPES = [
    NodeType("input_norm", InputNorm,
             lambda n: InputNorm(n.mean, n.std),
             lambda m: {"mean": m.mean_values, "std": m.std_values}),
    NodeType("irconv2d", IRConv2d,
             lambda n: IRConv2d(n.in_channels, n.out_channels, n.kernel_size, n.stride, n.padding, n.bias,
                                n.binary_act, n.padding_value),
             lambda m: {**_conv_params(m), "binary_act": m.binary_act, "padding_value": m.padding_value}),
    NodeType("conv2d", nn.Conv2d,
             lambda n: nn.Conv2d(n.in_channels, n.out_channels, n.kernel_size, n.stride, n.padding, bias=n.bias),
             _conv_params),
    NodeType("batchnorm2d", nn.BatchNorm2d,
             lambda n: nn.BatchNorm2d(n.num_features, eps=n.eps, momentum=n.momentum, affine=n.affine),
             _bn_params),
    NodeType("batchnorm1d", nn.BatchNorm1d,
             lambda n: nn.BatchNorm1d(n.num_features, eps=n.eps, momentum=n.momentum, affine=n.affine),
             _bn_params),
    NodeType("irlinear", IRLinear,
             lambda n: IRLinear(n.in_features, n.out_features, n.bias, n.binary_act),
             lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                        "bias": m.bias is not None, "binary_act": m.binary_act}),
    NodeType("linear", nn.Linear,
             lambda n: nn.Linear(n.in_features, n.out_features, bias=n.bias),
             lambda m: {"in_features": m.in_features, "out_features": m.out_features,
                        "bias": m.bias is not None}),
    NodeType("hardtanh", nn.Hardtanh,
             lambda n: nn.Hardtanh(),
             lambda m: {"min_val": m.min_val, "max_val": m.max_val}),
    NodeType("relu", nn.ReLU, lambda n: nn.ReLU(), lambda m: {}),
    NodeType("maxpool2d", nn.MaxPool2d,
             lambda n: nn.MaxPool2d(n.kernel_size, n.stride, n.padding),
             lambda m: {"kernel_size": _int(m.kernel_size), "stride": _int(m.stride), "padding": _int(m.padding),
                        "dilation": _int(m.dilation), "ceil_mode": m.ceil_mode}),
    NodeType("avgpool2d", nn.AvgPool2d,
             lambda n: nn.AvgPool2d(n.kernel_size, n.stride, n.padding, count_include_pad=n.count_include_pad,
                                    divisor_override=n.divisor_override),
             lambda m: {"kernel_size": _int(m.kernel_size), "stride": _int(m.stride), "padding": _int(m.padding),
                        "ceil_mode": m.ceil_mode, "count_include_pad": m.count_include_pad,
                        "divisor_override": m.divisor_override}),
    NodeType("global_avgpool", nn.AdaptiveAvgPool2d,
             lambda n: nn.AdaptiveAvgPool2d(1),
             lambda m: {"output_size": _int(m.output_size)}),
    NodeType("flatten", nn.Flatten,
             lambda n: nn.Flatten(),
             lambda m: {"start_dim": m.start_dim, "end_dim": m.end_dim}),
    NodeType("shortcut_a", ShortcutA, lambda n: ShortcutA(n.pad), lambda m: {"pad": m.pad}),
    NodeType("residual", Residual,
             lambda n: Residual(_build_sequence(n.body), _build_sequence(n.shortcut)),
             lambda m: {"body": _describe_sequence(m.body), "shortcut": _describe_sequence(m.shortcut)}),
    NodeType("sequential", nn.Sequential,
             lambda n: _build_sequence(n.layers),
             lambda m: {"layers": _describe_sequence(m)}),
]
_BY_NAME = {t.name: t for t in NODE_TYPES}
assert set(_BY_NAME) == set(schema.NODE_TYPES), "irnet_edge.nn.schema and spec.NODE_TYPES must name the same layers"
SUPPORTED = ", ".join(t.name for t in NODE_TYPES)


def _build(node) -> nn.Module:
    return _BY_NAME[node.type].build(node)


def build_layer(node: dict) -> nn.Module:
    return _build(validate_layers([node])[0])


def describe_layer(module: nn.Module) -> dict:
    """A module's raw spec fields; the schema checks them (spec_from_module)."""
    # exact type match: IRConv2d is also an nn.Conv2d, and a subclass of a supported layer may
    # compute something else entirely
    for kind in NODE_TYPES:
        if type(module) is kind.module_type:
            return {"type": kind.name, **kind.describe(module)}
    raise IrnetEdgeError(f"layer {type(module).__name__} cannot be saved as a spec; supported: {SUPPORTED}")


def build_model(spec: dict) -> nn.Sequential:
    """The model of a spec (a checkpoint's, a zoo's); its layers are checked by the schema first."""
    if not isinstance(spec, dict):
        raise IrnetEdgeError(f"{PREFIX}a model spec is an object, not {type(spec).__name__}")
    if spec.get("format") != SPEC_FORMAT:
        raise IrnetEdgeError(f"model spec format {spec.get('format')!r} is not {SPEC_FORMAT}; "
                             "upgrade irnet-edge to read this checkpoint")
    return _build_sequence(validate_layers(spec.get("layers")))


def _shape(t: torch.Tensor) -> str:
    return "x".join(str(d) for d in t.shape[1:])


def _misfit(node: dict, x: torch.Tensor) -> str | None:
    """What keeps a layer from taking input x, with the value that would fit, where the spec's fields decide it."""
    kind, c = node["type"], x.shape[1]
    if kind in ("conv2d", "irconv2d", "batchnorm2d") and x.dim() != 4:
        return f"needs a C x H x W feature map, but its input is flattened ({_shape(x)}); move it before the flatten"
    if kind in ("conv2d", "irconv2d"):
        if node["in_channels"] != c:
            return f"in_channels is {node['in_channels']}, but its input has {c} channels; set in_channels to {c}"
        k, pad = node["kernel_size"], node.get("padding", 0)
        if isinstance(pad, int) and min(x.shape[2:]) + 2 * pad < k:
            return (f"its {k}x{k} kernel is larger than its input with padding ({x.shape[2] + 2 * pad}x"
                    f"{x.shape[3] + 2 * pad}); use a smaller kernel_size or more padding, or remove a pooling layer")
    if kind == "batchnorm1d" and x.dim() != 2:
        return f"needs a flat input, but its input is a {_shape(x)} feature map; put a flatten layer before it"
    if kind in ("batchnorm2d", "batchnorm1d") and node["num_features"] != c:
        return f"num_features is {node['num_features']}, but its input has {c}; set num_features to {c}"
    if kind in ("linear", "irlinear"):
        if x.dim() != 2:
            return f"needs a flat input, but its input is a {_shape(x)} feature map; put a flatten layer before it"
        if node["in_features"] != c:
            return f"in_features is {node['in_features']}, but its input has {c} features; set in_features to {c}"
    return None


def _apply(node: dict, module: nn.Module, x: torch.Tensor, where: str) -> torch.Tensor:
    """module(x), or an IrnetEdgeError naming the layer (a residual's: the layer of its body or shortcut) that does
    not fit its input, and why."""
    misfit = _misfit(node, x)
    if misfit is not None:
        raise IrnetEdgeError(f"{PREFIX}{where} does not fit input {_shape(x)}: {misfit}")
    if node["type"] == "sequential":
        return _apply_all(node["layers"], module, x, where)
    if node["type"] == "residual":
        paths = [_apply_all(node.get(part) or [], getattr(module, part), x, f"{where} {part}")
                 for part in ("body", "shortcut")]
        if paths[0].shape != paths[1].shape:
            raise IrnetEdgeError(f"{PREFIX}{where}: its body gives {_shape(paths[0])} but its shortcut gives "
                                 f"{_shape(paths[1])}, and they are added; make both give the same shape")
        return paths[0] + paths[1]
    try:
        return module(x)
    except (RuntimeError, ValueError) as exc:
        raise IrnetEdgeError(f"{PREFIX}{where} does not fit input {_shape(x)}: {str(exc).splitlines()[0]}") from None


def _apply_all(nodes: list[dict], modules: nn.Sequential, x: torch.Tensor, where: str) -> torch.Tensor:
    """_apply through a nested sequence of layers (a residual's body or shortcut), each named within `where`."""
    for j, (inner, layer) in enumerate(zip(nodes, modules, strict=True)):
        x = _apply(inner, layer, x, f"{where} layer {j} ({inner['type']})")
    return x


def _forward(model: nn.Sequential, layers: list[dict], shape: tuple[int, int, int], offset: int = 0) -> torch.Tensor:
    """A forward pass layer by layer, so a layer that does not fit its input is named. Also refuses what
    deployment cannot export and only shapes decide. `offset`: layers put before the user's (input_norm)."""
    x = torch.zeros(1, *shape)
    last_map = shape  # the last C x H x W tensor, which flatten keeps as it is at deployment
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, (node, module) in enumerate(zip(layers, model, strict=True)):
                where = f"layer {i - offset} ({node['type']})"
                following = layers[i + 1]["type"] if i + 1 < len(layers) else None
                if node["type"] in ("linear", "irlinear") and x.dim() == 2 and last_map[1] != last_map[2]:
                    raise IrnetEdgeError(f"{PREFIX}{where} follows a non-square {'x'.join(map(str, last_map))} "
                                         "feature map, which deployment cannot export")
                if (node["type"] == "batchnorm1d" and x.dim() == 2 and last_map[1] * last_map[2] != 1
                        and following != "linear"):
                    raise IrnetEdgeError(f"{PREFIX}{where} normalizes a flattened {'x'.join(map(str, last_map))} "
                                         "feature map: deployment folds it into a linear layer, which must follow it")
                if node["type"] == "residual" and x.dim() == 2 and last_map[1] * last_map[2] != 1:
                    raise IrnetEdgeError(f"{PREFIX}{where} adds to a flattened {'x'.join(map(str, last_map))} "
                                         "feature map, which deployment cannot export (it keeps the map's shape "
                                         "through the flatten): put the residual before the flatten, or pool to 1x1")
                x = _apply(node, module, x, where)
                if x.dim() == 4:
                    last_map = tuple(x.shape[1:])
                elif node["type"] in ("linear", "irlinear"):  # a linear layer's output is a 1x1 map
                    last_map = (x.shape[1], 1, 1)
    finally:
        model.train(was_training)
    return x


def _plain_sequential(model: nn.Module) -> bool:
    """An nn.Sequential of torch.nn and irnet_edge layers is described layer by layer, as it always was; any other
    module, or a Sequential holding modules of the user's own or layers that compute nothing at inference (Dropout,
    Identity), goes through torch.fx (irnet_edge.nn.trace), which drops those."""
    from .trace import PASS_THROUGH

    known = {t.module_type for t in NODE_TYPES}
    return (isinstance(model, nn.Sequential) and type(model).forward is nn.Sequential.forward
            and all(type(m) in known or (type(m).__module__.startswith("torch.") and not isinstance(m, PASS_THROUGH))
                    for m in model.modules()))


def describe_module(model: nn.Module, input_shape: tuple[int, int, int],
                    name: str = "custom") -> tuple[dict, dict[str, torch.Tensor]]:
    """A user model's spec (as spec_from_module) and a copy of its weights and BatchNorm statistics under the keys
    of the model the spec builds (build_model, Checkpoint.build), which differ from the user's own for a traced
    module ("layer1.0.conv1.weight" becomes "4.body.0.weight")."""
    if not isinstance(model, nn.Module):
        raise IrnetEdgeError(f"a custom model is an nn.Module, not {type(model).__name__}")
    if not _plain_sequential(model):
        from .trace import describe_traced

        return describe_traced(model, input_shape, name)
    state = {key: value.detach().cpu().clone() for key, value in model.state_dict().items()}
    return spec_from_module(model, input_shape, name), state


def spec_from_module(model: nn.Module, input_shape: tuple[int, int, int], name: str = "custom") -> dict:
    """Describe a user model as a spec, checked by the schema and the rules deployment needs: an nn.Sequential of
    supported layers, or any module whose forward torch.fx traces into supported layers, functions, adds and the
    package's shortcut (irnet_edge.nn.trace; its weights are under other keys than the spec's: use
    describe_module).

    The number of classes is read off a forward pass so the spec cannot disagree with the model.
    """
    if not isinstance(model, nn.Module):
        raise IrnetEdgeError(f"a custom model is an nn.Module, not {type(model).__name__}")
    if not _plain_sequential(model):
        from .trace import describe_traced

        return describe_traced(model, input_shape, name)[0]
    raw = _describe_sequence(model)
    channels, height, width = input_shape
    layers = validate_layers(raw)
    check_rules(layers, channels, normalized_input=False)
    described = [to_dict(node) for node in layers]
    out = _forward(model, described, (channels, height, width))
    if out.dim() != 2:
        raise IrnetEdgeError(f"a model must end in class logits (N, classes); this one gives {tuple(out.shape)}")
    spec = {"format": SPEC_FORMAT, "name": name,
            "input": {"channels": channels, "height": height, "width": width},
            "num_classes": int(out.shape[1]), "layers": described}
    return to_dict(validate_spec(spec))


def _dims(shape) -> str:
    return "x".join(str(d) for d in shape)


def complete_spec(spec: dict, dataset) -> dict:
    """Check a hand-written spec against the schema, its rules and the dataset it trains on, and fill what it
    may leave out (input shape, classes, format, input normalisation). One IrnetEdgeError line if it is refused,
    before anything is trained or written."""
    user = validate_spec_file(spec)
    expected = (dataset.channels, dataset.size, dataset.size)
    if user.input is not None:
        declared = (user.input.channels, user.input.height, user.input.width)
        if declared != expected:
            raise IrnetEdgeError(f"{PREFIX}input {_dims(declared)} is declared, but {dataset.name} images are "
                                 f"{_dims(expected)}: declare {_dims(expected)} or leave \"input\" out")
    if user.num_classes is not None and user.num_classes != dataset.num_classes:
        raise IrnetEdgeError(f"{PREFIX}num_classes {user.num_classes} is declared, but {dataset.name} has "
                             f"{dataset.num_classes} classes")
    check_rules(user.layers, dataset.channels, normalized_input=True)
    layers = [to_dict(node) for node in user.layers]
    offset = 0
    if layers[0]["type"] != "input_norm":
        layers.insert(0, {"type": "input_norm", "mean": list(dataset.mean), "std": list(dataset.std)})
        offset = 1
    model = build_model({"format": SPEC_FORMAT, "layers": layers})
    out = _forward(model, layers, expected, offset)
    if out.dim() != 2 or out.shape[1] != dataset.num_classes:
        raise IrnetEdgeError(f"{PREFIX}the model ends in {_shape(out)} values, {dataset.num_classes} class logits "
                             "are needed")
    return spec_from_module(model, expected, user.name)
