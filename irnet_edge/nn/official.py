"""State_dicts of the official IR-Net code (github.com/htqin/IR-Net) mapped onto the zoo's architectures.

The official model classes (file, constructor), the zoo architecture each maps onto, and their state_dicts:

- `resnet20`: CIFAR-10/ResNet20/1w1a/resnet.py, `resnet20_1w1a()`: `conv1`, `bn1`,
  `layer{1,2,3}.{0,1,2}.{conv1,bn1,conv2,bn2}`, `bn2` (BatchNorm1d), `linear`;
- `resnet20_1w32a`: CIFAR-10/ResNet20/1w32a/resnet.py, `resnet20_1w32a()`: as `resnet20`;
- `resnet18`: CIFAR-10/ResNet18/resnet.py, `ResNet18()`: `conv1`, `bn1`,
  `layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2}`, `layer{2,3,4}.0.shortcut.{0,1}` (FP 1x1 conv, BN), `bn2`, `linear`;
- `vgg_small`: CIFAR-10/VGG-Small/vgg.py, `vgg_small_1w1a()`: `conv0`, `bn0`, `conv{1..5}`, `bn{1..5}`, `fc`;
- `resnet18_imagenet`: ImageNet/ResNet18/1w1a/models/resnet.py, `resnet18()`: `conv1` (7x7), `bn1`,
  `layer{1..4}.{0,1}.{conv1,bn1,conv2,bn2}`, `layer{2,3,4}.0.downsample.{0,1}` (FP 1x1 conv, BN), `bn2`, `fc`,
  `bn3`;
- `resnet34_imagenet`: ImageNet/ResNet34/1w1a/models/resnet.py, `resnet34()`: as `resnet18_imagenet` with 3, 4,
  6, 3 blocks.

IR-Net's IRConv2d is an nn.Conv2d: it stores `weight` only (bias=False; its k and t are plain attributes, not
saved). Shortcuts of option A (LambdaLayer) hold nothing. The ImageNet classes define `bn3`, a BatchNorm1d over the
1000 logits that their forward never calls: it is accepted and dropped. The official forward ends in LogSoftmax on
CIFAR ResNet-18 and the ImageNet nets: a per-input shift of the logits that changes no prediction; the imported
model gives the logits before it.

Every weight is mapped by position: the official layers in the order their forward uses them, beside the zoo
spec's conv, BatchNorm and linear layers in the order the spec holds them (body before shortcut in a residual).
"""
from collections.abc import Iterator

import torch

from ..errors import IrnetEdgeError

# zoo arch -> the official file and constructor it maps from (the table above)
OFFICIAL = {
    "resnet20": "CIFAR-10/ResNet20/1w1a/resnet.py resnet20_1w1a()",
    "resnet20_1w32a": "CIFAR-10/ResNet20/1w32a/resnet.py resnet20_1w32a()",
    "resnet18": "CIFAR-10/ResNet18/resnet.py ResNet18()",
    "vgg_small": "CIFAR-10/VGG-Small/vgg.py vgg_small_1w1a()",
    "resnet18_imagenet": "ImageNet/ResNet18/1w1a/models/resnet.py resnet18()",
    "resnet34_imagenet": "ImageNet/ResNet34/1w1a/models/resnet.py resnet34()",
}
OFFICIAL_ARCHS = tuple(OFFICIAL)
_IGNORED = {"resnet18_imagenet": ("bn3.",), "resnet34_imagenet": ("bn3.",)}  # defined, never used in forward
_BN_KEYS = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
_OPTIONAL = ("num_batches_tracked",)  # absent in state_dicts of PyTorch before 0.4.1; 0 then


def official_layers(arch: str) -> list[tuple[str, str]]:
    """(official module name, kind) of every layer with weights, in the order the official forward uses them."""
    def resnet(stages, shortcut_name, stem_name="conv1"):
        layers = [(stem_name, "conv"), ("bn1", "bn")]
        for stage, blocks in enumerate(stages, start=1):
            for block in range(blocks):
                pre = f"layer{stage}.{block}"
                body = [(f"{pre}.conv1", "conv"), (f"{pre}.bn1", "bn")]
                second = [(f"{pre}.conv2", "conv"), (f"{pre}.bn2", "bn")]
                short = [] if shortcut_name is None or (block > 0 or stage == 1) else [
                    (f"{pre}.{shortcut_name}.0", "conv"), (f"{pre}.{shortcut_name}.1", "bn")]
                # Bi-Real blocks (ImageNet) wrap conv1 with the downsample shortcut, then conv2 with an identity;
                # the CIFAR ResNet-18 block wraps both convs with one shortcut: body first in either case
                layers += body + short + second if shortcut_name == "downsample" else body + second + short
        return layers

    if arch in ("resnet20", "resnet20_1w32a"):
        return resnet((3, 3, 3), None) + [("bn2", "bn"), ("linear", "linear")]
    if arch == "resnet18":
        return resnet((2, 2, 2, 2), "shortcut") + [("bn2", "bn"), ("linear", "linear")]
    if arch == "resnet18_imagenet":
        return resnet((2, 2, 2, 2), "downsample") + [("bn2", "bn"), ("fc", "linear")]
    if arch == "resnet34_imagenet":
        return resnet((3, 4, 6, 3), "downsample") + [("bn2", "bn"), ("fc", "linear")]
    if arch == "vgg_small":
        return [(f"{kind}{i}", "conv" if kind == "conv" else "bn") for i in range(6) for kind in ("conv", "bn")] + [
            ("fc", "linear")]
    raise IrnetEdgeError(f"no official IR-Net model maps onto {arch!r}; importable: {', '.join(OFFICIAL_ARCHS)}")


def _spec_layers(nodes: list[dict], prefix: str = "") -> Iterator[tuple[str, str, dict]]:
    """(state_dict prefix, kind, node) of the spec's layers with weights, in the spec's order."""
    for i, node in enumerate(nodes):
        kind = node["type"]
        if kind in ("conv2d", "irconv2d"):
            yield f"{prefix}{i}", "conv", node
        elif kind in ("batchnorm2d", "batchnorm1d"):
            yield f"{prefix}{i}", "bn", node
        elif kind in ("linear", "irlinear"):
            yield f"{prefix}{i}", "linear", node
        elif kind == "residual":
            yield from _spec_layers(node["body"], f"{prefix}{i}.body.")
            yield from _spec_layers(node["shortcut"], f"{prefix}{i}.shortcut.")
        elif kind == "sequential":
            yield from _spec_layers(node["layers"], f"{prefix}{i}.")


def _tensors(kind: str, node: dict) -> dict[str, tuple[int, ...]]:
    """The state_dict entries of one layer and their shapes."""
    if kind == "conv":
        k = node["kernel_size"]
        out = {"weight": (node["out_channels"], node["in_channels"], k, k)}
        return out | ({"bias": (node["out_channels"],)} if node.get("bias") else {})
    if kind == "linear":
        out = {"weight": (node["out_features"], node["in_features"])}
        return out | ({"bias": (node["out_features"],)} if node.get("bias") else {})
    n = node["num_features"]
    shapes = {"running_mean": (n,), "running_var": (n,), "num_batches_tracked": ()}
    return ({"weight": (n,), "bias": (n,)} if node.get("affine", True) else {}) | shapes


def key_map(arch: str, spec: dict) -> dict[str, tuple[str, tuple[int, ...]]]:
    """official state_dict key -> (the zoo model's key, its shape)."""
    official = official_layers(arch)
    ours = list(_spec_layers(spec["layers"]))
    if [kind for _, kind in official] != [kind for _, kind, _ in ours]:  # the zoo and this table disagree
        raise AssertionError(f"the official {arch} layout does not line up with the zoo's spec")
    mapping = {}
    for (name, _), (prefix, kind, node) in zip(official, ours, strict=True):
        for suffix, shape in _tensors(kind, node).items():
            mapping[f"{name}.{suffix}"] = (f"{prefix}.{suffix}", shape)
    return mapping


def _some(keys: list[str]) -> str:
    shown = ", ".join(repr(k) for k in keys[:3])
    return shown + (f" and {len(keys) - 3} more" if len(keys) > 3 else "")


def unwrap(raw, where: str) -> dict:
    """The state_dict in what torch.load gave: a state_dict, or the official trainers' checkpoint dict
    ({'state_dict': ..., 'best_prec1': ...}); DataParallel's 'module.' prefix removed."""
    if isinstance(raw, dict) and isinstance(raw.get("state_dict"), dict):
        raw = raw["state_dict"]
    if not isinstance(raw, dict) or not raw:
        kind = "an empty dict" if isinstance(raw, dict) else type(raw).__name__
        raise IrnetEdgeError(f"{where} is {kind}, not a state_dict of the official IR-Net model; save "
                             "model.state_dict() (or the official trainer's checkpoint) and import that")
    bad = [k for k, v in raw.items() if not isinstance(k, str) or not isinstance(v, torch.Tensor)]
    if bad:
        raise IrnetEdgeError(f"{where} is not a state_dict: entry {bad[0]!r:.60} is "
                             f"{type(raw[bad[0]]).__name__}, not a tensor; save model.state_dict() and import that")
    if all(k.startswith("module.") for k in raw):
        raw = {k[len("module."):]: v for k, v in raw.items()}
    return raw


def layout_problem(arch: str, spec: dict, state_dict: dict) -> str | None:
    """What keeps state_dict (unwrapped) from being the official model's of arch, in one line, or None."""
    mapping = key_map(arch, spec)
    ignored = _IGNORED.get(arch, ())
    missing = [k for k in mapping if k not in state_dict and k.rsplit(".", 1)[1] not in _OPTIONAL]
    unexpected = [k for k in state_dict if k not in mapping and not k.startswith(ignored)]
    parts = ([f"lacks {_some(missing)}"] if missing else []) + (
        [f"has {_some(unexpected)}, which the official model does not"] if unexpected else [])
    if parts:
        return " and ".join(parts)
    for key, (_, shape) in mapping.items():
        if key in state_dict and tuple(state_dict[key].shape) != shape:
            return f"entry {key!r} has shape {tuple(state_dict[key].shape)}, the official model's is {shape}"
    return None


def to_zoo(arch: str, spec: dict, state_dict: dict, where: str) -> dict:
    """The zoo model's state_dict (float32 weights, int64 counters) from an unwrapped official one, or one
    IrnetEdgeError naming the missing, unexpected, mis-shaped or non-finite entries."""
    problem = layout_problem(arch, spec, state_dict)
    if problem:
        raise IrnetEdgeError(f"{where} does not fit the official {arch} ({OFFICIAL[arch]}): its state_dict "
                             f"{problem}")
    out = {}
    for key, (ours, _) in key_map(arch, spec).items():
        value = state_dict.get(key)
        if key.endswith(".num_batches_tracked"):
            out[ours] = torch.zeros((), dtype=torch.long) if value is None else value.detach().to(torch.long).clone()
            continue
        if not value.is_floating_point():
            raise IrnetEdgeError(f"{where}: entry {key!r} holds {value.dtype} values, not floating point")
        value = value.detach().to("cpu", torch.float32).contiguous().clone()
        bad = int((~torch.isfinite(value)).sum())
        if bad:
            raise IrnetEdgeError(f"{where}: entry {key!r} holds {bad} non-finite value(s) (NaN or inf); the official "
                                 "training diverged or the file is damaged")
        out[ours] = value
    return out


def matching_archs(spec_of, state_dict: dict) -> list[str]:
    """The official architectures whose layout state_dict has (spec_of(arch) gives each one's zoo spec)."""
    found = []
    for arch in OFFICIAL_ARCHS:
        try:
            if layout_problem(arch, spec_of(arch), state_dict) is None:
                found.append(arch)
        except IrnetEdgeError:
            continue
    return found


SIGN_NOTE = ("the official code binarizes with torch.sign (sign(0) = 0); irnet-edge, in training and as deployed, "
             "with sign(0) = +1 (a bit has two values): an activation or centred weight exactly 0 differs (see "
             "docs/official.md)")
