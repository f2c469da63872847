"""Training presets. `paper` is the official IR-Net recipe for each CIFAR network and the project's
own tuned recipe for the microcontroller networks (which have no official one)."""
from dataclasses import dataclass, replace

from ..errors import IrnetEdgeError
from ..nn.zoo import get_arch


@dataclass(frozen=True)
class Recipe:
    epochs: int
    lr: float
    weight_decay: float
    batch_size: int
    t_min: float
    t_max: float = 10.0
    ede_per: str = "epoch"
    momentum: float = 0.9
    nesterov: bool = False
    # "dataset": the dataset's own mean/std; "imagenet": the ImageNet statistics the official CIFAR
    # ResNet-20 and VGG-Small scripts normalise with
    normalization: str = "dataset"


RECIPES = {
    "resnet20": Recipe(epochs=400, lr=0.1, weight_decay=1e-4, batch_size=128, t_min=1e-3,
                       normalization="imagenet"),
    "resnet20_1w32a": Recipe(epochs=400, lr=0.1, weight_decay=1e-4, batch_size=128, t_min=0.1,
                             normalization="imagenet"),
    "vgg_small": Recipe(epochs=300, lr=0.007, weight_decay=1e-4, batch_size=128, t_min=0.1,
                        normalization="imagenet"),
    "resnet18": Recipe(epochs=400, lr=0.1, weight_decay=1e-5, batch_size=128, t_min=0.1),
    # tuned here: reaches the README's accuracies on MNIST / Fashion-MNIST within 10 CPU minutes
    "mcu": Recipe(epochs=10, lr=0.1, weight_decay=5e-5, batch_size=128, t_min=0.1),
}
RECIPE_NAMES = ("paper",)


def resolve_recipe(arch: str | None, name: str = "paper", **overrides) -> Recipe:
    """The preset for a zoo arch; a custom model (arch None) gets the microcontroller recipe."""
    if name not in RECIPE_NAMES:
        raise IrnetEdgeError(f"unknown recipe {name!r}; choose one of: {', '.join(RECIPE_NAMES)}")
    recipe = RECIPES[get_arch(arch).recipe if arch is not None else "mcu"]
    return replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
