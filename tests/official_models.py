"""An independent re-implementation of the official IR-Net model classes (github.com/htqin/IR-Net), for tests and
benchmarks: module names, shapes and forward passes as in the official files (which are not reachable here), written
from their public description, not copied.

- IRConv2d: an nn.Conv2d (weight only, k and t plain attributes, not saved) whose forward standardises each filter
  (minus its mean, over its unbiased std), binarizes it with torch.sign times the detached power-of-two scale
  2^round(log2(mean |w_std|)), binarizes the input with torch.sign (the 1W/32A variant keeps it), and convolves
  with zero padding. The backward is EDE's k * t * (1 - tanh(t x)^2).
- CIFAR ResNet-20 (1w1a: a shortcut around each binary conv; 1w32a: standard blocks with ReLU), option-A shortcuts;
  CIFAR ResNet-18 (hardtanh blocks, FP 1x1 shortcut, LogSoftmax); VGG-Small; ImageNet ResNet-18/34 (Bi-Real blocks,
  FP 1x1 downsample, avgpool 7, BN1d, FC, an unused bn3, LogSoftmax).

Inputs are normalised outside the model, as the official scripts' transforms do.
"""
import math

import torch
import torch.nn.functional as F
from torch import nn


class _Sign(torch.autograd.Function):
    """torch.sign forward (sign(0) = 0), EDE backward."""

    @staticmethod
    def forward(ctx, x, k, t):
        ctx.save_for_backward(x)
        ctx.k, ctx.t = float(k), float(t)
        return torch.sign(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ctx.k * ctx.t * (1 - torch.tanh(x * ctx.t) ** 2), None, None


class IRConv2d(nn.Conv2d):
    def __init__(self, *args, binary_act: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.k, self.t = torch.tensor([10.0]), torch.tensor([0.1])  # plain attributes, as the official ones
        self.binary_act = binary_act

    def forward(self, x):
        n = self.weight.shape[0]
        centred = self.weight - self.weight.view(n, -1).mean(-1).view(n, 1, 1, 1)
        standard = centred / centred.view(n, -1).std(-1).view(n, 1, 1, 1)
        exponent = torch.round(torch.log(standard.abs().view(n, -1).mean(-1)) / math.log(2))
        scale = torch.pow(2.0, exponent).view(n, 1, 1, 1).detach()
        weight = _Sign.apply(standard, self.k, self.t) * scale
        if self.binary_act:
            x = _Sign.apply(x, self.k, self.t)
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


class Lambda(nn.Module):
    """The official LambdaLayer (option-A shortcut): no state."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def _option_a(planes):
    return Lambda(lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4)))


class CifarBlock1w1a(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = IRConv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = IRConv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _option_a(planes) if stride != 1 or cin != planes else nn.Sequential()

    def forward(self, x):
        out = F.hardtanh(self.bn1(self.conv1(x)) + self.shortcut(x))
        return F.hardtanh(self.bn2(self.conv2(out)) + out)


class CifarBlock1w32a(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = IRConv2d(cin, planes, 3, stride=stride, padding=1, bias=False, binary_act=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = IRConv2d(planes, planes, 3, stride=1, padding=1, bias=False, binary_act=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = _option_a(planes) if stride != 1 or cin != planes else nn.Sequential()

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet20(nn.Module):
    """resnet20_1w1a() (block=CifarBlock1w1a) or resnet20_1w32a() (block=CifarBlock1w32a)."""

    def __init__(self, block=CifarBlock1w1a, num_classes=10):
        super().__init__()
        self.full_precision_acts = block is CifarBlock1w32a
        self.conv1 = nn.Conv2d(3, 16, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        cin = 16
        for i, (planes, stride) in enumerate(((16, 1), (32, 2), (64, 2)), start=1):
            blocks = []
            for s in (stride, 1, 1):
                blocks.append(block(cin, planes, s))
                cin = planes
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
        self.bn2 = nn.BatchNorm1d(64)
        self.linear = nn.Linear(64, num_classes)

    def forward(self, x):
        out = self.bn1(self.conv1(x))
        if not self.full_precision_acts:  # 1w1a: hardtanh after the stem; 1w32a: nothing
            out = F.hardtanh(out)
        out = self.layer3(self.layer2(self.layer1(out)))
        out = F.avg_pool2d(out, out.shape[3]).flatten(1)
        out = self.bn2(out)
        if self.full_precision_acts:
            out = F.relu(out)
        return self.linear(out)


class CifarBlock18(nn.Module):
    def __init__(self, cin, planes, stride):
        super().__init__()
        self.conv1 = IRConv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = IRConv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.hardtanh(self.bn1(self.conv1(x)))
        return F.hardtanh(self.bn2(self.conv2(out)) + self.shortcut(x))


class CifarResNet18(nn.Module):
    """ResNet18() of CIFAR-10/ResNet18/resnet.py: linear registered before bn2, LogSoftmax at the end."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        cin = 64
        for i, (planes, stride) in enumerate(((64, 1), (128, 2), (256, 2), (512, 2)), start=1):
            blocks = (CifarBlock18(cin, planes, stride), CifarBlock18(planes, planes, 1))
            setattr(self, f"layer{i}", nn.Sequential(*blocks))
            cin = planes
        self.linear = nn.Linear(512, num_classes)
        self.bn2 = nn.BatchNorm1d(512)
        self.softmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        out = self.bn1(self.conv1(x))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4).flatten(1)
        return self.softmax(self.linear(self.bn2(out)))


class VggSmall(nn.Module):
    """vgg_small_1w1a(): conv -> (pool) -> BN -> hardtanh, FC over the 512x4x4 map."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.conv0 = nn.Conv2d(3, 128, 3, padding=1, bias=False)
        self.bn0 = nn.BatchNorm2d(128)
        widths = ((128, 128), (128, 256), (256, 256), (256, 512), (512, 512))
        for i, (cin, cout) in enumerate(widths, start=1):
            setattr(self, f"conv{i}", IRConv2d(cin, cout, 3, padding=1, bias=False))
            setattr(self, f"bn{i}", nn.BatchNorm2d(cout))
        self.pooling = nn.MaxPool2d(2, 2)
        self.nonlinear = nn.Hardtanh()
        self.fc = nn.Linear(512 * 4 * 4, num_classes)

    def forward(self, x):
        x = self.nonlinear(self.bn0(self.conv0(x)))
        for i in range(1, 6):
            x = getattr(self, f"conv{i}")(x)
            if i in (1, 3, 5):
                x = self.pooling(x)
            x = self.nonlinear(getattr(self, f"bn{i}")(x))
        return self.fc(x.flatten(1))


class ImagenetBlock(nn.Module):
    """Bi-Real: out = hardtanh(bn1(conv1(x)) + downsample(x)); out = hardtanh(bn2(conv2(out)) + out)."""

    def __init__(self, cin, planes, stride, downsample=None):
        super().__init__()
        self.conv1 = IRConv2d(cin, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.nonlinear = nn.Hardtanh()
        self.conv2 = IRConv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.nonlinear(self.bn1(self.conv1(x)) + residual)
        return self.nonlinear(self.bn2(self.conv2(out)) + out)


class ImagenetResNet(nn.Module):
    """resnet18() (blocks 2, 2, 2, 2) or resnet34() (3, 4, 6, 3) of ImageNet/ResNet*/1w1a/models/resnet.py."""

    def __init__(self, blocks=(2, 2, 2, 2), num_classes=1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.nonlinear1 = nn.Hardtanh()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        cin = 64
        for i, (planes, stride, count) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2), blocks, strict=True),
                                                          start=1):
            down = None
            if stride != 1 or cin != planes:
                down = nn.Sequential(nn.Conv2d(cin, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes))
            layer = [ImagenetBlock(cin, planes, stride, down)] + [ImagenetBlock(planes, planes, 1)
                                                                   for _ in range(count - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*layer))
            cin = planes
        self.avgpool = nn.AvgPool2d(7, stride=1)
        self.bn2 = nn.BatchNorm1d(512)
        self.nonlinear2 = nn.Hardtanh()
        self.fc = nn.Linear(512, num_classes)
        self.bn3 = nn.BatchNorm1d(num_classes)  # defined, never called by forward
        self.logsoftmax = nn.LogSoftmax(dim=1)

    def forward(self, x):
        x = self.maxpool(self.nonlinear1(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.avgpool(x).flatten(1)
        return self.logsoftmax(self.fc(self.bn2(x)))


def official_model(arch: str) -> nn.Module:
    """The official model class that maps onto the zoo architecture arch."""
    return {"resnet20": lambda: CifarResNet20(CifarBlock1w1a), "resnet20_1w32a": lambda: CifarResNet20(CifarBlock1w32a),
            "resnet18": CifarResNet18, "vgg_small": VggSmall, "resnet18_imagenet": lambda: ImagenetResNet((2, 2, 2, 2)),
            "resnet34_imagenet": lambda: ImagenetResNet((3, 4, 6, 3))}[arch]()


def randomize(model: nn.Module, seed: int = 0) -> nn.Module:
    """Seeded random weights and BatchNorm statistics (as a trained model has), in place."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                m.weight.copy_(torch.randn(m.weight.shape, generator=g) * (2.0 / m.weight[0].numel()) ** 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.num_batches_tracked.fill_(1000)
    return model.eval()
