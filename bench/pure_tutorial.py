"""The first tutorial's network and loop, written the way it was published: dense lists, a loop
over every weight, no tricks. It is the reference `digitlab.pure` is checked (tests/test_pure.py)
and timed (bench/pure.py) against; `PureNetwork` with ``rule="delta"`` does the same arithmetic on
the non-zero pixels only.

    weights[i][j]: 10 x 784, row i filled with 0.0001 * i (see `PureNetwork.tutorial`)
    output[i] = sum_j weights[i][j] * x[j]              x = raw pixels 0..255
    weights[i][j] -= alpha * (output[i] - target[i]) * x[j]     alpha = 1e-7, target one-hot

trained on the first 1,000 training images for 5 epochs; the prediction is the largest output.
"""

from __future__ import annotations

from typing import Sequence

ALPHA = 1e-7


def tutorial_weights() -> list[list[float]]:
    """The tutorial's starting weights: 10 rows of 784, row i all 0.0001 * i."""
    return [[0.0001 * i for j in range(784)] for i in range(10)]


def tutorial_train(weights: list[list[float]], images: Sequence[Sequence[int]], labels: Sequence[int],
                   alpha: float = ALPHA, epochs: int = 1) -> list[list[float]]:
    """Train ``weights`` in place with the delta rule on dense images (lists of 784 pixel values,
    0..255), one image at a time, in order. Returns ``weights``."""
    for epoch in range(epochs):
        for x, label in zip(images, labels):
            output = [0.0] * 10
            for i in range(10):
                for j in range(784):
                    output[i] += weights[i][j] * x[j]
            target = [0] * 10
            target[label] = 1
            for i in range(10):
                for j in range(784):
                    weights[i][j] -= alpha * (output[i] - target[i]) * x[j]
    return weights


def tutorial_predict(weights: list[list[float]], x: Sequence[int]) -> int:
    """The digit whose output is largest for the dense image ``x``."""
    output = [0.0] * 10
    for i in range(10):
        for j in range(784):
            output[i] += weights[i][j] * x[j]
    return output.index(max(output))
