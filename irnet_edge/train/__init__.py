"""Training IR-Net models: recipes, the EDE schedule, augmentation and the (optionally DDP) loop."""
from .ede import EDESchedule
from .recipes import RECIPES, Recipe, resolve_recipe
from .trainer import TrainConfig, evaluate, train

__all__ = ["EDESchedule", "RECIPES", "Recipe", "TrainConfig", "evaluate", "resolve_recipe", "train"]
