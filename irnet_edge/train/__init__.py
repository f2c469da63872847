"""Training IR-Net models: recipes, the EDE schedule, augmentation and the (optionally DDP) loop."""
from .ede import EDESchedule
from .recipes import RECIPES, Recipe, resolve_recipe
from .trainer import TrainConfig, check_new_run, evaluate, train

__all__ = ["EDESchedule", "RECIPES", "Recipe", "TrainConfig", "check_new_run", "evaluate", "resolve_recipe", "train"]
