"""Any nn.Module whose forward torch.fx can trace, as a spec and a state_dict in the spec's key layout.

A traced forward is a graph of calls; a spec is a sequence whose only branching is the residual node
(body(x) + shortcut(x)). A graph is accepted when it is exactly that: a chain of supported layers and
functions in which a tensor feeds at most two consumers, and two branches that fork at one tensor meet again
in one add. Everything else is refused with one line naming the fx node (a module's path such as
`layer1.0.conv1`, or a function such as `cat (torch.cat)`) and the reason.
"""
import inspect
import operator
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import fx, nn

from ..errors import IrnetEdgeError
from .schema import PREFIX, check_rules, to_dict, validate_layers, validate_spec
from .spec import NODE_TYPES, SPEC_FORMAT, _forward, _int, build_model, describe_layer

# traced through rather than kept as calls: their forwards are made of supported calls
_TRACED_THROUGH = ("residual", "sequential")
_LEAVES = tuple(t.module_type for t in NODE_TYPES if t.name not in _TRACED_THROUGH)
_LEAF_TYPES = {t.module_type for t in NODE_TYPES if t.name not in _TRACED_THROUGH}
# identities at inference, which is what a spec describes
PASS_THROUGH = (nn.Identity, nn.Dropout)  # nothing at inference: dropped


def _hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return {"type": "hardtanh", "min_val": min_val, "max_val": max_val}


def _relu(input, inplace=False):
    return {"type": "relu"}


def _flatten(input, start_dim=0, end_dim=-1):
    return {"type": "flatten", "start_dim": start_dim, "end_dim": end_dim}


def _adaptive_avg_pool2d(input, output_size):
    return {"type": "global_avgpool", "output_size": _int(output_size)}


def _max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    # return_indices=True never gets here: F.max_pool2d then dispatches to max_pool2d_with_indices, refused by name
    return {"type": "maxpool2d", "kernel_size": _int(kernel_size),
            "stride": _int(stride) if stride not in (None, ()) else _int(kernel_size),
            "padding": _int(padding), "dilation": _int(dilation), "ceil_mode": ceil_mode}


def _avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                divisor_override=None):
    return {"type": "avgpool2d", "kernel_size": _int(kernel_size),
            "stride": _int(stride) if stride not in (None, ()) else _int(kernel_size), "padding": _int(padding),
            "ceil_mode": ceil_mode, "count_include_pad": count_include_pad, "divisor_override": divisor_override}


def _pad(input, pad, mode="constant", value=None):
    if mode != "constant" or value not in (None, 0) or len(pad) != 6 or tuple(pad[:4]) != (0, 0, 0, 0) \
            or pad[4] != pad[5]:
        raise IrnetEdgeError("pads other than F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p)), ResNet's option-A "
                             "shortcut: padding is not supported")
    return {"type": "shortcut_a", "pad": pad[4]}


# x[:, :, ::2, ::2] padded by F.pad: the option-A shortcut as the official ResNets write it (in a LambdaLayer)
_EVERY_SECOND_PIXEL = (slice(None), slice(None), slice(None, None, 2), slice(None, None, 2))


def _is_subsampling(node) -> bool:
    return (isinstance(node, fx.Node) and node.op == "call_function" and node.target is operator.getitem
            and node.args[1:] == (_EVERY_SECOND_PIXEL,))


# (op, target) -> a function with the call's signature that returns the node's raw spec fields
_FUNCTIONS = {
    ("call_function", F.hardtanh): _hardtanh,
    ("call_function", F.relu): _relu,
    ("call_function", torch.relu): _relu,
    ("call_method", "relu"): _relu,
    ("call_function", torch.flatten): _flatten,
    ("call_method", "flatten"): _flatten,
    ("call_function", F.adaptive_avg_pool2d): _adaptive_avg_pool2d,
    ("call_function", F.max_pool2d): _max_pool2d,
    ("call_function", F.avg_pool2d): _avg_pool2d,
    ("call_function", F.pad): _pad,
}
_ADDS = {("call_function", operator.add), ("call_function", torch.add), ("call_method", "add")}
_VIEWS = {("call_method", "view"), ("call_method", "reshape"), ("call_function", torch.reshape)}

SUPPORTED = ("modules " + ", ".join(sorted({m.__name__ for m in (*_LEAVES, *PASS_THROUGH)}))
             + ", nn.Sequential and irnet_edge's Residual; x + y (operator.add, torch.add, Tensor.add); "
             "F.hardtanh, F.relu, torch.relu, Tensor.relu, torch.flatten(x, 1), Tensor.flatten(1), "
             "x.view(x.size(0), -1), x.reshape(x.size(0), -1), F.adaptive_avg_pool2d(x, 1), F.max_pool2d, "
             "F.avg_pool2d, F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p))")


class _Refused(Exception):
    def __init__(self, node: fx.Node, reason: str):
        super().__init__(reason)
        self.node, self.reason = node, reason


class _Tracer(fx.Tracer):
    """Keeps the spec's layers as calls (their forwards are what the spec describes) and names the node that
    data-dependent control flow depends on, which plain torch.fx leaves out of its TraceError."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        # a subclass of a spec layer stays a call too, so it is refused by its own name
        return isinstance(m, _LEAVES) or super().is_leaf_module(m, module_qualified_name)

    def to_bool(self, obj):
        raise _Refused(obj.node, "decides an if, a loop or an assert in forward: data-dependent control flow "
                                 "cannot be traced")

    def iter(self, obj):
        raise _Refused(obj.node, "is iterated over in forward: its length is not known when tracing")

    def keys(self, obj):
        raise _Refused(obj.node, "is unpacked with ** in forward, which cannot be traced")


def _function_name(fn) -> str:
    module = fn.__module__ or ""
    module = {"_operator": "operator", "builtins": "", "torch._C._nn": "torch.nn.functional"}.get(module, module)
    return f"{module}.{fn.__name__}" if module else fn.__name__


@dataclass
class _Leaf:
    node: fx.Node
    raw: dict
    module: nn.Module | None  # holds the node's state_dict entries


@dataclass
class _Block:
    add: fx.Node
    body: list
    shortcut: list


class _Converter:
    def __init__(self, module: nn.Module):
        self.owner = type(module).__name__
        self.modules = dict(module.named_modules())
        was_training = module.training
        module.eval()  # `if self.training:` in a forward takes its inference branch
        try:
            graph = _Tracer().trace(module)
        except _Refused as refused:
            raise self._error(refused.node, refused.reason) from None
        except Exception as exc:  # noqa: BLE001 - torch.fx raises all kinds; each is one line for the user
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise IrnetEdgeError(f"{self.owner} cannot be traced with torch.fx: {first}") from None
        finally:
            module.train(was_training)
        for node in graph.nodes:
            if not node.users and node.op != "output" and self._in_place(node):
                # dead-code elimination would drop it, yet eagerly it changes a tensor that is used
                raise self._error(node, "overwrites its input in place and nothing uses its result: assign it "
                                        "(x = F.relu(x)) or use inplace=False")
        # the purity check of dead-code elimination looks modules up in the graph's owner
        self.graph = fx.GraphModule(module, graph).graph
        self.graph.eliminate_dead_code()  # what forward computes and never uses is not part of the model

    def _in_place(self, node: fx.Node) -> bool:
        if node.op == "call_module":
            return bool(getattr(self.modules[node.target], "inplace", False))
        if node.op not in ("call_function", "call_method"):
            return False
        name = node.target if node.op == "call_method" else getattr(node.target, "__name__", "")
        if name.endswith("_") and not name.startswith("_"):  # x.relu_(), torch.relu_, x.add_(y)
            return True
        describe = _FUNCTIONS.get((node.op, node.target))
        if describe is None:
            return bool(node.kwargs.get("inplace", False))
        try:
            return bool(inspect.signature(describe).bind(*node.args, **node.kwargs).arguments.get("inplace", False))
        except TypeError:
            return False  # refused with its arguments when classified

    def label(self, node: fx.Node) -> str:
        if node.op == "call_module":
            return f"{node.target} ({type(self.modules[node.target]).__name__})"
        if node.op == "call_function":
            return f"{node.name} ({_function_name(node.target)})"
        if node.op == "call_method":
            return f"{node.name} (Tensor.{node.target})"
        if node.op == "placeholder":
            return f"{node.name} (the input)"
        return f"{node.target} ({node.op})"

    def _error(self, node: fx.Node, reason: str) -> IrnetEdgeError:
        return IrnetEdgeError(f"{self.owner}: node {self.label(node)} {reason}")

    # -- what each node is ------------------------------------------------------------------------------------------

    @staticmethod
    def _is_shape(node: fx.Node) -> bool:
        return ((node.op, node.target) == ("call_method", "size")
                or (node.op == "call_function" and node.target is getattr and node.args[1:] == ("shape",)))

    def _is_batch(self, value) -> bool:
        """x.size(0), x.shape[0] or x.size()[0]: every supported layer keeps dimension 0, so any tensor's will do."""
        if not isinstance(value, fx.Node):
            return False
        if (value.op, value.target) == ("call_method", "size"):
            return (value.args[1] if len(value.args) > 1 else value.kwargs.get("dim")) == 0
        if value.op != "call_function" or value.target is not operator.getitem or value.args[1] != 0:
            return False
        source = value.args[0]  # x.shape, or x.size() without a dimension
        return isinstance(source, fx.Node) and self._is_shape(source) and (
            source.target is getattr or (len(source.args) == 1 and not source.kwargs))

    def _view_shape(self, node: fx.Node):
        shape = node.args[1:] if node.op == "call_method" else node.args[1:] + tuple(node.kwargs.values())
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return shape

    def _check_shape_use(self, node: fx.Node) -> None:
        for user in node.users:
            if user.op == "call_function" and user.target is operator.getitem and user.args[0] is node:
                self._check_shape_use(user)
            elif not ((user.op, user.target) in _VIEWS and self._view_shape(user)[1:] == (-1,)
                      and self._is_batch(self._view_shape(user)[0])):
                raise self._error(node, "is used by " + self.label(user) + ": a tensor's size may only flatten it, "
                                  "as in x.view(x.size(0), -1)")

    def _layer_input(self, node: fx.Node) -> fx.Node:
        tensors = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, fx.Node)]
        if (node.op, node.target) in _VIEWS:
            tensors = tensors[:1]
        if len(tensors) != 1 or not node.args or node.args[0] is not tensors[0]:
            raise self._error(node, "takes another computed value besides its input: a layer takes one tensor")
        return tensors[0]


    def _schema_checked(self, node: fx.Node, raw: dict) -> dict:
        try:
            validate_layers([raw])
        except IrnetEdgeError as exc:
            reason = re.sub(r"^" + re.escape(PREFIX) + r"layer 0 \(\w+\): ", "", str(exc))
            raise self._error(node, f"cannot be a {raw['type']} layer: {reason}") from None
        return raw

    def classify(self, node: fx.Node):
        """'input', 'output', 'shape', 'add', None (passes its input through) or a _Leaf."""
        op, target = node.op, node.target
        if op == "placeholder":
            return "input"
        if op == "output":
            if not isinstance(node.args[0], fx.Node):
                raise self._error(node, "is not one tensor: forward must return the class logits alone")
            return "output"
        if op == "get_attr":
            raise self._error(node, "is a parameter or buffer read directly in forward: only the supported "
                                    "modules may hold weights")
        if self._is_shape(node):
            self._check_shape_use(node)
            return "shape"
        if op == "call_function" and target is operator.getitem and isinstance(node.args[0], fx.Node) \
                and self._is_shape(node.args[0]):
            return "shape"
        if (op, target) in _ADDS:
            operands = [a for a in (*node.args, *node.kwargs.values()) if isinstance(a, fx.Node)]
            others = [a for a in node.args if not isinstance(a, fx.Node)] + [
                k for k, v in node.kwargs.items() if not isinstance(v, fx.Node) and not (k == "alpha" and v == 1)]
            if len(operands) != 2 or others:
                raise self._error(node, "is not a plain sum of two tensors (x + y), which residual blocks need")
            if operands[0] is operands[1]:
                raise self._error(node, "adds a tensor to itself, which a residual block (body + shortcut) "
                                        "cannot express")
            return "add"
        if op == "call_module":
            module = self.modules[target]
            if isinstance(module, PASS_THROUGH):
                self._layer_input(node)
                return None
            if type(module) not in _LEAF_TYPES:
                raise self._error(node, f"is not supported; supported: {SUPPORTED}")
            self._layer_input(node)
            if getattr(module, "inplace", False):
                self.inplace.append(node)
            try:
                raw = describe_layer(module)
            except IrnetEdgeError as exc:
                raise self._error(node, f"is refused: {exc}") from None
            return _Leaf(node, self._schema_checked(node, raw), module)
        if op == "call_function" and target is operator.getitem:
            if _is_subsampling(node) and all(u.op == "call_function" and u.target is F.pad for u in node.users):
                self._layer_input(node)
                return None  # the shortcut_a of the F.pad that follows
            raise self._error(node, "indexes or slices a tensor, which is not supported (but for x[:, :, ::2, ::2] "
                                    "padded by F.pad, ResNet's option-A shortcut)")
        if op == "call_function" and target is F.pad and not _is_subsampling(node.args[0]):
            raise self._error(node, "pads something other than x[:, :, ::2, ::2]: only ResNet's option-A shortcut, "
                                    "F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, p, p)), is supported")
        if (op, target) in _VIEWS:
            shape = self._view_shape(node)
            if shape[1:] != (-1,) or not self._is_batch(shape[0]):
                raise self._error(node, "reshapes to something other than (batch, -1); only flattening, "
                                        "x.view(x.size(0), -1), is supported")
            self._layer_input(node)
            return _Leaf(node, {"type": "flatten"}, None)
        describe = _FUNCTIONS.get((op, target))
        if describe is None:
            raise self._error(node, f"is not supported; supported: {SUPPORTED}")
        self._layer_input(node)
        try:
            bound = inspect.signature(describe).bind(*node.args, **node.kwargs)
        except TypeError as exc:
            raise self._error(node, f"has arguments the conversion does not know: {exc}") from None
        bound.apply_defaults()
        if bound.arguments.get("inplace", False):
            self.inplace.append(node)
        try:
            raw = describe(**bound.arguments)
        except IrnetEdgeError as exc:
            raise self._error(node, f"is refused: {exc}") from None
        return _Leaf(node, self._schema_checked(node, raw), None)

    def users(self, node: fx.Node) -> list[fx.Node]:
        return [u for u in node.users if self.kinds[u] != "shape"]

    # -- the graph as a sequence of layers and residual blocks -------------------------------------------------------

    def convert(self) -> list:
        nodes = list(self.graph.nodes)
        inputs = [n for n in nodes if n.op == "placeholder"]
        if len(inputs) != 1:
            raise IrnetEdgeError(f"{self.owner}: forward takes {len(inputs)} inputs ("
                                 f"{', '.join(n.name for n in inputs)}); one batch of images is needed")
        self.kinds, self.inplace = {}, []
        for node in nodes:
            self.kinds[node] = self.classify(node)
        for node in self.inplace:
            if len(self.users(node.args[0])) > 1:
                # the graph reads as if it were pure, but eagerly the other reader sees the overwritten values
                raise self._error(node, "overwrites its input in place, but another node reads that input too: "
                                        "use inplace=False")
        return self.sequence(inputs[0], in_branch=False)[0]

    def sequence(self, value: fx.Node, in_branch: bool):
        """Follows value's consumers to the output, or (in_branch) to the add that ends the branch. Returns the
        items, the last tensor and that add."""
        items = []
        while True:
            users = self.users(value)
            if not users:
                raise self._error(value, "is computed but only its size is used")
            if len(users) > 2:
                raise self._error(value, f"is used by {len(users)} consumers ({', '.join(map(self.label, users))}): "
                                         "a tensor may feed a residual block's body and shortcut, no more")
            if len(users) == 2:
                block = self.fork(value, users)
                items.append(block)
                value = block.add
                continue
            (user,) = users
            kind = self.kinds[user]
            if kind == "output":
                if in_branch:
                    raise self._error(value, "reaches the output without being added to the other branch")
                return items, value, None
            if kind == "add":
                if not in_branch:
                    raise self._error(user, "adds two tensors that do not fork from one tensor as a residual "
                                            "block's body and shortcut do")
                return items, value, user
            if kind is not None:
                items.append(kind)
            value = user

    def fork(self, value: fx.Node, users: list[fx.Node]) -> _Block:
        branches = []
        for user in users:
            if self.kinds[user] == "add":
                branches.append(([], value, user))
            elif self.kinds[user] == "output":
                raise self._error(value, "is both returned and used further")
            else:
                items, last, join = self.sequence(user, in_branch=True)
                first = self.kinds[user]
                branches.append(([first, *items] if first is not None else items, last, join))
        (items_a, last_a, join_a), (items_b, last_b, join_b) = branches
        if join_a is not join_b:
            raise self._error(value, f"forks into branches that end in different adds ({self.label(join_a)}, "
                                     f"{self.label(join_b)}): a residual block's body and shortcut meet in one add")
        operands = [a for a in (*join_a.args, *join_a.kwargs.values()) if isinstance(a, fx.Node)]
        if {last_a, last_b} != set(operands):
            raise self._error(join_a, f"does not add the two branches that fork at {self.label(value)}")
        # body(x) + shortcut(x) as written, except that an empty branch is the (identity) shortcut
        by_operand = {last_a: items_a, last_b: items_b}
        body, shortcut = by_operand[operands[0]], by_operand[operands[1]]
        if not body:
            body, shortcut = shortcut, body
        return _Block(join_a, body, shortcut)


def _emit(items: list, prefix: str, converter: _Converter, state: dict, where: dict) -> list[dict]:
    layers = []
    for i, item in enumerate(items):
        path = f"{prefix}{i}"
        if isinstance(item, _Leaf):
            layers.append(item.raw)
            where[path] = converter.label(item.node)
            if item.module is not None:
                state.update({f"{path}.{key}": value.detach().cpu().clone()
                              for key, value in item.module.state_dict().items()})
        else:
            body = _emit(item.body, f"{path}.body.", converter, state, where)
            shortcut = _emit(item.shortcut, f"{path}.shortcut.", converter, state, where)
            layers.append({"type": "residual", "body": body, "shortcut": shortcut})
            where[path] = f"{converter.label(item.add)}, the add that ends a residual block,"
    return layers


def describe_traced(module: nn.Module, input_shape: tuple[int, int, int],
                    name: str = "custom") -> tuple[dict, dict[str, torch.Tensor]]:
    """The spec of a module that torch.fx traces into supported layers, adds and the package's shortcut, and its
    weights and BatchNorm statistics (copies) under the keys of the model the spec builds."""
    converter = _Converter(module)
    items = converter.convert()
    state, where = {}, {}
    raw = _emit(items, "", converter, state, where)

    def named(exc: IrnetEdgeError) -> IrnetEdgeError:
        """The spec's layer paths ("layer 3.body.0 (irconv2d)") as the user's fx nodes."""
        def node(match):
            return f"node {where[match[1]]}" if match[1] in where else match[0]
        message = re.sub(r"layer (\d+(?:\.(?:body|shortcut)\.\d+)*) \((\w+)\)", node, str(exc))
        return IrnetEdgeError(f"{converter.owner}: {message.removeprefix(PREFIX)}")

    channels, height, width = input_shape
    try:
        layers = validate_layers(raw)
        check_rules(layers, channels, normalized_input=False)
        described = [to_dict(node) for node in layers]
        model = build_model({"format": SPEC_FORMAT, "layers": described})
        out = _forward(model, described, (channels, height, width))
    except IrnetEdgeError as exc:
        raise named(exc) from None
    if out.dim() != 2:
        raise IrnetEdgeError(f"a model must end in class logits (N, classes); this one gives {tuple(out.shape)}")
    spec = {"format": SPEC_FORMAT, "name": name, "input": {"channels": channels, "height": height, "width": width},
            "num_classes": int(out.shape[1]), "layers": described}
    return to_dict(validate_spec(spec)), state
