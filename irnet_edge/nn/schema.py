"""The one schema of model specs: every node type a strict pydantic model, checked in one place.

A spec is {"format": 1, "name", "input": {"channels", "height", "width"}, "num_classes", "layers": [node]}
and a node is {"type": T, ...fields}. Fields are typed strictly ("8" is not 8, "false" is not a boolean),
unknown fields are refused with the closest valid name, and every field a PyTorch layer has that the spec
could silently lose (Conv2d groups/dilation, MaxPool2d ceil_mode, Hardtanh bounds, ...) is either carried
(BatchNorm affine and momentum) or refused. Errors become ONE IrnetEdgeError line naming each faulty
layer by its position ("layer 3 (irconv2d)", "layer 5.body.0 (irconv2d)") and field.

`check_rules` adds the rules on layer sequences that deployment needs and that the spec alone decides
(a ReLU before a binarized layer, ...), so such a model is refused before it
trains instead of after. docs/spec.md is generated from this module (`python -m irnet_edge.nn.schema`).
"""
import difflib
import json
import typing
from typing import Annotated, Any, ClassVar, Literal, Union

from annotated_types import Ge, Gt, Le, MinLen
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from ..errors import IrnetEdgeError

SPEC_FORMAT = 1


def _field(default: Any = ..., doc: str = "", expects: str | None = None, why: str | None = None, **constraints):
    """A spec field: `doc` says what it means, `expects` overrides the allowed-values text derived from its type,
    `why` says why other values are refused."""
    extra = {key: value for key, value in (("expects", expects), ("why", why)) if value is not None}
    return Field(default, description=doc, json_schema_extra=extra or None, **constraints)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)
    # fields written out only when they differ from their default, so specs of models without them (every
    # checkpoint written before they existed) stay identical
    OMIT_IF_DEFAULT: ClassVar[tuple[str, ...]] = ()


class _Node(_Strict):
    type: str


def _node_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("irnet_node", message)


def _field_error(message: str) -> PydanticCustomError:
    return PydanticCustomError("irnet_field", message)


_NOT_SUPPORTED = "is not supported"


class InputNormNode(_Node):
    """(x - mean) / std per channel on pixels in [0, 1]. Only as the first layer; a spec file may leave it out
    and gets the dataset's normalisation."""

    type: Literal["input_norm"]
    mean: Annotated[list[float], MinLen(1)] = _field(doc="per-channel mean", expects="a non-empty list of numbers")
    std: Annotated[list[Annotated[float, Gt(0)]], MinLen(1)] = _field(
        doc="per-channel standard deviation", expects="a non-empty list of numbers > 0")

    @model_validator(mode="after")
    def _same_length(self):
        if len(self.mean) != len(self.std):
            raise _node_error(f"mean has {len(self.mean)} values but std has {len(self.std)}")
        return self


_CONV_EXTRAS = ("groups", "dilation", "padding_mode")


class Conv2dNode(_Node):
    """Full-precision 2-D convolution (square kernel, stride and padding), zero padding."""

    OMIT_IF_DEFAULT: ClassVar[tuple[str, ...]] = _CONV_EXTRAS
    type: Literal["conv2d"]
    in_channels: Annotated[int, Ge(1)] = _field(doc="input channels")
    out_channels: Annotated[int, Ge(1)] = _field(doc="output channels (filters)")
    kernel_size: Annotated[int, Ge(1)] = _field(doc="side of the square kernel")
    stride: Annotated[int, Ge(1)] = _field(1, doc="stride in both directions")
    padding: Annotated[int, Ge(0)] = _field(0, doc="zero padding on each side")
    bias: bool = _field(True, doc="add a learned bias per output channel")
    groups: Literal[1] = _field(1, doc="PyTorch's groups", why="grouped convolution " + _NOT_SUPPORTED)
    dilation: Literal[1] = _field(1, doc="PyTorch's dilation", why="dilated convolution " + _NOT_SUPPORTED)
    padding_mode: Literal["zeros"] = _field("zeros", doc="PyTorch's padding_mode",
                                            why="only zero padding " + _NOT_SUPPORTED.replace("is not", "is"))


def _check_filter(weights: int, what: str):
    if weights < 2:
        raise _node_error(f"a binary filter needs at least 2 weights (Libra-PB divides by their unbiased std); "
                          f"this one has {weights} ({what})")


class IRConv2dNode(Conv2dNode):
    """IR-Net binary convolution: Libra-PB binary weights, EDE-binarized inputs (unless binary_act is false)."""

    type: Literal["irconv2d"]
    bias: bool = _field(False, doc="add a learned bias per output channel")
    binary_act: bool = _field(True, doc="binarize the input (1W/1A); false keeps it full precision (1W/32A)")
    padding_value: Literal["zero", "one"] = _field(
        "zero", doc='value padded around the binarized input: "zero" (official IR-Net) or "one" (+1, free on bits)')

    @model_validator(mode="after")
    def _check(self):
        _check_filter(self.in_channels * self.kernel_size ** 2, "in_channels * kernel_size^2")
        if self.padding_value == "one" and not self.binary_act:
            raise _node_error('padding_value "one" needs binary activations (binary_act true)')
        return self


class _BatchNormNode(_Node):
    OMIT_IF_DEFAULT: ClassVar[tuple[str, ...]] = ("momentum", "affine", "track_running_stats")
    num_features: Annotated[int, Ge(1)] = _field(doc="channels (2d) or features (1d)")
    eps: Annotated[float, Gt(0)] = _field(1e-5, doc="added to the variance")
    momentum: Annotated[float, Gt(0), Le(1)] = _field(0.1, doc="running-statistics momentum used in training",
                                                      expects="a number in (0, 1] (null, a cumulative average, "
                                                              "is not supported)")
    affine: bool = _field(True, doc="learn a scale and shift (false: none, the state_dict has no weight/bias)")
    track_running_stats: Literal[True] = _field(True, doc="PyTorch's track_running_stats",
                                                why="deployment folds the running statistics")


class BatchNorm2dNode(_BatchNormNode):
    """BatchNorm over the channels of a feature map; folded into the preceding conv at deployment."""

    type: Literal["batchnorm2d"]


class BatchNorm1dNode(_BatchNormNode):
    """BatchNorm over flattened features; folded into the following linear layer at deployment."""

    type: Literal["batchnorm1d"]


class LinearNode(_Node):
    """Full-precision fully connected layer."""

    type: Literal["linear"]
    in_features: Annotated[int, Ge(1)] = _field(doc="input features")
    out_features: Annotated[int, Ge(1)] = _field(doc="output features")
    bias: bool = _field(True, doc="add a learned bias per output")


class IRLinearNode(LinearNode):
    """IR-Net binary fully connected layer (Libra-PB weights per output row, EDE-binarized inputs)."""

    type: Literal["irlinear"]
    bias: bool = _field(False, doc="add a learned bias per output")
    binary_act: bool = _field(True, doc="binarize the input (1W/1A); false keeps it full precision (1W/32A)")

    @model_validator(mode="after")
    def _check(self):
        _check_filter(self.in_features, "in_features")
        return self


class HardtanhNode(_Node):
    """clamp(x, -1, 1): the activation before binary layers."""

    OMIT_IF_DEFAULT: ClassVar[tuple[str, ...]] = ("min_val", "max_val")
    type: Literal["hardtanh"]
    min_val: float = _field(-1.0, doc="lower bound", expects="-1", why="other bounds are " + _NOT_SUPPORTED[3:])
    max_val: float = _field(1.0, doc="upper bound", expects="1", why="other bounds are " + _NOT_SUPPORTED[3:])

    @field_validator("min_val")
    @classmethod
    def _min(cls, value):
        if value != -1:
            raise _field_error("only -1")
        return value

    @field_validator("max_val")
    @classmethod
    def _max(cls, value):
        if value != 1:
            raise _field_error("only 1")
        return value


class ReLUNode(_Node):
    """max(x, 0). Not directly before a binarized layer (its sign would be constant +1)."""

    type: Literal["relu"]


class _PoolNode(_Node):
    """What max- and average pooling share: square windows, a stride, zero to kernel_size / 2 padding."""

    kernel_size: Annotated[int, Ge(1)] = _field(doc="side of the square window")
    stride: Annotated[int, Ge(1)] = _field(None, doc="step between windows; default kernel_size (windows that "
                                                     "tile the map), smaller values overlap them")
    padding: Annotated[int, Ge(0)] = _field(0, doc="pixels added on each side, at most kernel_size / 2 "
                                                   "(PyTorch's rule)")
    ceil_mode: Literal[False] = _field(False, doc="PyTorch's ceil_mode",
                                       why="ceil_mode " + _NOT_SUPPORTED)

    @model_validator(mode="before")
    @classmethod
    def _default_stride(cls, data):
        if isinstance(data, dict) and data.get("stride") is None and "kernel_size" in data:
            data = {**data, "stride": data["kernel_size"]}
        return data

    @model_validator(mode="after")
    def _check_padding(self):
        if self.padding > self.kernel_size // 2:
            raise _node_error(f"padding must be at most kernel_size / 2 ({self.kernel_size // 2} for kernel_size "
                              f"{self.kernel_size}), not {self.padding}, as in PyTorch: a window must overlap "
                              "the map")
        return self


class MaxPool2dNode(_PoolNode):
    """Max-pooling over square windows: any stride, padding that never wins (PyTorch pads with -inf). On floats,
    and on bits when a binary layer follows (the max of signs is the sign of the max)."""

    OMIT_IF_DEFAULT: ClassVar[tuple[str, ...]] = ("padding", "dilation", "ceil_mode")
    type: Literal["maxpool2d"]
    dilation: Literal[1] = _field(1, doc="PyTorch's dilation", why="dilated max-pooling " + _NOT_SUPPORTED)


class AvgPool2dNode(_PoolNode):
    """Average pooling over square windows (nn.AvgPool2d): any stride, zero padding; on floats."""

    OMIT_IF_DEFAULT: ClassVar[tuple[str, ...]] = ("padding", "ceil_mode", "count_include_pad", "divisor_override")
    type: Literal["avgpool2d"]
    count_include_pad: bool = _field(True, doc="divide by kernel_size^2 even where the window covers padding "
                                               "(PyTorch's default); false: by the pixels inside the map")
    divisor_override: Annotated[int, Ge(1)] | None = _field(None, doc="divide by this instead (PyTorch's "
                                                                      "divisor_override)",
                                                            expects="null or an integer >= 1")


class GlobalAvgPoolNode(_Node):
    """Average over the whole feature map (AdaptiveAvgPool2d(1)): C x H x W -> C x 1 x 1."""

    OMIT_IF_DEFAULT: ClassVar[tuple[str, ...]] = ("output_size",)
    type: Literal["global_avgpool"]
    output_size: Literal[1] = _field(1, doc="AdaptiveAvgPool2d's output_size", why="only global pooling is "
                                                                                   "supported")


class FlattenNode(_Node):
    """C x H x W -> C*H*W features (before a linear layer)."""

    OMIT_IF_DEFAULT: ClassVar[tuple[str, ...]] = ("start_dim", "end_dim")
    type: Literal["flatten"]
    start_dim: Literal[1] = _field(1, doc="PyTorch's start_dim", why="only flattening C, H and W is supported")
    end_dim: Literal[-1] = _field(-1, doc="PyTorch's end_dim", why="only flattening C, H and W is supported")


class ShortcutANode(_Node):
    """ResNet option-A shortcut: every second pixel, `pad` zero channels added on each side."""

    type: Literal["shortcut_a"]
    pad: Annotated[int, Ge(0)] = _field(doc="zero channels added on each side")


class ResidualNode(_Node):
    """body(x) + shortcut(x); an empty shortcut is the identity."""

    type: Literal["residual"]
    body: Annotated[list["Node"], MinLen(1)] = _field(doc="the layers of the main path",
                                                      expects="a non-empty list of layers")
    shortcut: list["Node"] = _field([], doc="the layers of the shortcut; empty: identity", expects="a list of layers")


class SequentialNode(_Node):
    """A nested nn.Sequential. Describable, but deployment cannot export it yet: write its layers inline."""

    type: Literal["sequential"]
    layers: list["Node"] = _field(doc="the nested layers", expects="a list of layers")


NODE_MODELS: tuple[type[_Node], ...] = (
    InputNormNode, IRConv2dNode, Conv2dNode, BatchNorm2dNode, BatchNorm1dNode, IRLinearNode, LinearNode,
    HardtanhNode, ReLUNode, MaxPool2dNode, AvgPool2dNode, GlobalAvgPoolNode, FlattenNode, ShortcutANode, ResidualNode,
    SequentialNode)
BY_TYPE: dict[str, type[_Node]] = {m.model_fields["type"].annotation.__args__[0]: m for m in NODE_MODELS}
NODE_TYPES = tuple(BY_TYPE)
Node = Annotated[Union[NODE_MODELS], Field(discriminator="type")]  # noqa: UP007 (a tuple of classes)
for _model in (ResidualNode, SequentialNode):
    _model.model_rebuild()


class InputShape(_Strict):
    channels: Annotated[int, Ge(1)] = _field(doc="image channels")
    height: Annotated[int, Ge(1)] = _field(doc="image height")
    width: Annotated[int, Ge(1)] = _field(doc="image width")


class Spec(_Strict):
    """A complete spec, as checkpoints hold it."""

    format: Literal[1] = _field(doc="spec format version", expects="1")
    name: Annotated[str, MinLen(1)] = _field(doc="the model's name", expects="a non-empty string")
    input: InputShape = _field(doc="the input image shape", expects="an object {channels, height, width}")
    num_classes: Annotated[int, Ge(1)] = _field(doc="number of output logits")
    layers: Annotated[list[Node], MinLen(1)] = _field(doc="the layers, in order", expects="a non-empty list of layers")


class SpecFile(_Strict):
    """A hand-written spec (`train --spec FILE`): what it leaves out comes from the dataset."""

    format: Literal[1] = _field(1, doc="spec format version", expects="1")
    name: Annotated[str, MinLen(1)] = _field("custom", doc="the model's name", expects="a non-empty string")
    input: InputShape | None = _field(None, doc="the input image shape; must match the dataset's",
                                      expects="an object {channels, height, width}")
    num_classes: Annotated[int, Ge(1)] | None = _field(None, doc="number of logits; must match the dataset's",
                                                       expects="an integer >= 1")
    layers: Annotated[list[Node], MinLen(1)] = _field(doc="the layers, in order", expects="a non-empty list of layers")


_LAYERS = TypeAdapter(Annotated[list[Node], MinLen(1)])


# -- errors --------------------------------------------------------------------------------------------------------

def _expects(info) -> str:
    extra = info.json_schema_extra or {}
    if "expects" in extra:
        return extra["expects"]
    annotation = info.annotation
    bounds = {type(m): m for m in info.metadata}
    if annotation is bool:
        return "true or false"
    if annotation is int:
        if Ge in bounds:
            return f"an integer >= {bounds[Ge].ge}"
        return "an integer"
    if annotation is float:
        if Gt in bounds:
            return f"a number > {bounds[Gt].gt:g}"
        return "a number"
    if typing.get_origin(annotation) is Literal:
        return " or ".join(json.dumps(v) for v in annotation.__args__)
    if annotation is str:
        return "a string"
    return str(annotation)


def _literal_values(info) -> tuple:
    return info.annotation.__args__ if info is not None and typing.get_origin(info.annotation) is Literal else ()


def _got(info, value) -> str:
    """How the faulty value reads in the message, with a hint when the fix is plain."""
    if isinstance(value, str):
        options = [v for v in _literal_values(info) if isinstance(v, str)]
        close = difflib.get_close_matches(value, options, n=1, cutoff=0.5)
        if options:
            return f", not {json.dumps(value)}" + (f" (did you mean {json.dumps(close[0])}?)" if close else "")
        annotation = info.annotation if info is not None else float
        if annotation in (int, float):
            try:
                float(value)
                return f", not the string {json.dumps(value)} (write {value} without quotes)"
            except ValueError:
                return f" ({json.dumps(value)} is not supported)"
        if annotation is bool and value.lower() in ("true", "false"):
            return f", not the string {json.dumps(value)} (write {value.lower()} without quotes)"
        return f", not the string {json.dumps(value)}"
    try:
        return f", not {json.dumps(value)}"
    except (TypeError, ValueError):
        return f", not {value!r}"


def _describe_value(value) -> str:
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"a {type(value).__name__}"


def _split(loc: tuple, root: type[BaseModel]) -> tuple[str, str | None, type[BaseModel] | None, tuple]:
    """(layer path, node type, model owning the rest, rest of loc) from a pydantic error location, e.g.
    ("layers", 5, "residual", "body", 0, "irconv2d", "padding") -> ("5.body.0", "irconv2d", IRConv2dNode,
    ("padding",))."""
    path, node_type, model, i = "", None, root, 0
    while i + 1 < len(loc) and loc[i] in ("layers", "body", "shortcut") and isinstance(loc[i + 1], int) and (
            model in (Spec, SpecFile, ResidualNode, SequentialNode)):
        path = str(loc[i + 1]) if model in (Spec, SpecFile) else f"{path}.{loc[i]}.{loc[i + 1]}"
        node_type, model, i = None, None, i + 2
        if i < len(loc) and loc[i] in BY_TYPE:
            node_type, model, i = loc[i], BY_TYPE[loc[i]], i + 1
    return path, node_type, model, loc[i:]


def _message(err: dict, root: type[BaseModel] | None) -> tuple[str, str]:
    """(where, what) for one pydantic error; where is "" when what names the place itself."""
    loc = err["loc"] if root is not None else ("layers", *err["loc"])  # root None: a bare list of layers
    path, node_type, model, rest = _split(loc, root or SpecFile)
    where = f"layer {path} ({node_type})" if node_type else (f"layer {path}" if path else "")
    kind, value = err["type"], err["input"]
    if kind == "model_attributes_type" and path and not rest:
        return "", f"layer {path} is {_describe_value(value)}, not an object"
    if kind == "union_tag_not_found":
        return "", f'layer {path} has no "type"; supported: {", ".join(NODE_TYPES)}'
    if kind == "union_tag_invalid":
        tag = value.get("type") if isinstance(value, dict) else None
        close = difflib.get_close_matches(str(tag), NODE_TYPES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return "", f"layer {path}: unknown layer type {tag!r}{hint}; supported: {', '.join(NODE_TYPES)}"
    if model is None or not rest or not isinstance(rest[0], str):
        return where, err["msg"]
    field, shown = rest[0], rest[0]
    if field == "input" and model in (Spec, SpecFile) and len(rest) > 1 and isinstance(rest[1], str):
        model, rest = InputShape, rest[1:]
        field, shown = rest[0], f"input.{rest[0]}"
    fields = {name: info for name, info in model.model_fields.items() if name != "type"}
    if kind == "extra_forbidden":
        close = difflib.get_close_matches(field, list(fields), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}?" if close else f"the fields are {', '.join(fields)}"
        return where, f"{shown}: unknown field, {hint}"
    if field not in fields:
        return where, f"{shown}: {err['msg']}"
    info = fields[field]
    if kind == "missing":
        return where, f"{shown} is missing ({_expects(info)})"
    if len(rest) > 1 and isinstance(rest[-1], int):  # an element of a list of numbers
        shown += "".join(f"[{k}]" for k in rest[1:] if isinstance(k, int))
        return where, f"{shown} must be a number{' > 0' if kind == 'greater_than' else ''}" + _got(None, value)
    why = (info.json_schema_extra or {}).get("why")
    return where, f"{shown} must be {_expects(info)}{_got(info, value)}" + (f": {why}" if why else "")


def _raise(exc: ValidationError, root: type[BaseModel] | None, prefix: str) -> typing.NoReturn:
    grouped: dict[str, list[str]] = {}
    for err in exc.errors():
        where, what = _message(err, root)
        if what not in grouped.setdefault(where, []):
            grouped[where].append(what)
    for whats in grouped.values():  # "kernal_size: unknown field, did you mean kernel_size?" says it all
        suggested = {w.rsplit("did you mean ", 1)[1].rstrip("?") for w in whats if "did you mean " in w}
        whats[:] = [w for w in whats if not (" is missing (" in w and w.split(" is missing (")[0] in suggested)]
    parts = [f"{where}: {'; '.join(whats)}" if where else "; ".join(whats) for where, whats in grouped.items()]
    raise IrnetEdgeError(prefix + "; ".join(parts)) from None


# -- validation ----------------------------------------------------------------------------------------------------

PREFIX = "model spec: "


def validate_layers(layers: Any) -> list[_Node]:
    if not isinstance(layers, list):
        raise IrnetEdgeError(f'{PREFIX}"layers" must be a list of layers, not {_describe_value(layers)}')
    try:
        return _LAYERS.validate_python(layers)
    except ValidationError as exc:
        _raise(exc, None, PREFIX)


def validate_spec(spec: Any) -> Spec:
    """A complete spec (checkpoints, spec_from_module) as a Spec, or one IrnetEdgeError line."""
    if not isinstance(spec, dict):
        raise IrnetEdgeError(f"{PREFIX}a model spec is an object, not {_describe_value(spec)}")
    try:
        return Spec.model_validate(spec)
    except ValidationError as exc:
        _raise(exc, Spec, PREFIX)


def validate_spec_file(spec: Any) -> SpecFile:
    """A hand-written spec as a SpecFile, or one IrnetEdgeError line."""
    if not isinstance(spec, dict):
        raise IrnetEdgeError(f'{PREFIX}a model spec is a JSON object with a "layers" list (see docs/spec.md), '
                             f"not {_describe_value(spec)}")
    try:
        return SpecFile.model_validate(spec)
    except ValidationError as exc:
        _raise(exc, SpecFile, PREFIX)


def to_dict(value) -> Any:
    """The canonical JSON-able form: every field, except the OMIT_IF_DEFAULT ones left at their default."""
    if isinstance(value, BaseModel):
        fields = type(value).model_fields
        omit = getattr(value, "OMIT_IF_DEFAULT", ())
        return {name: to_dict(getattr(value, name)) for name in fields
                if not (name in omit and getattr(value, name) == fields[name].default)}
    if isinstance(value, list):
        return [to_dict(v) for v in value]
    return value


# -- rules on layer sequences ---------------------------------------------------------------------------------------

def _where(path: str, node: _Node) -> str:
    return f"layer {path} ({node.type})"


def check_rules(layers: list[_Node], channels: int, normalized_input: bool = True) -> None:
    """Refuse, from the spec alone, what would train and then fail to deploy. `normalized_input` False: the
    model sees raw pixels in [0, 1] (no input_norm first), which are never negative."""
    start = None if normalized_input or (layers and layers[0].type == "input_norm") else "the raw input (pixels " \
        "in [0, 1]; start with input_norm)"
    _walk(layers, "", start, top=True, channels=channels)


def _walk(layers: list[_Node], prefix: str, nonneg: str | None, top: bool, channels: int) -> str | None:
    """Returns what makes the sequence's output never negative (a description), or None."""
    for i, node in enumerate(layers):
        path, kind = f"{prefix}{i}", node.type
        if kind == "input_norm":
            if not (top and i == 0):
                raise IrnetEdgeError(f"{PREFIX}{_where(path, node)}: input_norm may only be the first layer")
            if len(node.mean) != channels:
                raise IrnetEdgeError(f"{PREFIX}{_where(path, node)}: mean and std have {len(node.mean)} values, "
                                     f"the input has {channels} channels")
            nonneg = None
        elif kind == "sequential":
            raise IrnetEdgeError(f"{PREFIX}{_where(path, node)}: nested sequential blocks cannot be exported; "
                                 "write their layers inline")
        elif kind in ("irconv2d", "irlinear") and node.binary_act and nonneg is not None:
            raise IrnetEdgeError(
                f"{PREFIX}{_where(path, node)} binarizes its input, but {nonneg} makes that input never negative, "
                "so its sign is always +1 and the layer cannot learn: use hardtanh instead of relu before a binary "
                "layer (or binary_act false)")
        if kind == "relu":
            nonneg = _where(path, node)
        elif kind == "residual":
            body = _walk(node.body, f"{path}.body.", nonneg, False, channels)
            short = _walk(node.shortcut, f"{path}.shortcut.", nonneg, False, channels)
            nonneg = _where(path, node) if body is not None and short is not None else None
        elif kind not in ("maxpool2d", "avgpool2d", "flatten", "global_avgpool", "shortcut_a", "hardtanh"):
            nonneg = None  # conv, linear, batchnorm, input_norm: outputs of either sign
    return nonneg


# -- docs ----------------------------------------------------------------------------------------------------------

def _default_text(info) -> str:
    if info.is_required():
        return "required"
    return json.dumps(info.default)


def _fields_table(model: type[BaseModel]) -> list[str]:
    rows = ["| field | allowed values | default | meaning |", "|---|---|---|---|"]
    for name, info in model.model_fields.items():
        if name == "type":
            continue
        why = (info.json_schema_extra or {}).get("why")
        allowed = _expects(info) + (f" ({why})" if why else "")
        default = ("kernel_size" if issubclass(model, _PoolNode) and name == "stride"
                   else "the dataset's" if model is SpecFile and info.default is None else _default_text(info))
        rows.append(f"| `{name}` | {allowed} | {default} | {info.description} |")
    return rows


def _doc_of(model: type) -> str:
    return " ".join((model.__doc__ or "").split())


def markdown() -> str:
    """docs/spec.md: every node type and field, from the schema (tests check the file is up to date)."""
    from . import zoo

    lines = ["# Model specs", "",
             "<!-- generated by `python -m irnet_edge.nn.schema > docs/spec.md`; do not edit by hand -->", "",
             "A model spec describes an architecture as JSON, so checkpoints never hold pickled code and",
             "`irnet-edge train --spec FILE` trains a custom model. Every field is typed strictly (`\"8\"` is not",
             "an integer, `\"false\"` is not a boolean), unknown fields are refused, and a spec is checked",
             "before any training, including the layer sequences deployment cannot export.", "",
             "## The spec", "", _doc_of(Spec), "", *_fields_table(Spec), "",
             "A spec file for `train --spec` may leave out all but `layers`:", "", *_fields_table(SpecFile), "",
             "If it does not start with `input_norm`, the dataset's normalisation is put first.", "",
             "`input`:", "", *_fields_table(InputShape), "",
             "## Layers", "",
             "Each layer is an object with a `type`; errors name a layer by its position in `layers`, counted",
             "from 0 (`layer 3 (irconv2d)`), nested ones by their path (`layer 5.body.0 (irconv2d)`).", ""]
    for model in NODE_MODELS:
        name = model.model_fields["type"].annotation.__args__[0]
        lines += [f"### `{name}`", "", _doc_of(model), ""]
        table = _fields_table(model)
        lines += (table if len(table) > 2 else ["No fields."]) + [""]
    lines += ["## Rules on layer sequences", "",
              "Refused when the spec is accepted, because deployment could not export the trained model:", "",
              "- `input_norm` anywhere but first;",
              "- a `relu` before a binarized layer (`irconv2d`/`irlinear` with `binary_act` true), also through",
              "  layers that keep values non-negative (`maxpool2d`, `avgpool2d`, `hardtanh`, `flatten`,",
              "  `global_avgpool`, `shortcut_a`, a `residual` whose both paths end non-negative): its input sign",
              "  is always +1;",
              "- nested `sequential` blocks (write the layers inline);",
              "- a binary filter with fewer than 2 weights (`in_channels * kernel_size^2` or `in_features`);",
              "- `batchnorm1d` over a flattened feature map larger than 1x1 unless a `linear` layer follows;",
              "- a `linear` layer after a non-square feature map;",
              "- `input` or `num_classes` different from the dataset's (`train --spec`).", "",
              "## Examples", "",
              "A small binary network for 28x28 grey images (`train --spec tiny.json --dataset mnist`):", "",
              "```json", json.dumps(_EXAMPLE, indent=1), "```", "",
              "A residual block (as in the zoo's resnet20), identity shortcut, then the activation:", "",
              "```json", json.dumps(zoo.residual([zoo.irconv(16, 16), zoo.bn2d(16)]), indent=1), "```", "",
              "The zoo's architectures (`irnet_edge.nn.zoo.zoo_spec`) are specs too.", ""]
    return "\n".join(lines)


_EXAMPLE = {"name": "tiny", "layers": [
    {"type": "conv2d", "in_channels": 1, "out_channels": 16, "kernel_size": 3, "padding": 1, "bias": False},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "batchnorm2d", "num_features": 16},
    {"type": "hardtanh"},
    {"type": "irconv2d", "in_channels": 16, "out_channels": 32, "kernel_size": 3, "padding": 1},
    {"type": "maxpool2d", "kernel_size": 2},
    {"type": "batchnorm2d", "num_features": 32, "momentum": 0.05},
    {"type": "hardtanh"},
    {"type": "flatten"},
    {"type": "batchnorm1d", "num_features": 1568, "affine": False},
    {"type": "linear", "in_features": 1568, "out_features": 10}]}


if __name__ == "__main__":
    print(markdown(), end="")


__all__ = ["BY_TYPE", "NODE_MODELS", "NODE_TYPES", "SPEC_FORMAT", "Spec", "SpecFile", "check_rules", "markdown",
           "to_dict", "validate_layers", "validate_spec", "validate_spec_file"]
