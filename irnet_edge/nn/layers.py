"""IR-Net layers and the few structural modules the zoo needs, all describable as spec data."""
import torch
import torch.nn.functional as F
from torch import nn

from .binarize import ede_sign, ede_sign_traceable, ede_tensor, libra_pb

PADDING_VALUES = ("zero", "one")


class EDEState:
    """k and t of the Error Decay Estimator; every binary layer reads them in forward and backward.

    After use_traceable_ede(model) the layers also hold a buffer `ede_kt` (k * t, t), shared by all of them and
    updated in place by set_ede, and binarize through ede_sign_traceable: the compiled training path's EDE.
    """

    k: float = 1.0
    t: float = 1.0

    def _ede_sign(self, x: torch.Tensor) -> torch.Tensor:
        kt = getattr(self, "ede_kt", None)
        return ede_sign(x, self.k, self.t) if kt is None else ede_sign_traceable(x, kt)

    def _binary_weight(self) -> torch.Tensor:
        return libra_pb(self.weight, self.k, self.t, getattr(self, "ede_kt", None))


def _check_filter_size(weights_per_filter: int) -> None:
    if weights_per_filter < 2:
        raise ValueError("Libra-PB standardises each filter by its unbiased std, which needs at least 2 weights "
                         f"per filter; this layer has {weights_per_filter}")


class IRConv2d(nn.Conv2d, EDEState):
    """Conv with Libra-PB weights and (optionally) EDE-binarized inputs.

    padding_value "zero" pads the binarized activations with 0 (the official code: padded taps contribute
    nothing); "one" pads with +1, which costs nothing on packed bits at deployment.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, bias: bool = False, binary_act: bool = True,
                 padding_value: str = "zero"):
        if padding_value not in PADDING_VALUES:
            raise ValueError(f"padding_value must be one of {PADDING_VALUES}, got {padding_value!r}")
        if padding_value == "one" and not binary_act:
            raise ValueError("padding_value='one' needs binary activations (binary_act=True)")
        super().__init__(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=bias)
        _check_filter_size(self.weight[0].numel())
        self.binary_act = binary_act
        self.padding_value = padding_value

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self._binary_weight()
        if self.binary_act:
            x = self._ede_sign(x)
        padding = self.padding
        if self.padding_value == "one" and any(padding):
            ph, pw = padding
            x = F.pad(x, (pw, pw, ph, ph), value=1.0)
            padding = 0
        return F.conv2d(x, weight, self.bias, self.stride, padding)


class IRLinear(nn.Linear, EDEState):
    """Linear layer with Libra-PB weights (per output row) and (optionally) EDE-binarized inputs."""

    def __init__(self, in_features: int, out_features: int, bias: bool = False, binary_act: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        _check_filter_size(in_features)
        self.binary_act = binary_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.binary_act:
            x = self._ede_sign(x)
        return F.linear(x, self._binary_weight(), self.bias)


class InputNorm(nn.Module):
    """(x - mean) / std per channel on inputs in [0, 1]; part of the model so deployment sees it."""

    def __init__(self, mean: list[float], std: list[float]):
        super().__init__()
        # the spec is the one source of these constants, so they stay out of the state_dict
        self.mean_values, self.std_values = [float(m) for m in mean], [float(s) for s in std]
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(-1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(-1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class ShortcutA(nn.Module):
    """ResNet option-A shortcut: take every second pixel, zero-pad `pad` channels on each side."""

    def __init__(self, pad: int):
        super().__init__()
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, self.pad, self.pad))


class Residual(nn.Module):
    """body(x) + shortcut(x); an empty shortcut is the identity."""

    def __init__(self, body: nn.Sequential, shortcut: nn.Sequential):
        super().__init__()
        self.body = body
        self.shortcut = shortcut

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


def binary_layers(model: nn.Module) -> list[EDEState]:
    return [m for m in model.modules() if isinstance(m, EDEState)]


def set_ede(model: nn.Module, k: float, t: float) -> None:
    shared = set()
    for layer in binary_layers(model):
        layer.k, layer.t = float(k), float(t)
        kt = getattr(layer, "ede_kt", None)
        if kt is not None and id(kt) not in shared:
            shared.add(id(kt))
            kt.copy_(ede_tensor(k, t))


def use_traceable_ede(model: nn.Module) -> None:
    """Give every binary layer one shared, non-persistent buffer `ede_kt` on the model's device (call after
    .to(device)): the layers then binarize with ede_sign_traceable, whose k and t change without recompiling."""
    layers = binary_layers(model)
    if not layers:
        return
    device = next(model.parameters()).device
    kt = ede_tensor(layers[0].k, layers[0].t, device)
    for layer in layers:
        layer.register_buffer("ede_kt", kt, persistent=False)
