"""The model zoo as specs: the official IR-Net CIFAR and ImageNet networks and two microcontroller networks.

Every builder takes the input shape, the class count and the padding value, so the CIFAR and microcontroller
architectures can be trained on any supported dataset. The ImageNet networks (`resnet18_imagenet`,
`resnet34_imagenet`) are the paper's, for a fixed input (3x224x224, 1000 classes, ImageNet's normalisation):
`zoo_spec` gives them without arguments and refuses another input. First conv and last FC stay full precision.
"""
from collections.abc import Callable
from dataclasses import dataclass

from ..data.catalog import IMAGENET_MEAN, IMAGENET_STD
from ..errors import IrnetEdgeError
from .spec import SPEC_FORMAT


def conv(cin, cout, k=3, stride=1, padding=1, bias=False):
    return {"type": "conv2d", "in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": stride,
            "padding": padding, "bias": bias}


def irconv(cin, cout, k=3, stride=1, padding=1, binary_act=True, padding_value="zero"):
    return {"type": "irconv2d", "in_channels": cin, "out_channels": cout, "kernel_size": k, "stride": stride,
            "padding": padding, "bias": False, "binary_act": binary_act, "padding_value": padding_value}


def bn2d(c):
    return {"type": "batchnorm2d", "num_features": c, "eps": 1e-5}


def bn1d(c):
    return {"type": "batchnorm1d", "num_features": c, "eps": 1e-5}


def linear(cin, cout, bias=True):
    return {"type": "linear", "in_features": cin, "out_features": cout, "bias": bias}


def residual(body, shortcut=()):
    return {"type": "residual", "body": list(body), "shortcut": list(shortcut)}


def seq(*layers):
    return {"type": "sequential", "layers": list(layers)}


HARDTANH = {"type": "hardtanh"}
RELU = {"type": "relu"}
FLATTEN = {"type": "flatten"}
GLOBAL_AVGPOOL = {"type": "global_avgpool"}


def maxpool(k=2, stride=None, padding=0):
    node = {"type": "maxpool2d", "kernel_size": k, "stride": k if stride is None else stride}
    return {**node, "padding": padding} if padding else node


IMAGENET_INPUT = (3, 224, 1000)  # channels, side, classes


@dataclass(frozen=True)
class Arch:
    name: str
    build: Callable[..., list[dict]]
    summary: str
    recipe: str  # the training preset --recipe paper picks
    # (channels, side, classes) for a network made for one dataset only (ImageNet), else None
    fixed_input: tuple[int, int, int] | None = None


def _resnet20(channels, size, num_classes, padding_value):
    """Bi-Real style: out = hardtanh(bn(conv(x)) + shortcut(x)) around every binary conv."""
    layers = [conv(channels, 16), bn2d(16), HARDTANH]
    cin = 16
    for planes, first_stride in ((16, 1), (32, 2), (64, 2)):
        for block in range(3):
            stride = first_stride if block == 0 else 1
            shortcut = [{"type": "shortcut_a", "pad": planes // 4}] if stride != 1 or cin != planes else []
            layers += [residual([irconv(cin, planes, stride=stride, padding_value=padding_value), bn2d(planes)],
                                shortcut), HARDTANH,
                       residual([irconv(planes, planes, padding_value=padding_value), bn2d(planes)]), HARDTANH]
            cin = planes
    return layers + [GLOBAL_AVGPOOL, FLATTEN, bn1d(64), linear(64, num_classes)]


def _resnet20_1w32a(channels, size, num_classes, padding_value):
    """The official 1W/32A ResNet-20: standard two-conv blocks with ReLU, full-precision activations."""
    layers = [conv(channels, 16), bn2d(16)]
    cin = 16
    for planes, first_stride in ((16, 1), (32, 2), (64, 2)):
        for block in range(3):
            stride = first_stride if block == 0 else 1
            shortcut = [{"type": "shortcut_a", "pad": planes // 4}] if stride != 1 or cin != planes else []
            body = [irconv(cin, planes, stride=stride, binary_act=False), bn2d(planes), RELU,
                    irconv(planes, planes, binary_act=False), bn2d(planes)]
            layers += [residual(body, shortcut), RELU]
            cin = planes
    return layers + [GLOBAL_AVGPOOL, FLATTEN, bn1d(64), RELU, linear(64, num_classes)]


def _resnet18(channels, size, num_classes, padding_value):
    """The official CIFAR ResNet-18 1W/1A: standard blocks, full-precision 1x1 downsample + BN."""
    layers = [conv(channels, 64), bn2d(64)]
    cin = 64
    for planes, first_stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            stride = first_stride if block == 0 else 1
            shortcut = ([conv(cin, planes, k=1, stride=stride, padding=0), bn2d(planes)]
                        if stride != 1 or cin != planes else [])
            body = [irconv(cin, planes, stride=stride, padding_value=padding_value), bn2d(planes), HARDTANH,
                    irconv(planes, planes, padding_value=padding_value), bn2d(planes)]
            layers += [residual(body, shortcut), HARDTANH]
            cin = planes
    return layers + [GLOBAL_AVGPOOL, FLATTEN, bn1d(512), linear(512, num_classes)]


def _resnet_imagenet(blocks: tuple[int, int, int, int]):
    """The official ImageNet ResNet-18/34 1W/1A (htqin/IR-Net, ImageNet/ResNet*/1w1a/models/resnet.py): FP 7x7/2
    stem conv -> BN -> hardtanh -> max-pool 3/2 padding 1; four stages of Bi-Real blocks (a shortcut around every
    binary 3x3 conv, out = hardtanh(bn(conv(x)) + shortcut(x))), the first block of stages 2-4 with a stride-2
    FP 1x1 conv + BN on its shortcut; global average pool -> BN1d(512) -> FP FC."""
    def build(channels, size, num_classes, padding_value):
        layers = [conv(channels, 64, k=7, stride=2, padding=3), bn2d(64), HARDTANH, maxpool(3, 2, 1)]
        cin = 64
        for planes, first_stride, count in zip((64, 128, 256, 512), (1, 2, 2, 2), blocks, strict=True):
            for block in range(count):
                stride = first_stride if block == 0 else 1
                shortcut = ([conv(cin, planes, k=1, stride=stride, padding=0), bn2d(planes)]
                            if stride != 1 or cin != planes else [])
                layers += [residual([irconv(cin, planes, stride=stride, padding_value=padding_value), bn2d(planes)],
                                    shortcut), HARDTANH,
                           residual([irconv(planes, planes, padding_value=padding_value), bn2d(planes)]), HARDTANH]
                cin = planes
        return layers + [GLOBAL_AVGPOOL, FLATTEN, bn1d(512), linear(512, num_classes)]
    return build


def _vgg_small(channels, size, num_classes, padding_value):
    """conv -> (pool) -> BN -> hardtanh, as the official VGG-Small orders them."""
    def stage(cin, cout, pool):
        return [irconv(cin, cout, padding_value=padding_value)] + ([maxpool()] if pool else []) + [bn2d(cout),
                                                                                                    HARDTANH]
    layers = [conv(channels, 128), bn2d(128), HARDTANH]
    layers += stage(128, 128, True) + stage(128, 256, False) + stage(256, 256, True)
    layers += stage(256, 512, False) + stage(512, 512, True)
    side = size // 8
    return layers + [FLATTEN, linear(512 * side * side, num_classes)]


def _mcu_plain(stem: int, widths: list[tuple[int, bool]]):
    """A plain (shortcut-free) binary net: between binary layers every tensor is bits at deployment,
    which is what lets it fit a microcontroller's RAM. The stem pools at once: a full-precision map at
    full resolution is the largest tensor, and 28x28 digits and clothes lose little at 14x14."""
    def build(channels, size, num_classes, padding_value):
        layers = [conv(channels, stem), maxpool(), bn2d(stem), HARDTANH]
        cin, side = stem, size // 2
        for cout, pool in widths:
            layers.append(irconv(cin, cout, padding_value=padding_value))
            if pool:
                layers.append(maxpool())
                side //= 2
            layers += [bn2d(cout), HARDTANH]
            cin = cout
        flat = cin * side * side
        return layers + [FLATTEN, bn1d(flat), linear(flat, num_classes)]
    return build


ARCHS = {a.name: a for a in (
    Arch("mcu_m4", _mcu_plain(32, [(64, True), (128, False), (128, True)]),
         "28x28 MCU net for a Cortex-M4 with 64 KB RAM / 256 KB flash", "mcu"),
    Arch("mcu_m0", _mcu_plain(16, [(32, True), (64, True)]),
         "small 28x28 MCU net for a Cortex-M0+ with 16 KB RAM / 128 KB flash", "mcu"),
    Arch("resnet20", _resnet20, "CIFAR ResNet-20 1W/1A, Bi-Real shortcuts, option A", "resnet20"),
    Arch("resnet20_1w32a", _resnet20_1w32a, "CIFAR ResNet-20 1W/32A (binary weights only)", "resnet20_1w32a"),
    Arch("vgg_small", _vgg_small, "VGG-Small 1W/1A", "vgg_small"),
    Arch("resnet18", _resnet18, "CIFAR ResNet-18 1W/1A, FP 1x1 downsample", "resnet18"),
    Arch("resnet18_imagenet", _resnet_imagenet((2, 2, 2, 2)),
         "ImageNet ResNet-18 1W/1A (the paper's), Bi-Real shortcuts, FP 7x7 stem and 1x1 downsample", "imagenet",
         IMAGENET_INPUT),
    Arch("resnet34_imagenet", _resnet_imagenet((3, 4, 6, 3)),
         "ImageNet ResNet-34 1W/1A (the paper's), Bi-Real shortcuts, FP 7x7 stem and 1x1 downsample", "imagenet",
         IMAGENET_INPUT),
)}


FAMILY_DEPTHS = (2, 3, 4)
FAMILY_STEMS = (16, 32, 64, 128)


def mcu_family_spec(depth: int, stem: int, channels: int, size: int, num_classes: int, mean, std,
                    padding_value: str = "zero") -> dict:
    """A member of the MCU family `irnet-edge fit` searches: the mcu nets' plan (a full-precision stem conv that
    pools at once, then binary 3x3 convs at 2, 4, 4 and 8 times the stem's width, pooling after the first and
    third) with depth binary convs (2-4) and a stem of stem channels. Depth 2, stem 16 is mcu_m0; depth 3, stem 32
    is mcu_m4. Named mcu_d{depth}_s{stem}."""
    plan = [(2 * stem, True), (4 * stem, False), (4 * stem, True), (8 * stem, False)]
    if depth not in FAMILY_DEPTHS or stem not in FAMILY_STEMS:
        raise IrnetEdgeError(f"the MCU family has depths {FAMILY_DEPTHS} and stems {FAMILY_STEMS}, not {depth}, {stem}")
    widths = plan[:depth] if depth != 2 else [(2 * stem, True), (4 * stem, True)]
    layers = _mcu_plain(stem, widths)(channels, size, num_classes, padding_value)
    return {"format": SPEC_FORMAT, "name": f"mcu_d{depth}_s{stem}",
            "input": {"channels": channels, "height": size, "width": size}, "num_classes": num_classes,
            "layers": [{"type": "input_norm", "mean": list(mean), "std": list(std)}] + layers}


def get_arch(name: str) -> Arch:
    try:
        return ARCHS[name]
    except KeyError:
        raise IrnetEdgeError(f"unknown architecture {name!r}; choose one of: {', '.join(ARCHS)}") from None


def _dims(channels, size) -> str:
    return f"{channels}x{size}x{size}"


def check_input(arch: str, channels: int, size: int, num_classes: int, dataset: str | None = None) -> None:
    """Refuse, as one IrnetEdgeError, an input the architecture is not made for (the ImageNet networks)."""
    fixed = get_arch(arch).fixed_input
    if fixed is None or (channels, size, num_classes) == fixed:
        return
    c, s, k = fixed
    given = f"{dataset} ({_dims(channels, size)}, {num_classes} classes)" if dataset else \
        f"a {_dims(channels, size)} input with {num_classes} classes"
    raise IrnetEdgeError(f"{arch} is the paper's ImageNet network ({_dims(c, s)} input, {k} classes) and cannot take "
                         f"{given}; irnet-edge has no ImageNet reader, so train it with the official htqin/IR-Net "
                         f"code and bring its weights in with `irnet-edge import STATE_DICT --arch {arch} --out "
                         "model.pt`, or train a CIFAR architecture (resnet18, resnet20) here")


def zoo_spec(arch: str, channels: int | None = None, size: int | None = None, num_classes: int | None = None,
             mean=None, std=None, padding_value: str = "zero") -> dict:
    """The spec of a zoo architecture. The ImageNet networks need no arguments (their input, classes and
    ImageNet's normalisation are the defaults, and another input is refused); the others need all five."""
    fixed = get_arch(arch).fixed_input
    if fixed is not None:
        channels = fixed[0] if channels is None else channels
        size = fixed[1] if size is None else size
        num_classes = fixed[2] if num_classes is None else num_classes
        mean = IMAGENET_MEAN if mean is None else mean
        std = IMAGENET_STD if std is None else std
        check_input(arch, channels, size, num_classes)
    missing = [n for n, v in (("channels", channels), ("size", size), ("num_classes", num_classes), ("mean", mean),
                              ("std", std)) if v is None]
    if missing:
        raise IrnetEdgeError(f"zoo_spec({arch!r}) needs {', '.join(missing)}: {arch} is trained on any dataset")
    layers = get_arch(arch).build(channels, size, num_classes, padding_value)
    return {"format": SPEC_FORMAT, "name": arch, "input": {"channels": channels, "height": size, "width": size},
            "num_classes": num_classes,
            "layers": [{"type": "input_norm", "mean": list(mean), "std": list(std)}] + layers}
