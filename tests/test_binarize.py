import math

import pytest
import torch
import torch.nn.functional as F

from irnet_edge.nn import IRConv2d, IRLinear, ede_sign, libra_pb, libra_scale, libra_standardize
from irnet_edge.nn.layers import set_ede


def test_sign_of_zero_is_plus_one():
    x = torch.tensor([-2.0, -0.0, 0.0, 1e-30, -1e-30, 3.0])
    assert ede_sign(x, 1.0, 1.0).tolist() == [-1.0, 1.0, 1.0, 1.0, -1.0, 1.0]


def test_libra_pb_hand_worked_example():
    # one filter of 4 weights: mean 2.5, centred [-1.5, -0.5, 0.5, 1.5], unbiased std sqrt(5/3)
    w = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    std = math.sqrt((2.25 + 0.25 + 0.25 + 2.25) / 3)
    expected_std = torch.tensor([[-1.5, -0.5, 0.5, 1.5]]) / std
    assert torch.allclose(libra_standardize(w), expected_std)
    # mean |w_std| = 1 / sqrt(5/3) = 0.7746 -> log2 = -0.369 -> rounds to 0 -> s = 1
    assert libra_scale(libra_standardize(w)).item() == 1.0
    assert libra_pb(w, 1.0, 1.0).tolist() == [[-1.0, -1.0, 1.0, 1.0]]


def test_libra_scale_is_a_detached_power_of_two_below_one_for_heavy_tails():
    # a filter with one huge weight: mean |w_std| ~ 0.35 -> 2^-2 ... 2^-1
    w = torch.tensor([[0.0] * 15 + [100.0]], requires_grad=True)
    s = libra_scale(libra_standardize(w))
    assert not s.requires_grad
    exponent = math.log2(s.item())
    assert exponent == round(exponent) and exponent < 0
    mean_abs = libra_standardize(w).abs().mean().item()
    assert s.item() == 2.0 ** round(math.log2(mean_abs))


def test_binary_weights_equal_sign_of_centred_weights():
    w = torch.randn(8, 5, 3, 3)
    binary = libra_pb(w, 1.0, 1.0) / libra_scale(libra_standardize(w))
    centred = w - w.reshape(8, -1).mean(1).view(8, 1, 1, 1)
    assert torch.equal(binary, torch.where(centred >= 0, 1.0, -1.0))


@pytest.mark.parametrize("k,t", [(10.0, 0.1), (1.0, 3.0), (1.0, 10.0)])
def test_ede_gradient_is_the_analytic_formula(k, t):
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    upstream = torch.randn(101)
    ede_sign(x, k, t).backward(upstream)
    expected = upstream * k * t * (1 - torch.tanh(t * x.detach()) ** 2)
    assert torch.allclose(x.grad, expected, rtol=1e-6, atol=1e-7)


def test_libra_pb_gradient_flows_through_the_standardisation():
    w = torch.randn(4, 9, requires_grad=True)
    libra_pb(w, 1.0, 1.0).sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def _pm1(t):
    return torch.where(t >= 0, 1.0, -1.0)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_irconv2d_zero_padding_equals_conv_on_pm1_tensors(stride, padding):
    conv = IRConv2d(5, 7, 3, stride=stride, padding=padding)
    x = torch.randn(2, 5, 9, 9)
    x[0, 0, 0, 0] = 0.0
    w_pm1 = _pm1(conv.weight - conv.weight.reshape(7, -1).mean(1).view(7, 1, 1, 1))
    scale = libra_scale(libra_standardize(conv.weight))
    expected = F.conv2d(_pm1(x), w_pm1 * scale, stride=stride, padding=padding)
    assert torch.equal(conv(x), expected)


@pytest.mark.parametrize("stride", [1, 2])
def test_irconv2d_one_padding_pads_with_plus_one(stride):
    conv = IRConv2d(3, 4, 3, stride=stride, padding=1, padding_value="one")
    x = torch.randn(1, 3, 7, 7)
    w_pm1 = _pm1(conv.weight - conv.weight.reshape(4, -1).mean(1).view(4, 1, 1, 1))
    scale = libra_scale(libra_standardize(conv.weight))
    padded = F.pad(_pm1(x), (1, 1, 1, 1), value=1.0)
    expected = F.conv2d(padded, w_pm1 * scale, stride=stride)
    assert torch.equal(conv(x), expected)
    # and differs from zero padding exactly at the border
    zero = IRConv2d(3, 4, 3, stride=stride, padding=1)
    zero.weight.data.copy_(conv.weight.data)
    diff = (conv(x) - zero(x)).abs().sum(1)[0]
    assert diff[1:-1, 1:-1].sum() == 0 and diff.sum() > 0


def test_one_padding_needs_binary_activations():
    with pytest.raises(ValueError, match="binary activations"):
        IRConv2d(3, 4, 3, padding=1, binary_act=False, padding_value="one")


def test_single_weight_filters_are_refused():
    with pytest.raises(ValueError, match="at least 2 weights per filter; this layer has 1"):
        IRConv2d(1, 4, 1)
    with pytest.raises(ValueError, match="at least 2 weights"):
        IRLinear(1, 4)


def test_1w32a_keeps_activations_full_precision():
    conv = IRConv2d(3, 4, 3, padding=1, binary_act=False)
    x = torch.randn(1, 3, 5, 5)
    w = libra_pb(conv.weight, 1.0, 1.0)
    assert torch.equal(conv(x), F.conv2d(x, w, padding=1))


def test_irlinear_binarizes_inputs_and_weights():
    layer = IRLinear(6, 3)
    x = torch.randn(2, 6)
    assert torch.equal(layer(x), F.linear(_pm1(x), libra_pb(layer.weight, 1.0, 1.0)))


def test_set_ede_reaches_every_binary_layer_and_shapes_the_gradient():
    model = torch.nn.Sequential(IRConv2d(2, 2, 1), torch.nn.Flatten(), IRLinear(8, 2))
    set_ede(model, 5.0, 0.2)
    assert [(m.k, m.t) for m in (model[0], model[2])] == [(5.0, 0.2), (5.0, 0.2)]
    x = torch.randn(1, 2, 2, 2, requires_grad=True)
    model(x).sum().backward()
    assert x.grad.abs().sum() > 0
