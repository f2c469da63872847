"""The names the command line offers as choices, importable without torch so that `irnet-edge --help` is quick.

The modules that define these things (the zoo, the dataset catalog, the code-generation targets, the Linux
cross toolchains, the EDE schedule) import torch or numpy through their packages; tests/test_cli.py holds these
lists equal to theirs. Boards and cores are read from their data files here, for irnet_edge.codegen.firmware too.
"""
import json

from .resources import asset_dir

ARCHS = ("mcu_m4", "mcu_m0", "resnet20", "resnet20_1w32a", "vgg_small", "resnet18", "resnet18_imagenet",
         "resnet34_imagenet")  # irnet_edge.nn.zoo.ARCHS
OFFICIAL_ARCHS = ("resnet20", "resnet20_1w32a", "resnet18", "vgg_small", "resnet18_imagenet",
                  "resnet34_imagenet")  # irnet_edge.nn.official.OFFICIAL_ARCHS: what `import` maps onto
DATASETS = ("mnist", "fashion-mnist", "cifar10")  # irnet_edge.data.DATASETS
TARGETS = ("host", "cortex-m", "cortex-a")  # irnet_edge.codegen.TARGETS
ISAS = ("aarch64", "armv7")  # irnet_edge.verify.toolchain.CROSS: the instruction sets of --target cortex-a
EDE_PER = ("epoch", "iteration")  # irnet_edge.train.ede.EDE_PER
RECIPES = ("paper",)  # irnet_edge.train.recipes.RECIPE_NAMES


def board_names() -> list[str]:
    """The boards of `firmware`, `flash` and --target cortex-m: one JSON file each."""
    return sorted(p.stem for p in (asset_dir("firmware") / "boards").glob("*.json"))


def cpu_names() -> list[str]:
    """The cores --cpu can build for."""
    return list(json.loads((asset_dir("firmware") / "cpus.json").read_text()))
