"""Losses: ``value(output, labels) -> float`` and ``grad(output, labels) -> d loss / d output``,
both averaged over the batch. Labels are integer class indices, N."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .registry import from_spec


class CrossEntropy:
    """-mean log p[label] on softmax probabilities.

    Its gradient is taken with respect to the logits (the input of the final `Softmax` layer,
    which the model then skips): d loss / d logits = (p - onehot(y)) / N, exact and numerically
    stable, where chaining through the softmax derivative would lose precision and time.
    ``label_smoothing`` mixes the one-hot target with the uniform distribution.
    """

    fuses_softmax = True

    def __init__(self, label_smoothing: float = 0.0):
        if not 0 <= label_smoothing < 1:
            raise ModelError(f"CrossEntropy: label_smoothing must be in [0, 1). Received: {label_smoothing!r}")
        self.label_smoothing = float(label_smoothing)

    def value(self, probs: np.ndarray, labels: np.ndarray) -> float:
        rows = np.arange(len(labels))
        if not self.label_smoothing:  # only the labelled column matters: skip the full log
            return float(-np.log(np.clip(probs[rows, labels], 1e-12, 1.0)).mean())
        logp = np.log(np.clip(probs, 1e-12, 1.0))  # clipped: a zero probability costs 27.6, not inf
        eps = self.label_smoothing
        return float(((eps - 1) * logp[rows, labels] - eps * logp.mean(axis=1)).mean())

    def grad(self, probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """d loss / d logits."""
        n, k = probs.shape
        g = probs.copy()
        if self.label_smoothing:
            g -= np.float32(self.label_smoothing / k)
        g[np.arange(n), labels] -= np.float32(1 - self.label_smoothing)
        g *= np.float32(1 / n)
        return g

    def value_and_grad(self, probs, labels) -> tuple[float, np.ndarray]:
        return self.value(probs, labels), self.grad(probs, labels)

    def get_config(self):
        return {"label_smoothing": self.label_smoothing}


class MeanSquaredError:
    """Half the summed squared error per sample, averaged over the batch:
    ``mean_n 1/2 sum_k (y_nk - t_nk)^2`` with one-hot targets ``t`` made of ``off``/``on`` values.

    The 1/2 and the per-sample sum make the gradient ``(y - t) / N``: for a batch of one it is
    exactly the error the sigmoid tutorial back-propagates (targets 0.01 / 0.99).
    """

    fuses_softmax = False

    def __init__(self, off: float = 0.0, on: float = 1.0):
        self.off, self.on = float(off), float(on)

    def _error(self, output, labels) -> np.ndarray:
        d = output - np.float32(self.off)
        d[np.arange(len(labels)), labels] -= np.float32(self.on - self.off)
        return d

    def value(self, output: np.ndarray, labels: np.ndarray) -> float:
        return self.value_and_grad(output, labels)[0]

    def grad(self, output: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return self.value_and_grad(output, labels)[1]

    def value_and_grad(self, output, labels) -> tuple[float, np.ndarray]:
        d = self._error(output, labels)
        n = len(d)
        value = 0.5 * float(np.vdot(d, d)) / n  # BLAS dot: an overflow gives inf, caught by fit
        if n > 1:
            d *= np.float32(1 / n)
        return value, d

    def get_config(self):
        return {"off": self.off, "on": self.on}


LOSSES = {"cross_entropy": CrossEntropy, "mse": MeanSquaredError}


def get_loss(spec) -> CrossEntropy | MeanSquaredError:
    """A loss from its name, a ``{"name": ..., **config}`` dict, or an instance."""
    return from_spec(LOSSES, spec, "loss")
