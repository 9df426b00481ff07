"""Training a recipe: its data, its model, its training, its test score, in one call.

``train_recipe("mlp")`` loads the data, builds, trains and evaluates; the CLI's ``digitlab train
--recipe NAME`` is a thin shell over it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Iterable

from ..data import Dataset, load_dataset
from ..nn import Callback, Sequential
from .registry import Recipe, get_recipe


def load_data(recipe: Recipe, data_dir=None) -> tuple[Dataset, Dataset]:
    """(train, test) for a recipe: its dataset's two splits, with its training subset applied."""
    train, test = (load_dataset(recipe.dataset, split, data_dir) for split in ("train", "test"))
    return (train[: recipe.train_limit] if recipe.train_limit else train), test


@dataclass
class TrainResult:
    model: Sequential
    recipe: Recipe
    test: dict  # {"loss": ..., "accuracy": ...}
    seconds: float  # training wall time, evaluation excluded


def train_recipe(
    name: str | Recipe,
    *,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    data_dir=None,
    data: tuple[Dataset, Dataset] | None = None,
    callbacks: Iterable[Callback] = (),
) -> TrainResult:
    """Train a recipe on its dataset and evaluate it on the test set.

    ``epochs``, ``batch_size`` and ``lr`` override the recipe's values; ``data`` = (train, test)
    skips loading. The model's metadata records the recipe, its settings and the test metrics, so
    a saved model file says how it was made.
    """
    recipe = get_recipe(name) if isinstance(name, str) else name
    if epochs is not None or batch_size is not None:
        recipe = replace(recipe, epochs=epochs or recipe.epochs, batch_size=batch_size or recipe.batch_size)
    train, test = data if data is not None else load_data(recipe, data_dir)
    start = time.perf_counter()
    if recipe.trainer is not None:
        model = recipe.trainer(recipe, train, seed=seed, lr=lr, callbacks=callbacks)
    else:
        model = recipe.build(seed, lr)
        model.fit(train, epochs=recipe.epochs, batch_size=recipe.batch_size, callbacks=callbacks,
                  augment=recipe.augmenter())
    seconds = time.perf_counter() - start
    metrics = model.evaluate(test)
    model.metadata.update(
        recipe=recipe.name,
        recipe_version=recipe.version,
        published_accuracy=recipe.published,
        training={"epochs": recipe.epochs, "batch_size": recipe.batch_size, "lr": lr or recipe.optimizer.get("lr"),
                  "seed": seed, "train_images": len(train), "seconds": round(seconds, 3), "dataset": recipe.dataset},
        metrics={"test_loss": metrics["loss"], "test_accuracy": metrics["accuracy"], "test_images": len(test)},
    )
    return TrainResult(model, recipe, metrics, seconds)
