"""`DigitClassifier`: a digitlab recipe as a scikit-learn estimator, for pipelines, grid searches
and cross-validation.

    from sklearn.datasets import load_digits
    from digitlab.sklearn import DigitClassifier

    X, y = load_digits(return_X_y=True)                    # N x 64, pixels 0..16
    clf = DigitClassifier("digits-cnn", pixel_max=16).fit(X, y)
    clf.predict(X[:5]), clf.score(X, y)

X is flattened images, one row per image, in pixel values 0..``pixel_max`` (255 for MNIST, 16 for
scikit-learn's 8x8 digits; 0 = background). The network is the recipe's, built for the width it
sees: a dense recipe takes the n_features directly; a convolutional one takes square images of
side sqrt(n_features). Its last layer gets one output per class; labels may be any values (ints,
strings, ...), at least two distinct ones. Training is the recipe's: optimizer, loss, schedule,
epochs, batch size and augmentation, with ``epochs``, ``batch_size`` and ``lr`` overriding them.

Needs the ``sklearn`` extra: ``pip install 'digitlab[sklearn]'``.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError:  # validate_data is new in scikit-learn 1.6
    raise ImportError("DigitClassifier needs scikit-learn 1.6 or later: pip install 'digitlab[sklearn]'") from None

from .nn import Dense, Reshape
from .recipes import Recipe, get_recipe


def _positive_int_or_none(v) -> bool:
    return v is None or (isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1)


def _positive(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v) and v > 0


# Each setting: the test its value must pass, and what the message says it must be.
_PARAMETERS = {
    "recipe": (lambda v: isinstance(v, str), "a recipe name (str)"),
    "epochs": (_positive_int_or_none, "a positive integer or None"),
    "batch_size": (_positive_int_or_none, "a positive integer or None"),
    "lr": (lambda v: v is None or _positive(v), "a positive float or None"),
    "pixel_max": (_positive, "a positive number"),
    "seed": (lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0, "a non-negative integer"),
}


class DigitClassifier(ClassifierMixin, BaseEstimator):
    """A digitlab recipe trained and used as a scikit-learn classifier.

    Args:
        recipe: a recipe trained by `Sequential.fit` (``digitlab.recipes.RECIPES``, all but the
            pure-Python ones), e.g. "mlp" (dense, any width) or "digits-cnn" (square images).
        epochs, batch_size, lr: override the recipe's (None keeps them).
        pixel_max: the value of full ink in X (255 for MNIST, 16 for the 8x8 digits); X is
            scaled to 0..255 pixels before the network's own scaling.
        seed: fixes the initial weights, the shuffling, dropout and augmentation.

    Attributes (after ``fit``):
        classes_: the distinct labels, sorted (k).
        n_features_in_: the width of X.
        model_: the trained `Sequential`; it takes pixels 0..255, N x n_features for a dense
            recipe, N x side x side for a convolutional one (so `digitlab.export.to_onnx` and
            `digitlab.save_model` work on it as on any digitlab model).
    """

    def __init__(self, recipe: str = "mlp", epochs: int | None = None, batch_size: int | None = None,
                 lr: float | None = None, pixel_max: float = 255.0, seed: int = 0):
        self.recipe = recipe
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.pixel_max = pixel_max
        self.seed = seed

    def fit(self, X, y) -> "DigitClassifier":
        """Train a fresh network on X (N x n_features, pixels 0..pixel_max) and labels y (N)."""
        recipe = self._recipe()
        X, y = validate_data(self, X, y)
        check_classification_targets(y)
        classes, labels = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(f"DigitClassifier needs at least 2 classes in y; got 1 class: {classes[0]!r}")
        layers, input_shape = _network(recipe, X.shape[1], len(classes))
        model = recipe.build(self.seed, self.lr, layers, input_shape)
        model.fit(self._pixels(X, input_shape), labels.astype(np.int64),
                  epochs=self.epochs or recipe.epochs, batch_size=self.batch_size or recipe.batch_size,
                  augment=recipe.augmenter())
        model.metadata.update(recipe=recipe.name, recipe_version=recipe.version)
        self.classes_, self.model_ = classes, model
        return self

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, float32 N x k, columns in the order of ``classes_`` (for a recipe
        ending in Softmax; the sigmoid tutorial's outputs are scores that need not sum to 1)."""
        check_is_fitted(self, "model_")
        X = validate_data(self, X, reset=False)
        return self.model_.predict_proba(self._pixels(X, self.model_.input_shape))

    def predict(self, X) -> np.ndarray:
        """The most probable label of each row of X (N), taken from ``classes_``."""
        probs = self.predict_proba(X)  # first: it checks the estimator is fitted
        return self.classes_[probs.argmax(axis=1)]

    def _recipe(self) -> Recipe:
        """The recipe, after checking every setting (scikit-learn validates in fit, not __init__)."""
        for name, (valid, expected) in _PARAMETERS.items():
            value = getattr(self, name)
            if not valid(value):
                raise ValueError(f"The {name!r} parameter of DigitClassifier must be {expected}. Got {value!r} instead.")
        recipe = get_recipe(self.recipe)
        if recipe.trainer is not None:
            raise ValueError(f"recipe {recipe.name!r} is trained by the pure-Python engine; DigitClassifier "
                             "needs a recipe trained by Sequential.fit")
        return recipe

    def _pixels(self, X: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """X as the network takes it: float32 pixels 0..255, N x input_shape."""
        x = np.asarray(X, dtype=np.float32)
        if self.pixel_max != 255:
            x = x * np.float32(255 / self.pixel_max)
        return x.reshape(len(x), *input_shape)


def _network(recipe: Recipe, n_features: int, n_classes: int) -> tuple[list, tuple[int, ...]]:
    """The recipe's layers for inputs of ``n_features`` and ``n_classes`` outputs, and the input
    shape they take: (n_features,) for a dense recipe, (side, side) for a convolutional one, whose
    Reshape to 28 x 28 x 1 (or 8 x 8 x 1) becomes side x side x 1."""
    layers = recipe.layers()
    input_shape: tuple[int, ...] = (n_features,)
    if any(isinstance(layer, Reshape) for layer in layers):
        side = math.isqrt(n_features)
        if side * side != n_features:
            raise ValueError(f"recipe {recipe.name!r} is convolutional: X must hold square images "
                             f"(side x side features); got {n_features} features")
        layers = [Reshape((side, side, 1)) if isinstance(layer, Reshape) else layer for layer in layers]
        input_shape = (side, side)
    last = max(i for i, layer in enumerate(layers) if isinstance(layer, Dense))
    layers[last] = Dense(**{**layers[last].get_config(), "units": n_classes})
    return layers, input_shape
