"""Reproduce the tutorials: train every recipe that has a published figure (and the project's own
comparison rows), run the scikit-learn tutorial for real with scikit-learn, and line the
figures up.

``reproduce()`` returns one `Row` per entry; ``digitlab reproduce`` prints them as a table. Which
recipes run is read from the registry (`digitlab.recipes.RECIPES`): any recipe with ``published``
set, or with ``reproduce=True``, is picked up without changes here.
"""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from ..data import Dataset, load_sklearn_digits
from ..errors import DigitlabError, lookup
from ..modelfile import save_model
from ..nn import Callback
from .registry import RECIPES, Recipe, get_recipe
from .train import load_data, train_recipe

SKLEARN_TUTORIAL = "sklearn-mlp"
SKLEARN_PUBLISHED = 0.9159
SKLEARN_SOURCE = ("scikit-learn tutorial: MLPClassifier((15,), logistic, sgd, lr 0.1, alpha 1e-4, tol 1e-4, "
                  "random_state 1) on the first 1,000 8x8 digits, tested on the other 797: 91.59%")


@dataclass
class Row:
    """One line of the reproduce table.

    Attributes:
        name: recipe name (or ``sklearn-mlp``).
        dataset: "mnist" or "digits".
        train_images, test_images: how many images it trained and was tested on.
        published: the tutorial's reported test accuracy (None for the project's own rows).
        accuracy: the test accuracy measured here.
        seconds: training wall time (evaluation excluded).
        epochs: epochs trained here (iterations for scikit-learn); ``full_epochs``: the recipe's
            own number (fewer in a quick run).
        quick: trained for fewer epochs than the recipe's (``reproduce(quick=True)``).
        engine: "digitlab" or "scikit-learn".
        path: the saved model file (``reproduce(save_dir=...)``, digitlab rows only).
    """

    name: str
    dataset: str
    train_images: int
    test_images: int
    published: float | None
    accuracy: float
    seconds: float
    epochs: int
    full_epochs: int
    quick: bool = False
    engine: str = "digitlab"
    path: Path | None = None


def default_names() -> list[str]:
    """The entries of a plain ``digitlab reproduce``: every recipe with a published figure or
    marked ``reproduce``, in registry order, with the scikit-learn tutorial just before the first
    recipe on the 8x8 digits (at the end if there is none)."""
    names = [r.name for r in RECIPES.values() if r.published is not None or r.reproduce]
    first_digits = next((i for i, n in enumerate(names) if RECIPES[n].dataset == "digits"), len(names))
    return names[:first_digits] + [SKLEARN_TUTORIAL] + names[first_digits:]


def sklearn_tutorial(train: Dataset, test: Dataset) -> Row:
    """Run the scikit-learn MLP tutorial exactly as published and score it on ``test``.

    ``train``/``test`` are the 8x8 digits as `load_sklearn_digits` gives them (0..255); they are
    turned back into the 0..16 values the tutorial fed (the rescaling is exactly invertible).
    Needs scikit-learn (the ``sklearn`` extra), imported only here.
    """
    try:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier
    except ImportError:
        raise DigitlabError("the scikit-learn tutorial needs scikit-learn: pip install 'digitlab[sklearn]'") from None

    def raw(d: Dataset) -> np.ndarray:
        return np.round(d.images.reshape(len(d), -1) * (16 / 255))  # N x 64, float64 0..16

    clf = MLPClassifier(hidden_layer_sizes=(15,), activation="logistic", alpha=1e-4, solver="sgd", tol=1e-4,
                        random_state=1, learning_rate_init=0.1)
    start = time.perf_counter()
    with warnings.catch_warnings():  # as published: it may stop at max_iter without converging
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(raw(train), train.labels)
    seconds = time.perf_counter() - start
    accuracy = float(np.mean(clf.predict(raw(test)) == test.labels))
    return Row(SKLEARN_TUTORIAL, "digits", len(train), len(test), SKLEARN_PUBLISHED, accuracy, seconds,
               clf.n_iter_, clf.n_iter_, engine="scikit-learn")


def _check(names: Sequence[str]) -> None:
    if not names:
        raise DigitlabError("no recipes given (names=None runs the default set)")
    for name in names:
        lookup({**RECIPES, SKLEARN_TUTORIAL: None}, name, "recipe", DigitlabError)


def reproduce(
    names: Sequence[str] | None = None,
    *,
    quick: bool = False,
    seed: int = 0,
    data_dir=None,
    save_dir: str | os.PathLike | None = None,
    callbacks: Callable[[Recipe], Iterable[Callback]] | None = None,
    on_row: Callable[[Row], None] | None = None,
) -> list[Row]:
    """Train each named recipe (default: `default_names`) on its dataset and measure its test
    accuracy; ``sklearn-mlp`` runs the scikit-learn tutorial.

    ``quick`` trains each recipe for its ``quick_epochs`` (1 when unset) instead of its full
    count (the scikit-learn row always runs in full: it takes under a second).
    ``callbacks(recipe)`` gives the training callbacks of each recipe (a progress bar);
    ``on_row(row)`` is called as each row is finished. Datasets are loaded once and shared.
    With ``save_dir``, each trained model is saved there as ``NAME.npz`` (``NAME-quick.npz`` in a
    quick run), ready for ``digitlab evaluate``.
    """
    names = default_names() if names is None else list(names)
    _check(names)
    loaded: dict[str, tuple[Dataset, Dataset]] = {}

    def data(recipe: Recipe) -> tuple[Dataset, Dataset]:
        """`load_data`, each dataset read once and shared."""
        if recipe.dataset not in loaded:
            loaded[recipe.dataset] = load_data(replace(recipe, train_limit=None), data_dir)
        train, test = loaded[recipe.dataset]
        return (train[: recipe.train_limit] if recipe.train_limit else train), test

    rows = []
    for name in names:
        if name == SKLEARN_TUTORIAL:
            row = sklearn_tutorial(load_sklearn_digits("train"), load_sklearn_digits("test"))
        else:
            recipe = get_recipe(name)
            epochs = min(recipe.epochs, recipe.quick_epochs or 1) if quick else recipe.epochs
            train, test = data(recipe)
            result = train_recipe(recipe, epochs=epochs, seed=seed, data=(train, test),
                                  callbacks=list(callbacks(recipe)) if callbacks else ())
            row = Row(name, recipe.dataset, len(train), len(test), recipe.published, result.test["accuracy"],
                      result.seconds, epochs, recipe.epochs, quick=epochs < recipe.epochs)
            if save_dir is not None:
                row.path = save_model(result.model, Path(save_dir) / f"{name}{'-quick' if row.quick else ''}.npz")
        rows.append(row)
        if on_row:
            on_row(row)
    return rows
