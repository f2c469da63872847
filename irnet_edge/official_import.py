"""Models trained with the official IR-Net code (github.com/htqin/IR-Net) as irnet-edge checkpoints.

    ckpt = irnet_edge.import_official("save_temp/model.th", "resnet20", out="resnet20.pt")
    logits = irnet_edge.convert(ckpt).reference(images)

What the official classes store and how it maps onto the zoo is in irnet_edge.nn.official. The imported model
normalises its input as the official training script did (ImageNet's mean and std for CIFAR ResNet-20 and
VGG-Small, CIFAR-10's for CIFAR ResNet-18, ImageNet's for the ImageNet nets) and binarizes with sign(0) = +1 where
the official code's torch.sign gives 0 (docs/official.md).
"""
import re
from pathlib import Path

from .errors import IrnetEdgeError

__all__ = ["import_official", "official_spec"]


def official_spec(arch: str, dataset: str | None = None) -> dict:
    """The zoo spec an official model of arch is imported into: the CIFAR architectures for dataset (default
    cifar10) with the official script's input normalisation; the ImageNet ones for 3x224x224, 1000 classes."""
    from .data import get_dataset_info
    from .data.catalog import IMAGENET_MEAN, IMAGENET_STD
    from .nn.official import OFFICIAL_ARCHS
    from .nn.zoo import get_arch, zoo_spec
    from .train.recipes import RECIPES

    if arch not in OFFICIAL_ARCHS:
        raise IrnetEdgeError(f"no official IR-Net model maps onto {arch!r}; choose one of: {', '.join(OFFICIAL_ARCHS)}")
    zoo = get_arch(arch)
    if zoo.fixed_input is not None:
        if dataset is not None:
            raise IrnetEdgeError(f"{arch} is the official ImageNet network (3x224x224, 1000 classes); --dataset "
                                 f"{dataset} applies to the CIFAR architectures only: leave it out")
        return zoo_spec(arch)
    info = get_dataset_info(dataset or "cifar10")
    imagenet = RECIPES[zoo.recipe].normalization == "imagenet" and info.channels == 3
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if imagenet else (info.mean, info.std)
    return zoo_spec(arch, info.channels, info.size, info.num_classes, mean, std, "zero")


def _imagenet(arch: str) -> bool:
    from .nn.zoo import get_arch

    return get_arch(arch).fixed_input is not None


def _ede(arch: str) -> dict:
    """The official EDE schedule, at its end (k = 1, t = T_max): the official code does not save k and t, and
    inference does not depend on them."""
    from .nn.zoo import get_arch
    from .train.ede import EDESchedule
    from .train.recipes import RECIPES

    recipe = RECIPES.get(get_arch(arch).recipe)
    schedule = EDESchedule(recipe.t_min, recipe.t_max, recipe.ede_per) if recipe else EDESchedule(0.1, 10.0,
                                                                                                  "iteration")
    return schedule.state(1.0, schedule.t_max)


def _load(path: Path):
    import pickle

    import torch

    if path.is_dir():
        raise IrnetEdgeError(f"{path} is a directory; pass the state_dict file the official code saved (e.g. "
                             f"{path / 'model.th'})")
    if not path.is_file():
        raise IrnetEdgeError(f"{path} does not exist; pass the file the official code saved with torch.save")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        reason = next((line for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported global" in line), "")
        if not reason:
            detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
            raise IrnetEdgeError(f"{path} is not a readable PyTorch file (truncated or corrupt: {detail})") from None
        named = re.search(r"GLOBAL ([\w.]+)", reason)
        what = f"the class {named.group(1)}" if named else "a class it does not know"
        raise IrnetEdgeError(f"{path} holds objects that could run code ({what}), so it was not loaded "
                             "(weights_only=True); in the official code, save only model.state_dict() with "
                             "torch.save and import that") from None
    except Exception as exc:  # torch.load on damaged bytes fails with almost any exception type
        detail = (str(exc).splitlines() or [type(exc).__name__])[0][:160]
        raise IrnetEdgeError(f"{path} is not a readable PyTorch file (truncated or corrupt: {detail})") from None


def import_official(state_dict, arch: str, dataset: str | None = None, out=None, force: bool = False):
    """A model trained with the official IR-Net code, as an irnet-edge Checkpoint.

    state_dict: a file written by torch.save (read with weights_only=True) or what it holds: the model's
        state_dict, with or without DataParallel's ``module.`` prefix, or the official trainers' checkpoint dict
        with the state_dict under ``'state_dict'``.
    arch: the zoo architecture the official model maps onto (irnet_edge.nn.official.OFFICIAL_ARCHS).
    dataset: for the CIFAR architectures (default ``cifar10``); not for the ImageNet ones.
    out: where to write the checkpoint (atomically; an existing file needs force=True). Nothing is written when
        anything is refused.

    Returns the Checkpoint (read back from out when given). Raises IrnetEdgeError, one line, naming the missing,
    unexpected or mis-shaped entries of a state_dict that is not the official model's.
    """
    from .nn import official
    from .nn.checkpoint import Checkpoint, load_checkpoint, save_checkpoint

    spec = official_spec(arch, dataset)
    source = None
    if isinstance(state_dict, (str, Path)):
        source = Path(state_dict)
        where = str(source)
    else:
        where = "the state_dict"
    if out is not None:
        out = Path(out)
        if out.is_dir():
            raise IrnetEdgeError(f"{out} is a directory; name the checkpoint file to write (e.g. {out / 'model.pt'})")
        if out.exists() and not force:
            raise IrnetEdgeError(f"{out} already exists; pass --force to replace it")
    raw = _load(source) if source is not None else state_dict
    weights = official.unwrap(raw, where)
    try:
        mapped = official.to_zoo(arch, spec, weights, where)
    except IrnetEdgeError as exc:
        others = [a for a in official.matching_archs(lambda a: official_spec(a, None if _imagenet(a) else dataset),
                                                     weights) if a != arch]
        layout_only = "non-finite" not in str(exc)  # a NaN is not cured by another --arch
        hint = (f"; it has the layout of the official {' or '.join(others)}: pass --arch {others[0]}"
                if others and layout_only else "")
        raise IrnetEdgeError(f"{exc}{hint}") from None
    config = {"arch": arch, "imported_from": {"code": "htqin/IR-Net", "model": official.OFFICIAL[arch],
                                              "file": str(source) if source else None}}
    if not _imagenet(arch):
        config["dataset"] = dataset or "cifar10"
    ckpt = Checkpoint(spec=spec, state_dict=mapped, ede=_ede(arch), config=config)
    ckpt.build()  # the spec and weights checked as load_checkpoint will, before anything is written
    if out is None:
        return ckpt
    save_checkpoint(ckpt, out)
    return load_checkpoint(out)
