"""The IR-Net quantizers: EDE sign (forward sign with sign(0) = +1) and Libra-PB weights."""
import math

import torch


class EDESign(torch.autograd.Function):
    """Forward: +1 where x >= 0, else -1. Backward: dL/dx = dL/dQ * k * t * (1 - tanh(t*x)^2).

    sign(0) = +1 because a single bit cannot hold 0, and training must see the deployed value.
    """

    @staticmethod
    def forward(ctx, x, k, t):
        ctx.save_for_backward(x)
        ctx.k, ctx.t = float(k), float(t)
        return torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))

    @staticmethod
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        k, t = ctx.k, ctx.t
        return grad_out * (k * t) * (1 - torch.tanh(x * t).pow(2)), None, None


def ede_sign(x: torch.Tensor, k: float, t: float) -> torch.Tensor:
    return EDESign.apply(x, k, t)


def ede_tensor(k: float, t: float, device: torch.device | str | None = None) -> torch.Tensor:
    """EDE's (k * t, t) as a float32 tensor for ede_sign_traceable: the values EDESign's float32 arithmetic uses
    (PyTorch rounds a Python float multiplying a float32 tensor to float32 first)."""
    return torch.tensor([float(k) * float(t), float(t)], dtype=torch.float32, device=device)


def ede_sign_traceable(x: torch.Tensor, kt: torch.Tensor) -> torch.Tensor:
    """EDESign in plain differentiable ops, for torch.compile and CUDA graphs: k and t live in a tensor
    (ede_tensor), so a new schedule value updates it in place instead of recompiling.

    Forward: sign(x) + (u - u.detach()) with u = x * (1 - tanh(t x)^2) * (k t): exactly sign(x) (the second
    term is 0; nan_to_num keeps it 0 where u is not finite, e.g. x = +-inf). Backward: autograd meets
    u's two products in reverse order, so dL/dx = dL/dQ * (k t) * (1 - tanh(t x)^2) with EDESign's operations in
    EDESign's order: in eager mode values and gradients equal EDESign's bit for bit, +-inf and NaN inputs
    included (tests/test_training_compiled.py).
    """
    sign = torch.where(x >= 0, torch.ones_like(x), -torch.ones_like(x))
    if not x.requires_grad:
        return sign
    slope = 1 - torch.tanh(x.detach() * kt[1]).pow(2)
    u = (x * slope) * kt[0]
    return sign + (u - u.detach()).nan_to_num(0.0, 0.0, 0.0)


def libra_standardize(w: torch.Tensor) -> torch.Tensor:
    """Per output channel: subtract the mean, divide by the unbiased std. Both stay in the graph."""
    flat = w.reshape(w.shape[0], -1)
    centred = flat - flat.mean(dim=1, keepdim=True)
    return (centred / centred.std(dim=1, unbiased=True, keepdim=True)).reshape_as(w)


def libra_scale(w_std: torch.Tensor) -> torch.Tensor:
    """s_c = 2^round(log2(mean |w_std|)) per output channel, detached, shaped to broadcast over w."""
    flat = w_std.detach().reshape(w_std.shape[0], -1)
    exponent = torch.round(torch.log(flat.abs().mean(dim=1)) / math.log(2))
    return torch.pow(2.0, exponent).reshape((-1,) + (1,) * (w_std.dim() - 1))


def libra_pb(w: torch.Tensor, k: float, t: float, kt: torch.Tensor | None = None) -> torch.Tensor:
    """The effective binary weight B_w * s_c used by IRConv2d / IRLinear in training (with kt: through
    ede_sign_traceable, the compiled path's EDE)."""
    w_std = libra_standardize(w)
    binary = ede_sign(w_std, k, t) if kt is None else ede_sign_traceable(w_std, kt)
    return binary * libra_scale(w_std)
