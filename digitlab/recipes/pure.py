"""The pure-Python engine's recipes, and its bridge to the NumPy engine.

`digitlab.pure` knows nothing of NumPy; this module (in the recipes layer) converts between the
two: a trained `PureNetwork` becomes a `Sequential` with the same weights and the same maths,

    Rescaling(scale) -> Flatten -> Dense(hidden) -> ReLU -> Dense(10) -> Softmax

which saves to the usual model file, loads with `digitlab.load_model` and predicts the same
digits. The final Softmax turns logits into the probabilities they stand for; for the tutorial's
delta-rule network, whose outputs are not probabilities, it is a monotone rescaling, so the
largest output — the predicted digit — is unchanged.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from ..data import Dataset
from ..errors import ModelError
from ..nn import Callback, Dense, Flatten, ReLU, Rescaling, Sequential, Softmax
from ..nn.training import run_epochs
from ..pure import PureNetwork, sparse_images


def sequential_layers(sizes: list[int], scale: float, bias: bool) -> list:
    """The NumPy layers computing what a `PureNetwork` of ``sizes`` computes on pixels x scale."""
    layers = [Rescaling(scale), Flatten()]
    for n_out in sizes[1:-1]:
        layers += [Dense(n_out, init="he_uniform", use_bias=bias), ReLU()]
    return layers + [Dense(sizes[-1], init="glorot_uniform", use_bias=bias), Softmax()]


def _arrays(net: PureNetwork) -> list[np.ndarray]:
    """The weight arrays of the matching `Sequential`, in its order (Dense's W is inputs x units)."""
    arrays = []
    for W, b in zip(net.weights, net.biases):
        arrays.append(np.array(W, dtype=np.float32).T)
        if net.bias:
            arrays.append(np.array(b, dtype=np.float32))
    return arrays


def to_sequential(net: PureNetwork, scale: float = 1 / 255, input_shape: tuple[int, ...] = (28, 28)) -> Sequential:
    """A NumPy `Sequential` with ``net``'s weights (as float32) that takes raw images of
    ``input_shape`` and multiplies them by ``scale``, as ``net`` was trained."""
    if math.prod(input_shape) != net.sizes[0]:
        raise ModelError(f"input_shape {tuple(input_shape)} has {math.prod(input_shape)} pixels; "
                         f"the network takes {net.sizes[0]}")
    model = Sequential(sequential_layers(net.sizes, scale, net.bias), input_shape=input_shape)
    model.set_weights(_arrays(net))
    return model


def from_sequential(model: Sequential) -> tuple[PureNetwork, float]:
    """``(network, scale)`` from a `Sequential` laid out as `sequential_layers` makes them."""
    kinds = [type(layer).__name__ for layer in model.layers]
    if kinds not in (["Rescaling", "Flatten", "Dense", "Softmax"],
                     ["Rescaling", "Flatten", "Dense", "ReLU", "Dense", "Softmax"]):
        raise ModelError(f"not a pure-engine architecture: {' -> '.join(kinds)}")
    rescaling = model.layers[0]
    if rescaling.offset:
        raise ModelError("the pure engine has no input offset (Rescaling offset must be 0)")
    dense = [layer for layer in model.layers if isinstance(layer, Dense)]
    bias = dense[0].use_bias
    if any(layer.use_bias != bias for layer in dense):
        raise ModelError("the pure engine needs biases in every layer or in none")
    weights = [layer.params[0].T.astype(float).tolist() for layer in dense]
    biases = [layer.params[1].astype(float).tolist() for layer in dense] if bias else None
    return PureNetwork.from_weights(weights, biases), rescaling.scale


@dataclass(frozen=True)
class PureSetup:
    """How a pure recipe builds and trains its network. `layers` and `train` are the Recipe's
    ``layers`` and ``trainer``, so the model file describes exactly the trained network.

    Attributes:
        hidden: neurons in the hidden ReLU layer (0: none).
        rule: "delta" or "softmax" (see `PureNetwork.train_epoch`).
        scale: input scaling (1.0 keeps raw 0..255 pixels).
        bias: trained biases.
        tutorial_init: start from the tutorial's weights (``PureNetwork.tutorial``) instead of
            seeded random ones.
        shuffle: a new seeded order of the images every epoch (else their order in the data).
        decay: the learning rate falls linearly from its value to 0 over the whole run.
    """

    hidden: int = 0
    rule: str = "softmax"
    scale: float = 1 / 255
    bias: bool = True
    tutorial_init: bool = False
    shuffle: bool = True
    decay: bool = True

    def sizes(self, n_inputs: int) -> list[int]:
        return [n_inputs, self.hidden, 10] if self.hidden else [n_inputs, 10]

    def layers(self) -> list:
        return sequential_layers(self.sizes(784), self.scale, self.bias)

    def network(self, n_inputs: int, seed: int) -> PureNetwork:
        if self.tutorial_init:
            return PureNetwork.tutorial()
        return PureNetwork(self.sizes(n_inputs), bias=self.bias, seed=seed)

    def train(self, recipe, train: Dataset, *, seed: int = 0, lr: float | None = None,
              callbacks: Iterable[Callback] = ()) -> Sequential:
        """The Recipe ``trainer``: train a `PureNetwork` on ``train`` for ``recipe.epochs`` and
        return it as a `Sequential`, reporting to ``callbacks`` as `Sequential.fit` does (the
        batches are single images; on_batch_end comes every 0.5% of them) and filling the
        model's history."""
        if recipe.batch_size != 1:
            raise ModelError(f"the pure-Python engine trains on one image at a time: batch size must be 1 "
                             f"(got {recipe.batch_size})")
        model = recipe.build(seed, lr)  # the matching Sequential: architecture, compile settings
        lr = float(lr if lr is not None else recipe.optimizer["lr"])
        # NumPy stops here: the pure engine gets plain lists of ints.
        images = sparse_images(train.images.reshape(len(train), -1).tolist(), self.scale)
        labels = train.labels.tolist()
        net = self.network(math.prod(train.image_shape), seed)
        model.set_weights(_arrays(net))
        rng = random.Random(f"shuffle-{seed}") if self.shuffle else None  # its own stream, apart from the weights'
        n, epochs = len(images), recipe.epochs

        def epoch(e, report):
            start_lr = lr * (1 - e / epochs) if self.decay else lr
            end_lr = lr * (1 - (e + 1) / epochs) if self.decay else lr
            model.optimizer.lr = start_lr
            # Report every 0.5%: as often as the CLI's progress bar redraws.
            loss, accuracy = net.train_epoch(images, labels, start_lr, rule=self.rule, lr_end=end_lr, rng=rng,
                                             report=report, report_every=max(1, n // 200))
            model.set_weights(_arrays(net))  # callbacks (checkpoints, early stopping) see this epoch's weights
            return loss, accuracy, end_lr

        run_epochs(model, epochs, n, n, epoch, callbacks)
        return model


# The first tutorial exactly: raw pixels, its weights, the delta rule, images in order, fixed alpha.
TUTORIAL = PureSetup(hidden=0, rule="delta", scale=1.0, bias=False, tutorial_init=True, shuffle=False, decay=False)

# The same engine made good: pixels 0..1, one hidden layer of 32 ReLU neurons, softmax
# cross-entropy, shuffled, learning rate falling linearly to 0.
PURE = PureSetup(hidden=32, rule="softmax", scale=1 / 255, bias=True)
