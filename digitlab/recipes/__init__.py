"""Recipes: the registry of named, versioned presets (each tutorial as published, with its figure,
and the project's own), the pure-Python recipes, training a recipe end to end (`train_recipe`,
with the one `load_data` that says which data a recipe uses) and `reproduce`, which lines the
tutorials up against their published figures."""

from .registry import DEFAULT_RECIPE, RECIPES, Recipe, get_recipe
from .tutorials import SKLEARN_TUTORIAL, Row, default_names, reproduce, sklearn_tutorial
from .train import TrainResult, load_data, train_recipe

__all__ = [
    "DEFAULT_RECIPE", "RECIPES", "Recipe", "Row", "SKLEARN_TUTORIAL", "TrainResult", "default_names",
    "get_recipe", "load_data", "reproduce", "sklearn_tutorial", "train_recipe",
]
