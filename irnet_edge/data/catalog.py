"""What each supported dataset is: shape, classes, statistics, augmentation and where it may already be."""
from dataclasses import dataclass, field

from ..errors import IrnetEdgeError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    flip: bool
    torchvision_class: str
    # places a system package or a convention puts the files, searched before any download
    system_dirs: tuple[str, ...] = field(default=())


DATASETS = {
    "mnist": DatasetInfo("mnist", 1, 28, 10, (0.1307,), (0.3081,), crop_padding=2, flip=False,
                         torchvision_class="MNIST"),
    # horizontal flips keep clothes what they are; they would not keep digits
    "fashion-mnist": DatasetInfo("fashion-mnist", 1, 28, 10, (0.2860,), (0.3530,), crop_padding=2,
                                 flip=True, torchvision_class="FashionMNIST",
                                 system_dirs=("/usr/share/datasets/fashion-mnist",)),
    "cifar10": DatasetInfo("cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616),
                           crop_padding=4, flip=True, torchvision_class="CIFAR10"),
}


def get_dataset_info(name: str) -> DatasetInfo:
    try:
        return DATASETS[name]
    except KeyError:
        raise IrnetEdgeError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}") from None
