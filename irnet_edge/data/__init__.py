"""Real datasets as in-memory uint8 tensors: MNIST, Fashion-MNIST and CIFAR-10, offline first."""
from .catalog import DATASETS, DatasetInfo, get_dataset_info
from .loaders import ImageSet, load_split

__all__ = ["DATASETS", "DatasetInfo", "ImageSet", "get_dataset_info", "load_split"]
