"""`PureNetwork`: a neural network in plain Python lists, trained one image at a time.

The notation follows the first tutorial. A network with ``sizes = [784, 10]`` is its 10 x 784
weight matrix: ``weights[0][k]`` is the row of 784 input weights of output neuron ``k``, and

    output[k] = sum_j weights[0][k][j] * x[j]  (+ biases[0][k])

``sizes = [784, 32, 10]`` adds a hidden layer of 32 ReLU neurons: ``weights[0]`` is 32 x 784,
``weights[1]`` is 10 x 32, and ``h = relu(W0 x + b0)``, ``output = W1 h + b1``.

Training is stochastic gradient descent on one image at a time with one of two rules:

* ``"delta"`` (the tutorial's): squared error ``1/2 sum_k (output[k] - target[k])^2`` with a
  one-hot target, so ``error[k] = output[k] - target[k]``;
* ``"softmax"``: softmax then cross-entropy ``-log p[label]``, so ``error[k] = p[k] - target[k]``.

Either way the update of a weight is ``w[k][j] -= lr * error[k] * x[j]``: the two rules differ
only in how the error is measured. With a hidden layer the error is sent back through the output
weights (back-propagation) and only the softmax rule is offered.

Images are sparse (see `digitlab.pure.images`): only the ~150 non-zero pixels of 784 are stored,
so each sum and each update touches 150 numbers. The loops below also use a few standard tricks
for speed in CPython, each marked where it is used.
"""

from __future__ import annotations

import math
import random
from operator import itemgetter, mul
from typing import Callable, Sequence

from ..errors import ModelError
from .images import SparseImage

RULES = ("delta", "softmax")

# report(samples_done, mean_loss, accuracy, lr): progress during an epoch.
Report = Callable[[int, float, float, float], None]


class PureNetwork:
    """A fully connected network as lists of lists of floats.

    Args:
        sizes: ``[inputs, outputs]`` (a linear network) or ``[inputs, hidden, outputs]`` (one
            hidden ReLU layer).
        bias: whether each neuron has a trained bias (the tutorial's network has none).
        seed: fixes the random initial weights: He-uniform ``U(-a, a)``, ``a = sqrt(6 / inputs)``
            for the hidden layer, Glorot-uniform ``a = sqrt(6 / (inputs + outputs))`` for the
            output layer; biases start at 0.

    Attributes:
        weights: one matrix per layer, ``weights[l][k][j]`` = weight from input j to neuron k.
        biases: one list per layer (zeros that stay zero when ``bias`` is false).
    """

    def __init__(self, sizes: Sequence[int] = (784, 10), bias: bool = True, seed: int = 0):
        sizes = list(sizes)
        if len(sizes) not in (2, 3) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise ModelError(f"PureNetwork: sizes must be [inputs, outputs] or [inputs, hidden, outputs], "
                             f"positive integers. Received: sizes={sizes!r}")
        self.sizes, self.bias = sizes, bool(bias)
        rng = random.Random(seed)
        self.weights: list[list[list[float]]] = []
        self.biases: list[list[float]] = []
        for layer, (n_in, n_out) in enumerate(zip(sizes, sizes[1:])):
            last = layer == len(sizes) - 2
            a = math.sqrt(6 / (n_in + n_out)) if last else math.sqrt(6 / n_in)
            self.weights.append([[rng.uniform(-a, a) for _ in range(n_in)] for _ in range(n_out)])
            self.biases.append([0.0] * n_out)

    @classmethod
    def from_weights(cls, weights: list[list[list[float]]], biases: list[list[float]] | None = None) -> "PureNetwork":
        """A network with the given matrices (``weights[l]`` is outputs x inputs) and biases
        (None: no biases)."""
        if not weights or len(weights) > 2:
            raise ModelError(f"PureNetwork: give one or two weight matrices, got {len(weights)}")
        sizes = [len(weights[0][0])] + [len(w) for w in weights]
        for l, w in enumerate(weights):
            if any(len(row) != sizes[l] for row in w):
                raise ModelError(f"PureNetwork: every row of weight matrix {l} must have {sizes[l]} weights")
        net = cls.__new__(cls)
        net.sizes, net.bias = sizes, biases is not None
        net.weights = [[[float(v) for v in row] for row in w] for w in weights]
        net.biases = ([[float(v) for v in b] for b in biases] if biases is not None
                      else [[0.0] * n for n in sizes[1:]])
        if [len(b) for b in net.biases] != sizes[1:]:
            raise ModelError(f"PureNetwork: biases must have {sizes[1:]} values per layer")
        return net

    @classmethod
    def tutorial(cls) -> "PureNetwork":
        """The first tutorial's 10 x 784 network, no biases, every weight of output neuron ``i``
        set to ``0.0001 * i`` (row 0 holds 0.0000, row 9 holds 0.0009).

        Why this scheme: of the plausible readings of "weights 0.0000..0.0009", only this one
        reproduces the published 74.47% (5 epochs on 1,000 images, measured: 74.47%). Values that
        vary along a row instead (``0.0001 * (j % 10)``) give every neuron the same start; a part
        shared by all rows adds the same amount to every output and, under the delta rule, stays
        shared, so they train exactly like all zeros (76.14%). A counter over the flattened
        matrix gives 71.44%; rows 0.0009 down to 0.0000 give 73.80%.
        """
        return cls.from_weights([[[0.0001 * i] * 784 for i in range(10)]])

    def __repr__(self) -> str:
        return f"PureNetwork(sizes={self.sizes}, bias={self.bias})"

    # ------------------------------------------------------------------------------ inference
    def outputs(self, image: SparseImage) -> list[float]:
        """The output neurons' values for one sparse image: raw outputs for the delta rule,
        logits (softmax inputs) for the softmax rule."""
        indices, values = image
        take = itemgetter(*indices)  # take(row) -> the weights of the non-zero pixels, in C
        layers = list(zip(self.weights, self.biases))
        W, b = layers[0]
        x = [sum(map(mul, take(row), values), bk) for row, bk in zip(W, b)]
        for W, b in layers[1:]:
            x = [v if v > 0.0 else 0.0 for v in x]  # ReLU on the hidden layer
            x = [sum(map(mul, row, x), bk) for row, bk in zip(W, b)]
        return x

    def predict_proba(self, image: SparseImage) -> list[float]:
        """Softmax of `outputs`: class probabilities (for a delta-rule network, a monotone
        rescaling of its outputs, so the most probable class is the predicted one)."""
        return softmax(self.outputs(image))

    def predict(self, image: SparseImage) -> int:
        """The digit whose output neuron is largest (the first on a tie, like NumPy's argmax)."""
        out = self.outputs(image)
        return out.index(max(out))

    def accuracy(self, images: Sequence[SparseImage], labels: Sequence[int]) -> float:
        """Fraction of ``images`` predicted as their label."""
        _check_data(images, labels, self.sizes[-1])
        predict = self.predict
        return sum(predict(image) == label for image, label in zip(images, labels)) / len(labels)

    # ------------------------------------------------------------------------------ training
    def train_epoch(
        self,
        images: Sequence[SparseImage],
        labels: Sequence[int],
        lr: float,
        *,
        rule: str = "softmax",
        lr_end: float | None = None,
        rng: random.Random | None = None,
        report: Report | None = None,
        report_every: int = 0,
    ) -> tuple[float, float]:
        """One pass over ``images`` (sparse) with ``labels`` (ints), one update per image.

        Args:
            lr: the learning rate (the tutorial's alpha). With ``lr_end`` it falls linearly from
                ``lr`` to ``lr_end`` over the epoch's images.
            rule: "delta" (squared error on the raw outputs; linear networks only) or "softmax"
                (cross-entropy on softmax probabilities).
            rng: shuffles the order of the images; None keeps their order.
            report: called as ``report(done, mean_loss, accuracy, lr)`` every ``report_every``
                images and at the end.

        Returns ``(mean loss, accuracy)`` over the epoch, each image counted before its update.
        Raises FloatingPointError as soon as the loss stops being finite (the learning rate is
        too high).
        """
        if rule not in RULES:
            raise ModelError(f"PureNetwork: rule must be one of {', '.join(RULES)}. Received: rule={rule!r}")
        if rule == "delta" and len(self.sizes) != 2:
            raise ModelError("PureNetwork: the delta rule trains a network without hidden layer")
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ModelError(f"PureNetwork: lr must be a positive number. Received: lr={lr!r}")
        _check_data(images, labels, self.sizes[-1])
        n = len(images)
        order = list(range(n))
        if rng is not None:
            rng.shuffle(order)
        step = (lr - (lr if lr_end is None else lr_end)) / n  # lr decrease per image
        every = report_every if report_every > 0 else n
        if len(self.sizes) == 2:
            steps = self._linear_steps
        else:
            steps = self._hidden_steps
        total_loss, correct = 0.0, 0
        for start in range(0, n, every):
            chunk = order[start : start + every]
            loss, right = steps(images, labels, chunk, lr - step * start, step, rule == "softmax")
            total_loss += loss
            correct += right
            done = start + len(chunk)
            if not math.isfinite(total_loss):
                raise FloatingPointError(f"the loss became non-finite after {done} images")
            if report is not None:
                report(done, total_loss / done, correct / done, lr - step * done)
        return total_loss / n, correct / n

    def _linear_steps(self, images, labels, order, lr, step, use_softmax) -> tuple[float, int]:
        """SGD on a network without hidden layer, one image of ``order`` at a time."""
        W, b = self.weights[0], self.biases[0]
        train_bias = self.bias
        classes = range(len(W))
        total_loss, correct = 0.0, 0
        for n in order:
            indices, values = images[n]
            y = labels[n]
            take = itemgetter(*indices)
            # Forward: one sum over the non-zero pixels per output neuron, run by sum/map in C.
            out = [sum(map(mul, take(row), values), bk) for row, bk in zip(W, b)]
            error, loss, right = _output_error(out, y, use_softmax)
            total_loss += loss
            correct += right
            # Update: w[k][j] -= lr * error[k] * x[j], only where x[j] != 0.
            for k in classes:
                c = lr * error[k]
                _subtract_scaled(W[k], indices, values, c)
                if train_bias:
                    b[k] -= c
            lr -= step
        return total_loss, correct

    def _hidden_steps(self, images, labels, order, lr, step, use_softmax) -> tuple[float, int]:
        """SGD with back-propagation through one hidden ReLU layer (softmax rule)."""
        (W1, W2), (b1, b2) = self.weights, self.biases
        train_bias = self.bias
        classes = range(len(W2))
        total_loss, correct = 0.0, 0
        for n in order:
            indices, values = images[n]
            y = labels[n]
            take = itemgetter(*indices)
            # Forward: hidden layer over the non-zero pixels, ReLU, output layer, softmax.
            h = [sum(map(mul, take(row), values), bk) for row, bk in zip(W1, b1)]
            h = [v if v > 0.0 else 0.0 for v in h]
            out = [sum(map(mul, row, h), bk) for row, bk in zip(W2, b2)]
            error, loss, right = _output_error(out, y, True)
            total_loss += loss
            correct += right
            # Backward: the hidden neurons' error, sum_k error[k] * W2[k][i], taken before W2
            # changes; zip(*W2) walks W2 by columns. A neuron that was off (ReLU 0) gets none.
            hidden_error = [sum(map(mul, column, error)) if hi > 0.0 else 0.0 for column, hi in zip(zip(*W2), h)]
            for k in classes:
                c = lr * error[k]
                W2[k] = [w - c * hi for w, hi in zip(W2[k], h)]  # a new row is faster than 32 in-place updates
                if train_bias:
                    b2[k] -= c
            for i, d in enumerate(hidden_error):
                if d:  # skip neurons with no error: about half of them, with ReLU
                    c = lr * d
                    _subtract_scaled(W1[i], indices, values, c)
                    if train_bias:
                        b1[i] -= c
            lr -= step
        return total_loss, correct


def _output_error(out: list[float], y: int, use_softmax: bool) -> tuple[list[float], float, bool]:
    """(error, loss, whether the largest output is ``y``) for one image's outputs: with softmax,
    error = p - onehot(y) and loss = -log p[y]; with the delta rule, error = out - onehot(y) and
    loss = 1/2 |error|^2."""
    top = max(out)
    right = out.index(top) == y
    if use_softmax:
        e = [math.exp(o - top) for o in out]  # minus the largest: exp cannot overflow
        s = sum(e)
        error = [v / s for v in e]
        loss = math.log(s) - (out[y] - top)  # -log p[y], computed without log(0)
        error[y] -= 1
        return error, loss, right
    error = out[:]
    error[y] -= 1
    return error, 0.5 * sum(v * v for v in error), right


def _subtract_scaled(row: list[float], indices, values, c: float) -> None:
    """row[j] -= c * x[j] for the non-zero pixels x[j] = values at indices."""
    for j, v in zip(indices, values):
        row[j] -= c * v


def softmax(values: Sequence[float]) -> list[float]:
    """exp(v - max) / sum: probabilities that keep the order of ``values``."""
    top = max(values)
    e = [math.exp(v - top) for v in values]
    s = sum(e)
    return [v / s for v in e]


def _check_data(images, labels, classes: int) -> None:
    if len(images) != len(labels):
        raise ModelError(f"PureNetwork: {len(images)} images but {len(labels)} labels")
    if not len(labels):
        raise ModelError("PureNetwork: no images given")
    low, high = min(labels), max(labels)
    if not (isinstance(low, int) and isinstance(high, int)) or low < 0 or high >= classes:
        raise ModelError(f"PureNetwork: labels must be ints in 0..{classes - 1}; got {low!r}..{high!r}")
