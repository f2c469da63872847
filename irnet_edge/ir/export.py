"""Export a checkpoint to the deployment graph (docs/arithmetic.md defines every op it emits).

The exporter walks the model spec with the built modules beside it and recognises layer groups:
  conv | irconv | linear | irlinear, then optionally max-pool, BatchNorm, hardtanh/ReLU, max-pool
becomes one conv/linear op with a fused per-channel affine (Libra-PB scale, bias and BatchNorm folded),
emitting packed bits through integer thresholds when its only consumer binarizes it, plus a pooling op
(max-pooling of any kernel, stride and padding, over floats or bits). An average pool is an op of its own on
floats.
Residual blocks become an add; a BatchNorm1d right before the classifier folds into it.
"""
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..errors import IrnetEdgeError
from ..nn.binarize import libra_scale, libra_standardize
from ..nn.checkpoint import Checkpoint
from ..nn.layers import IRConv2d, IRLinear
from .bits import pack_negative
from .graph import Graph, Op, Tensor

SUPPORTED = ("input_norm first; conv2d / irconv2d / linear / irlinear, each optionally followed by maxpool2d, "
             "batchnorm, hardtanh or relu; residual blocks (body + identity, shortcut_a or conv+bn shortcut) "
             "followed by hardtanh or relu; maxpool2d and avgpool2d (any kernel, stride, padding <= kernel / 2); "
             "global_avgpool; flatten; batchnorm on float tensors")
_ACTS = ("hardtanh", "relu")
_CONVS = ("conv2d", "irconv2d", "linear", "irlinear")


@dataclass
class _Layer:
    path: str
    node: dict
    module: nn.Module

    @property
    def type(self) -> str:
        return self.node["type"]


def _layers(nodes: list[dict], modules: nn.Sequential, prefix: str = "") -> list[_Layer]:
    return [_Layer(f"{prefix}{i}", node, module) for i, (node, module) in enumerate(zip(nodes, modules, strict=True))]


def _describe(layer: _Layer) -> str:
    return f"{layer.path} ({layer.type})"


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().cpu().numpy()


def _bn_gamma(bn: nn.Module) -> np.ndarray:
    """A BatchNorm's scale; affine=False has none: 1."""
    return _f64(bn.weight) if bn.weight is not None else np.ones(bn.num_features)


def _bn_beta(bn: nn.Module) -> np.ndarray:
    """A BatchNorm's shift; affine=False has none: 0."""
    return _f64(bn.bias) if bn.bias is not None else np.zeros(bn.num_features)


def _check_finite(layer: _Layer) -> None:
    for name, value in list(layer.module.named_parameters()) + list(layer.module.named_buffers()):
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise IrnetEdgeError(f"layer {layer.path} ({layer.type}) has non-finite values in {name}; "
                                 "the checkpoint is damaged or training diverged: re-train it")
    _check_foldable(layer)


def thresholds(mult: np.ndarray, add: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer thresholds equal to the float expression they replace.

    For every channel, y(d) = fl(fl(float(d) * m) + b) in float32 for each reachable dot product
    d in [-k, k]. Returns (flip, T) such that for every such d: y(d) >= 0  <=>  d' >= T, where d' = d
    (flip False) or d' = -d (flip True: the filter bits are inverted, so the kernel computes -d).
    """
    d = np.arange(-k, k + 1, dtype=np.float32)
    flip = mult < 0
    limit = np.zeros(len(mult), dtype=np.int32)
    for c, (m, b) in enumerate(zip(mult.astype(np.float32), add.astype(np.float32), strict=True)):
        y = (d * m).astype(np.float32) + b
        positive = y >= 0
        dp = -d if flip[c] else d
        order = np.argsort(dp)
        seq = positive[order]
        if seq.any():
            first = int(np.argmax(seq))
            if not seq[first:].all():
                raise AssertionError(f"channel {c}: the output transform is not monotonic")
            limit[c] = int(dp[order][first])
        else:
            limit[c] = k + 1  # never +1
    return flip, limit


# ---- constants the C can hold -------------------------------------------------------------------
_F32_MAX = float(np.finfo(np.float32).max)


def _check_foldable(layer: _Layer) -> None:
    """Finite values that folding would still turn into NaN, 0/0 or inf, refused by cause and layer."""
    m, where = layer.module, f"cannot export layer {layer.path} ({layer.type})"
    if isinstance(m, nn.modules.batchnorm._BatchNorm):
        if not (isinstance(m.eps, (int, float)) and math.isfinite(m.eps) and m.eps > 0):
            raise IrnetEdgeError(f"{where}: its eps is {m.eps!r}; BatchNorm divides by sqrt(running_var + eps), "
                                 "which needs eps > 0 (PyTorch's default is 1e-5): fix the spec and re-train")
        var = m.running_var
        if var is not None and bool((var < 0).any()):
            c = int(torch.nonzero(var < 0)[0, 0])
            raise IrnetEdgeError(f"{where}: running_var is negative in channel {c} ({float(var[c]):.6g}); a variance "
                                 "never is: the checkpoint is damaged or was edited, re-train it")
    if isinstance(m, (IRConv2d, IRLinear)):
        w = m.weight.detach()
        flat = w.reshape(w.shape[0], -1)
        spread = (flat - flat.mean(dim=1, keepdim=True)).std(dim=1, unbiased=True)
        scale = libra_scale(libra_standardize(w)).flatten()
        bad = ~(torch.isfinite(spread) & (spread > 0) & torch.isfinite(scale) & (scale > 0))
        if bool(bad.any()):
            c = int(torch.nonzero(bad)[0, 0])
            if float(spread[c]) == 0:
                why = (f"all its {flat.shape[1]} weights are equal ({float(flat[c, 0]):.6g}), so Libra-PB cannot "
                       "standardise it and its binary scale is 0/0")
            else:
                why = (f"its binary scale (Libra-PB) is {float(scale[c]):.6g}: its weights (up to "
                       f"{float(flat[c].abs().max()):.3g}) overflow float32 when standardised")
            raise IrnetEdgeError(f"{where}: filter {c}: {why}; the checkpoint is damaged or training diverged, "
                                 "re-train it")


def _check_constants(kind: str, source: str, inputs: list, attrs: dict, consts: dict) -> None:
    """Every folded constant of an op is a finite float32 and what the kernel computes from it stays finite:
    the C has no literal for inf or NaN, and NaN logits compare differently on x86 and ARM."""
    where = f"cannot export {'layers' if ', ' in source else 'layer'} {source}"
    if kind == "normalize":
        mean, std = consts["mean"].astype(np.float32), consts["std"].astype(np.float32)
        pixels = (np.arange(256, dtype=np.float32) / np.float32(255.0))[:, None]
        with np.errstate(all="ignore"):
            values = (pixels - mean[None, :]) / std[None, :]
        bad = ~(np.isfinite(mean) & np.isfinite(std) & (std != 0) & np.isfinite(values).all(axis=0))
        if bad.any():
            c = int(np.argmax(bad))
            raise IrnetEdgeError(f"{where}: input channel {c} has mean {float(mean[c]):.6g} and std "
                                 f"{float(std[c]):.6g}; (pixel / 255 - mean) / std needs a finite mean and a finite, "
                                 "non-zero std that keep it within float32: fix the spec's input_norm")
        return
    for name, value in consts.items():
        array = np.asarray(value)
        if array.dtype.kind != "f":
            continue
        bad = ~np.isfinite(array.astype(np.float32))
        if bad.any():
            channel = int(np.unravel_index(int(np.argmax(bad)), array.shape)[0])
            raise IrnetEdgeError(f"{where}: its folded {name} is {array.flat[int(np.argmax(bad))]} in output channel "
                                 f"{channel}, which float32 C cannot hold: folding overflows float32 (|x| > 3.4e38; "
                                 "a BatchNorm gamma / sqrt(running_var + eps), weight or bias far too large); "
                                 "re-train it")
    if kind == "bconv" and attrs.get("out") == "f32":  # y = fl(fl(d * mult) + add) for |d| <= k * k * cin
        reach = np.float32(attrs["k"] * attrs["k"] * inputs[0].channels)
        with np.errstate(all="ignore"):
            extreme = np.abs(reach * consts["mult"].astype(np.float32)) + np.abs(consts["add"].astype(np.float32))
        if not np.isfinite(extreme).all():
            c = int(np.argmax(~np.isfinite(extreme)))
            raise IrnetEdgeError(f"{where}: output channel {c} scales dot products of up to {int(reach)} by "
                                 f"{float(consts['mult'][c]):.6g}, which overflows float32: re-train it")


class _Exporter:
    def __init__(self, ckpt: Checkpoint):
        self.spec = ckpt.spec
        self.model = ckpt.build()
        inp = ckpt.spec["input"]
        self.graph = Graph(name=ckpt.spec["name"], num_classes=ckpt.spec["num_classes"], input="input",
                           output="")
        self.graph.tensors["input"] = Tensor("input", "u8", inp["channels"], inp["height"], inp["width"])
        self.packed: dict[str, str] = {}

    # -- helpers ---------------------------------------------------------------------------------
    def _tensor(self, kind: str, channels: int, height: int = 1, width: int = 1) -> Tensor:
        t = Tensor(f"t{len(self.graph.tensors)}", kind, channels, height, width)
        self.graph.tensors[t.name] = t
        return t

    def _op(self, kind: str, inputs: list[Tensor], output: Tensor, source: str, attrs=None, consts=None) -> Tensor:
        _check_constants(kind, source, inputs, attrs or {}, consts or {})
        name = f"op{len(self.graph.ops)}_{kind}"
        self.graph.ops.append(Op(kind, name, [t.name for t in inputs], output.name, attrs or {}, consts or {},
                                 source))
        return output

    def _unsupported(self, layer: _Layer, why: str) -> IrnetEdgeError:
        return IrnetEdgeError(f"cannot export layer {layer.path} ({layer.type}): {why}. Supported: {SUPPORTED}")

    def _as_bits(self, x: Tensor, layer: _Layer) -> Tensor:
        if x.kind == "bits":
            return x
        if x.kind != "f32":
            raise self._unsupported(layer, "a binary layer needs a float or binary input")
        if x.name not in self.packed:
            out = self._tensor("bits", x.channels, x.height, x.width)
            self._op("sign_pack", [x], out, f"sign of the input of {layer.path}")
            self.packed[x.name] = out.name
        return self.graph.tensors[self.packed[x.name]]

    # -- sequences -------------------------------------------------------------------------------
    def export(self) -> Graph:
        layers = _layers(self.spec["layers"], self.model)
        if not layers or layers[0].type != "input_norm":
            raise IrnetEdgeError("cannot export: the model must start with input_norm (every zoo and "
                                 "spec_from_module model does)")
        x = self._input_norm(layers[0])
        x = self._sequence(layers[1:], x)
        if x.kind != "f32" or (x.channels, x.height, x.width) != (self.graph.num_classes, 1, 1):
            raise IrnetEdgeError(f"cannot export: the model ends in {x.describe()}, not {self.graph.num_classes} "
                                 "logits")
        self.graph.output = x.name
        return self.graph

    def _input_norm(self, layer: _Layer) -> Tensor:
        src = self.graph.tensors["input"]
        out = self._tensor("f32", *src.shape)
        m = layer.module
        return self._op("normalize", [src], out, _describe(layer), consts={
            "mean": m.mean.flatten().numpy().astype(np.float32), "std": m.std.flatten().numpy().astype(np.float32)})

    def _sequence(self, layers: list[_Layer], x: Tensor) -> Tensor:
        i, pending_bn = 0, None
        while i < len(layers):
            layer = layers[i]
            _check_finite(layer)
            kind = layer.type
            if kind in _CONVS:
                i, x = self._conv_group(layers, i, x, pending_bn)
                pending_bn = None
                continue
            if kind in ("batchnorm1d", "batchnorm2d"):
                following = layers[i + 1].type if i + 1 < len(layers) else None
                if kind == "batchnorm1d" and following == "linear":
                    pending_bn = layer  # folded into the classifier
                else:
                    act = following if following in _ACTS else "none"
                    x = self._affine(layer, x, act)
                    i += act != "none"
            elif kind == "flatten":
                pass  # tensors stay (C, H, W); the next linear layer consumes all of it
            elif kind == "residual":
                act = layers[i + 1].type if i + 1 < len(layers) and layers[i + 1].type in _ACTS else "none"
                x = self._residual(layer, x, act)
                i += act != "none"
            elif kind in _ACTS:
                if x.kind != "f32":
                    raise self._unsupported(layer, "an activation needs a float input here")
                x = self._op("clamp", [x], self._tensor("f32", *x.shape), _describe(layer), attrs={"act": kind})
            elif kind == "maxpool2d":
                x = self._pool(x, layer, np.zeros(x.channels, dtype=bool))
            elif kind == "avgpool2d":
                x = self._avgpool(x, layer)
            elif kind == "global_avgpool":
                if x.kind != "f32":
                    raise self._unsupported(layer, "average pooling needs a float input")
                x = self._op("avgpool", [x], self._tensor("f32", x.channels), _describe(layer))
            elif kind == "shortcut_a":
                x = self._shortcut_a(layer, x)
            else:
                raise self._unsupported(layer, "this layer cannot stand here")
            i += 1
        return x

    def _affine(self, layer: _Layer, x: Tensor, act: str) -> Tensor:
        """A BatchNorm that nothing can absorb: y = x * m + b per channel, then the activation."""
        if x.kind != "f32":
            raise self._unsupported(layer, "a standalone batchnorm needs a float input")
        if layer.type == "batchnorm1d" and x.height * x.width != 1:
            raise self._unsupported(layer, "a batchnorm1d over a flattened feature map must precede a linear layer")
        bn = layer.module
        inv = _bn_gamma(bn) / np.sqrt(_f64(bn.running_var) + bn.eps)
        add = _bn_beta(bn) - _f64(bn.running_mean) * inv
        return self._op("affine", [x], self._tensor("f32", *x.shape), _describe(layer), attrs={"act": act},
                        consts={"mult": inv.astype(np.float32), "add": add.astype(np.float32)})

    def _residual(self, layer: _Layer, x: Tensor, act: str) -> Tensor:
        if x.kind != "f32":
            raise self._unsupported(layer, "a residual block needs a float input")
        body = self._sequence(_layers(layer.node["body"], layer.module.body, f"{layer.path}.body."), x)
        short = self._sequence(_layers(layer.node["shortcut"], layer.module.shortcut, f"{layer.path}.shortcut."), x)
        if body.kind != "f32" or short.kind != "f32" or body.shape != short.shape:
            raise self._unsupported(layer, f"body gives {body.describe()}, shortcut gives {short.describe()}")
        return self._op("add", [body, short], self._tensor("f32", *body.shape), _describe(layer),
                        attrs={"act": act})

    def _shortcut_a(self, layer: _Layer, x: Tensor) -> Tensor:
        pad = layer.node["pad"]
        out = self._tensor("f32", x.channels + 2 * pad, (x.height + 1) // 2, (x.width + 1) // 2)
        return self._op("shortcut_a", [x], out, _describe(layer), attrs={"pad": pad})

    def _pool_geometry(self, x: Tensor, layer: _Layer) -> tuple[int, int, int, int, int]:
        """(k, stride, pad, ho, wo) of a pooling layer; every window must hold a pixel of the map (pad <= k / 2,
        PyTorch's own rule) and ceil_mode is not supported (the schema refuses it too)."""
        node = layer.node
        k, stride, pad = node["kernel_size"], node["stride"], node.get("padding", 0)
        if node.get("ceil_mode", False):
            raise self._unsupported(layer, "ceil_mode is not supported")
        if pad > k // 2:
            raise self._unsupported(layer, f"padding {pad} is more than half the kernel size {k}")
        ho, wo = (x.height + 2 * pad - k) // stride + 1, (x.width + 2 * pad - k) // stride + 1
        if ho < 1 or wo < 1:
            raise self._unsupported(layer, f"its {k}x{k} window (padding {pad}) is larger than its input "
                                           f"{x.describe()}")
        return k, stride, pad, ho, wo

    def _pool(self, x: Tensor, layer: _Layer, use_min: np.ndarray) -> Tensor:
        """A max-pool (any kernel, stride and padding) over floats or bits; use_min: channels that take the min."""
        k, stride, pad, ho, wo = self._pool_geometry(x, layer)
        out = self._tensor(x.kind, x.channels, ho, wo)
        attrs = {"k": k, "stride": stride, "pad": pad}
        if x.kind == "bits":
            return self._op("maxpool_bits", [x], out, _describe(layer), attrs=attrs,
                            consts={"or_mask": pack_negative(use_min)})
        return self._op("maxpool_f32", [x], out, _describe(layer), attrs=attrs,
                        consts={"min_mask": use_min.astype(np.uint8)})

    def _avgpool(self, x: Tensor, layer: _Layer) -> Tensor:
        """An average pool (any kernel, stride and padding) over floats; divisor 0: the pixels inside the map."""
        if x.kind != "f32":
            raise self._unsupported(layer, "average pooling needs a float input")
        k, stride, pad, ho, wo = self._pool_geometry(x, layer)
        node = layer.node
        divisor = node.get("divisor_override") or (k * k if node.get("count_include_pad", True) else 0)
        return self._op("avgpool2d", [x], self._tensor("f32", x.channels, ho, wo), _describe(layer),
                        attrs={"k": k, "stride": stride, "pad": pad, "divisor": divisor})

    # -- conv / linear groups --------------------------------------------------------------------
    def _conv_group(self, layers: list[_Layer], i: int, x: Tensor, pre_bn: _Layer | None) -> tuple[int, Tensor]:
        """Emits the ops of the group starting at layers[i]; returns the next index and the group's output."""
        head = layers[i]
        j = i + 1

        def take(types):
            nonlocal j
            if j < len(layers) and layers[j].type in types:
                j += 1
                _check_finite(layers[j - 1])
                return layers[j - 1]
            return None

        linear = head.type in ("linear", "irlinear")
        pre_pool = None if linear else take(("maxpool2d",))
        bn = take(("batchnorm1d",) if linear else ("batchnorm2d",))
        act = take(_ACTS)
        post_pool = None if linear or pre_pool else take(("maxpool2d",))
        consumer = next((lay for lay in layers[j:] if lay.type != "flatten"), None)
        to_bits = (consumer is not None and consumer.type in ("irconv2d", "irlinear")
                   and consumer.node["binary_act"])
        if to_bits and act is not None and act.type == "relu":
            raise self._unsupported(act, "ReLU followed by binarization is constant +1")
        module = head.module
        binary_in = isinstance(module, (IRConv2d, IRLinear)) and module.binary_act
        weight = module.weight.detach()
        if linear:
            weight = weight.reshape(weight.shape[0], x.channels, x.height, x.width)
        if isinstance(module, (IRConv2d, IRLinear)):
            w_std = libra_standardize(weight)
            scale = _f64(libra_scale(w_std).flatten())
            negative = (w_std < 0).numpy()
        else:
            scale = np.ones(weight.shape[0])
        bias = _f64(module.bias) if module.bias is not None else np.zeros(weight.shape[0])
        mult, add = scale.copy(), bias.copy()
        if bn is not None:
            inv = _bn_gamma(bn.module) / np.sqrt(_f64(bn.module.running_var) + bn.module.eps)
            mult = scale * inv
            add = _bn_beta(bn.module) + (bias - _f64(bn.module.running_mean)) * inv
        mult32, add32 = mult.astype(np.float32), add.astype(np.float32)
        source = ", ".join(_describe(lay) for lay in layers[i:j])
        act_name = act.type if act is not None else "none"
        _check_constants("fold", source, [], {}, {"mult": mult32, "add": add32})  # before thresholds() use them
        if linear:
            spatial = (1, 1)
            k, stride, pad, padding_value = x.height, 1, 0, "zero"
            if x.height != x.width:
                raise self._unsupported(head, "a linear layer after a non-square feature map")
        else:
            k, stride, pad = head.node["kernel_size"], head.node["stride"], head.node["padding"]
            padding_value = head.node.get("padding_value", "zero")
            spatial = ((x.height + 2 * pad - k) // stride + 1, (x.width + 2 * pad - k) // stride + 1)
        cout = weight.shape[0]
        if binary_in:
            xin = self._as_bits(x, head)
            geometry = {"k": k, "stride": stride, "pad": pad, "pad_one": int(padding_value == "one")}
            if to_bits:
                flip, limit = thresholds(mult32, add32, k * k * x.channels)
                negative = negative ^ flip[:, None, None, None]
                out = self._tensor("bits", cout, *spatial)
                self._op("bconv", [xin], out, source, attrs={**geometry, "out": "bits", "act": "none"},
                         consts={"weight": pack_negative(negative.transpose(0, 2, 3, 1)), "threshold": limit})
            else:
                out = self._tensor("f32", cout, *spatial)
                self._op("bconv", [xin], out, source, attrs={**geometry, "out": "f32", "act": act_name},
                         consts={"weight": pack_negative(negative.transpose(0, 2, 3, 1)),
                                 "mult": mult32, "add": add32})
        else:
            if x.kind != "f32":
                raise self._unsupported(head, "a full-precision layer needs a float input")
            if isinstance(module, (IRConv2d, IRLinear)):  # 1W/32A: +-1 weights, the scale is in mult
                w = np.where(negative, -1.0, 1.0)
            else:
                w = _f64(weight)
            if pre_bn is not None:  # BatchNorm1d before the classifier, folded into it
                if not linear:
                    raise self._unsupported(pre_bn, "batchnorm1d must precede a linear layer")
                inv = _bn_gamma(pre_bn.module) / np.sqrt(_f64(pre_bn.module.running_var) + pre_bn.module.eps)
                shift = _bn_beta(pre_bn.module) - _f64(pre_bn.module.running_mean) * inv
                add = add + mult * (w.reshape(cout, -1) @ shift.reshape(-1))
                w = w * inv.reshape(1, x.channels, x.height, x.width)
                add32 = add.astype(np.float32)
                source = f"{_describe(pre_bn)}, {source}"
            weight_hwc = w.transpose(0, 2, 3, 1).astype(np.float32)
            kind = "bits" if to_bits else "f32"
            out = self._tensor(kind, cout, *spatial)
            self._op("conv_f32", [x], out, source,
                     attrs={"k": k, "stride": stride, "pad": pad, "out": kind, "act": "none" if to_bits else act_name},
                     consts={"weight": weight_hwc, "mult": mult32, "add": add32})
        pool = pre_pool or post_pool
        if pool is not None:
            use_min = (mult32 < 0) if pre_pool is not None else np.zeros(cout, dtype=bool)
            out = self._pool(out, pool, use_min)
        return j, out


def export(ckpt: Checkpoint) -> Graph:
    """The deployment graph of a checkpoint, or one IrnetEdgeError naming the layer it cannot export."""
    return _Exporter(ckpt).export()
