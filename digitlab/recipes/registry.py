"""The registry of recipes: named, versioned ways to build and train a model, one per tutorial (its
architecture and hyper-parameters as published, with the figure it reported) and the project's
own best ones.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from ..data import Augment
from ..errors import lookup
from ..nn import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    ReLU,
    Rescaling,
    Reshape,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from .pure import PURE, TUTORIAL


@dataclass(frozen=True)
class Recipe:
    """How to build and train one model.

    Attributes:
        name: what the CLI accepts (``--recipe NAME``).
        summary: one line for tables and ``--help``.
        layers: builds the layer list (a fresh one on every call).
        optimizer, loss, schedule: as `Sequential.compile` takes them (names or config dicts).
        epochs, batch_size: training defaults; ``lr`` overrides the optimizer's rate when given.
        published: the test accuracy the tutorial reported (None for the project's own recipes).
        source: where the recipe comes from.
        dataset: "mnist" or "digits" (scikit-learn's 8x8); ``train_limit`` keeps only the first N
            training images, as some tutorials do.
        version: bumped whenever the recipe changes what it trains.
        quick_epochs: epochs in a quick run (``digitlab reproduce --quick``); None means 1.
        reproduce: listed by ``digitlab reproduce`` even without a ``published`` figure (a
            tutorial that published none, or one of the project's comparison rows). Recipes
            with a ``published`` figure are always listed.
    """

    name: str
    summary: str
    layers: Callable[[], list]
    optimizer: dict
    loss: str | dict = "cross_entropy"
    schedule: str | dict | None = None
    epochs: int = 10
    batch_size: int = 64
    published: float | None = None
    source: str = "digitlab"
    dataset: str = "mnist"
    train_limit: int | None = None
    version: int = 1
    notes: str = ""
    augment: dict | None = None  # settings of `digitlab.data.Augment`, applied to each training batch
    # A recipe that does not train a `Sequential` with `fit` (the pure-Python engine) supplies
    # trainer(recipe, train, seed=, lr=, callbacks=) -> a trained Sequential.
    trainer: Callable | None = None
    quick_epochs: int | None = None
    reproduce: bool = False

    @property
    def input_shape(self) -> tuple[int, int]:
        return (8, 8) if self.dataset == "digits" else (28, 28)

    def build(self, seed: int = 0, lr: float | None = None, layers: list | None = None,
              input_shape: tuple[int, ...] | None = None) -> Sequential:
        """A fresh model compiled for this recipe's training: its own network, or ``layers`` for
        inputs of ``input_shape`` (the scikit-learn estimator builds for the width it sees)."""
        model = Sequential(layers or self.layers(), input_shape=input_shape or self.input_shape, seed=seed)
        optimizer = dict(self.optimizer, **({"lr": lr} if lr is not None else {}))
        return model.compile(optimizer, self.loss, self.schedule)

    def augmenter(self) -> Augment | None:
        """The distortion applied to each training batch (`digitlab.data.Augment`), if any."""
        return Augment(**self.augment) if self.augment else None


def _tutorial_relu512():
    return [Rescaling(1 / 255), Flatten(),
            Dense(512, init="uniform_fan_in"), ReLU(),
            Dense(10, init="uniform_fan_in"), Softmax()]


def _tutorial_sigmoid200():
    return [Rescaling(0.99 / 255, 0.01), Flatten(),
            Dense(200, init="normal_fan_in", use_bias=False), Sigmoid(),
            Dense(10, init="normal_fan_in", use_bias=False), Sigmoid()]


def _tutorial_keras_dense():
    return [Rescaling(1 / 255), Flatten(),
            Dense(1024, init="glorot_uniform"), ReLU(),
            Dense(128, init="glorot_uniform"), Tanh(),
            Dropout(0.05),
            Dense(64, init="glorot_uniform"), ReLU(),
            Dense(10, init="glorot_uniform"), Softmax()]


def _mlp():
    return [Rescaling(1 / 255), Flatten(),
            Dense(512), ReLU(), Dropout(0.2),
            Dense(512), ReLU(), Dropout(0.2),
            Dense(10, init="glorot_uniform"), Softmax()]


def _cnn_fast():
    # Strided convolutions instead of convolution + pooling: the spatial size halves inside the
    # convolution itself, so no 28x28x16 activation is ever built, pooled and back-propagated.
    # PyTorch's default initialisation, which trained better than he_normal (version 1) over six
    # seeds (BENCHMARKS.md).
    init = "pytorch_default"
    return [Rescaling(1 / 255), Reshape((28, 28, 1)),
            Conv2D(32, 5, stride=2, init=init), BatchNorm(), ReLU(),
            Conv2D(64, 3, stride=2, init=init), BatchNorm(), ReLU(),
            Flatten(), Dense(128, init=init), ReLU(),
            Dense(10, init="glorot_uniform"), Softmax()]


def _digits_cnn():
    # For scikit-learn's 8x8 digits: one full-resolution convolution, one strided to 4x4.
    return [Rescaling(1 / 255), Reshape((8, 8, 1)),
            Conv2D(32, 3), BatchNorm(), ReLU(),
            Conv2D(64, 3, stride=2), BatchNorm(), ReLU(),
            Flatten(), Dropout(0.3), Dense(128), ReLU(), Dropout(0.3),
            Dense(10, init="glorot_uniform"), Softmax()]


def _cnn():
    return [Rescaling(1 / 255), Reshape((28, 28, 1)),
            Conv2D(32, 3), BatchNorm(), ReLU(),
            Conv2D(32, 3, stride=2), BatchNorm(), ReLU(),
            Conv2D(64, 3), BatchNorm(), ReLU(),
            Conv2D(64, 3, stride=2), BatchNorm(), ReLU(),
            Flatten(), Dropout(0.3), Dense(256), BatchNorm(), ReLU(), Dropout(0.3),
            Dense(10, init="glorot_uniform"), Softmax()]


def _cnn_deep():
    # Seven convolutions after the best-known Kaggle MNIST network (C. Deotte, 2018): pairs of
    # 'valid' 3x3 convolutions, each pair followed by a 5x5 stride-2 one instead of pooling,
    # 28 -> 26 -> 24 -> 12 -> 10 -> 8 -> 4, then a 4x4 convolution down to 1x1x128.
    return [Rescaling(1 / 255), Reshape((28, 28, 1)),
            Conv2D(32, 3, padding="valid"), BatchNorm(), ReLU(),
            Conv2D(32, 3, padding="valid"), BatchNorm(), ReLU(),
            Conv2D(32, 5, stride=2), BatchNorm(), ReLU(), Dropout(0.4),
            Conv2D(64, 3, padding="valid"), BatchNorm(), ReLU(),
            Conv2D(64, 3, padding="valid"), BatchNorm(), ReLU(),
            Conv2D(64, 5, stride=2), BatchNorm(), ReLU(), Dropout(0.4),
            Conv2D(128, 4, padding="valid"), BatchNorm(), ReLU(),
            Flatten(), Dropout(0.4), Dense(10, init="glorot_uniform"), Softmax()]


def _cnn_m5():
    # An et al.'s M5 (2020): five bias-free 'valid' 5x5 convolutions, 28 -> 24 -> 20 -> 16 -> 12 -> 8,
    # no pooling, each with batch norm; then a bias-free fc 10 with batch norm. Pixels to [-1, 1]
    # as theirs. 137 M multiply-adds per image, 17 times cnn's.
    layers = [Rescaling(2 / 255, -1.0), Reshape((28, 28, 1))]
    for channels in (32, 64, 96, 128, 160):
        layers += [Conv2D(channels, 5, padding="valid", use_bias=False), BatchNorm(), ReLU()]
    return layers + [Flatten(), Dense(10, init="glorot_uniform", use_bias=False), BatchNorm(), Softmax()]


_CNN_FAST = Recipe(
    name="cnn-fast",
    summary="digitlab's fast CNN: conv32/5s2-conv64/3s2-fc128 with batch norm, Adam one-cycle, 3 epochs",
    layers=_cnn_fast,
    optimizer={"name": "adam", "lr": 3e-3},
    schedule={"name": "onecycle"},
    epochs=3,
    batch_size=128,
    version=2,
)

_CNN = Recipe(
    name="cnn",
    summary="digitlab's best CNN within 20 minutes: 4 conv layers with batch norm, dropout, augmentation, one-cycle",
    layers=_cnn,
    optimizer={"name": "adam", "lr": 3e-3},
    schedule={"name": "onecycle"},
    epochs=15,
    batch_size=128,
    augment={"shift": 2.0, "rotate": 10.0, "scale": 0.1},
)


RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in [
        Recipe(
            name="tutorial-relu512",
            summary="NumPy ReLU/softmax tutorial: 784-512-10, batch 128, plain gradient descent lr 0.15",
            layers=_tutorial_relu512,
            optimizer={"name": "sgd", "lr": 0.15},
            epochs=143,
            batch_size=128,
            source="NumPy ReLU/softmax tutorial (no published figure; its code ran 143 epochs)",
            notes="weights U[0,1)*sqrt(1/n) as published; 10 outputs where the published code built 512 by mistake",
            quick_epochs=10,
            reproduce=True,
        ),
        Recipe(
            name="tutorial-sigmoid200",
            summary="NumPy sigmoid tutorial: 784-200-10, squared error, per-sample SGD lr 0.1, 5 epochs",
            layers=_tutorial_sigmoid200,
            optimizer={"name": "sgd", "lr": 0.1},
            loss={"name": "mse", "off": 0.01, "on": 0.99},
            epochs=5,
            batch_size=1,
            published=0.9742,
            source="'Make Your Own Neural Network' (T. Rashid): 97.42% after 5 epochs",
        ),
        Recipe(
            name="tutorial-keras-dense",
            summary="Keras dense tutorial: 784-1024-128-64-10, dropout 0.05, Adam, batch 64, 10 epochs",
            layers=_tutorial_keras_dense,
            optimizer={"name": "adam", "lr": 1e-3},
            epochs=10,
            batch_size=64,
            published=0.9811,
            source="Keras dense-network MNIST tutorial: 98.11% after 10 epochs",
        ),
        Recipe(
            name="mlp",
            summary="digitlab's dense network: 784-512-512-10, dropout 0.2, Adam with a one-cycle schedule",
            layers=_mlp,
            optimizer={"name": "adam", "lr": 2e-3},
            schedule={"name": "onecycle"},
            epochs=15,
            batch_size=128,
        ),
        _CNN_FAST,
        # The default: cnn-fast's network, given the two minutes that 3 epochs leave unused. The
        # longer run pays only with augmentation: without it, 12 epochs are no better than 3
        # (BENCHMARKS.md).
        replace(
            _CNN_FAST,
            name="cnn-fast-aug",
            summary="cnn-fast's network trained 12 epochs on augmented batches: the best CNN within about 2 minutes",
            epochs=12,
            augment=_CNN.augment,
        ),
        _CNN,
        # Variants of cnn's training with another network or augmentation, as ensemble members.
        replace(
            _CNN,
            name="cnn-deep",
            summary="7 conv layers after the best-known Kaggle MNIST network, batch norm, dropout 0.4, augmentation",
            layers=_cnn_deep,
            source="digitlab, after C. Deotte's 'How to choose CNN architecture MNIST' (Kaggle, 2018)",
        ),
        replace(
            _CNN,
            name="cnn-m5",
            summary="An et al.'s M5: five 5x5 convolutions of 32-160 channels, batch norm, cnn's training for 12 epochs",
            layers=_cnn_m5,
            epochs=12,
            source="digitlab, after An et al. (2020), 'An Ensemble of Simple Convolutional Neural Network Models "
                   "for MNIST Digit Recognition': their M5 network, trained as cnn is instead of for 150 epochs",
        ),
        Recipe(
            name="digits-cnn",
            summary="digitlab's CNN for the 8x8 digits: conv32-conv64/s2-fc128, batch norm, dropout, augmentation",
            layers=_digits_cnn,
            optimizer={"name": "adam", "lr": 3e-3},
            schedule={"name": "onecycle"},
            epochs=40,
            batch_size=32,
            dataset="digits",
            augment={"shift": 1.0, "rotate": 12.0, "scale": 0.15},
            source="digitlab, on the scikit-learn tutorial's split (first 1,000 of the 8x8 digits; tested on the other 797)",
            quick_epochs=10,
            reproduce=True,
        ),
        Recipe(
            name="tutorial-pure-linear",
            summary="pure-Python tutorial: 10x784 linear net, raw pixels, delta rule alpha 1e-7, 1,000 images, 5 epochs",
            layers=TUTORIAL.layers,
            optimizer={"name": "sgd", "lr": 1e-7},
            epochs=5,
            batch_size=1,
            published=0.7447,
            source="the pure-Python MNIST tutorial (plain lists, no NumPy): 74.47% after 5 epochs on 1,000 images",
            train_limit=1000,
            trainer=TUTORIAL.train,
            notes="weights start at 0.0001 * row index; trained by digitlab.pure; history loss is the squared "
                  "error the delta rule minimises, the test loss the cross-entropy of the softmax of the outputs",
            quick_epochs=5,  # the whole run takes about a second: a quick run is the real one
        ),
        Recipe(
            name="pure",
            summary="pure-Python engine: 784-32-10 ReLU, softmax cross-entropy, per-image SGD, sparse pixels",
            layers=PURE.layers,
            optimizer={"name": "sgd", "lr": 0.02},
            epochs=3,
            batch_size=1,
            trainer=PURE.train,
            notes="plain Python, no NumPy while training; learning rate falls linearly to 0",
            reproduce=True,  # the pure-Python tutorial's row, made good
        ),
    ]
}

DEFAULT_RECIPE = "cnn-fast-aug"


def get_recipe(name: str) -> Recipe:
    return lookup(RECIPES, name, "recipe")
