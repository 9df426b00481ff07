"""Activation functions as layers. Each backward reuses the forward output where the derivative
can be written in terms of it (sigmoid, tanh, softmax), so no extra array is kept."""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from . import kernels
from .layers import Layer


class ReLU(Layer):
    """max(x, 0); derivative 1 where the output is positive."""

    def forward(self, x, training=False):
        y = self.saved.y = kernels.relu(x)
        return y

    def backward(self, grad):
        return kernels.mask_by_positive(grad, self.saved.y)


class LeakyReLU(Layer):
    """x for x > 0, alpha * x otherwise."""

    def __init__(self, alpha: float = 0.01):
        super().__init__()
        if not 0 <= alpha < 1:
            raise ModelError(f"LeakyReLU: alpha must be in [0, 1). Received: alpha={alpha!r}")
        self.alpha = float(alpha)

    def forward(self, x, training=False):
        positive = self.saved.positive = x > 0
        return np.where(positive, x, x * np.float32(self.alpha))

    def backward(self, grad):
        return np.where(self.saved.positive, grad, grad * np.float32(self.alpha))

    def get_config(self):
        return {"alpha": self.alpha}


class Sigmoid(Layer):
    """1 / (1 + e^-x); derivative y (1 - y)."""

    def forward(self, x, training=False):
        # Computed as (1 + tanh(x/2)) / 2, the same function: unlike 1/(1+exp(-x)) it cannot
        # overflow (exp(-x) does in float32 for x < -88), so no warning needs silencing.
        y = np.multiply(x, np.float32(0.5))
        np.tanh(y, out=y)
        y *= np.float32(0.5)
        y += np.float32(0.5)
        self.saved.y = y
        return y

    def backward(self, grad):
        y = self.saved.y
        return grad * y * (1 - y)


class Tanh(Layer):
    """tanh x; derivative 1 - y^2."""

    def forward(self, x, training=False):
        y = self.saved.y = np.tanh(x)
        return y

    def backward(self, grad):
        y = self.saved.y
        return grad * (1 - y * y)


class Softmax(Layer):
    """Row-wise exp(x - max) / sum: probabilities. With cross-entropy the model skips this backward
    and starts from the fused gradient p - onehot(y), which is exact and cheaper."""

    def forward(self, x, training=False):
        y = x - x.max(axis=1, keepdims=True)  # subtracting the row max keeps exp from overflowing
        np.exp(y, out=y)
        y /= y.sum(axis=1, keepdims=True)
        self.saved.y = y
        return y

    def backward(self, grad):
        y = self.saved.y
        return y * (grad - (grad * y).sum(axis=1, keepdims=True))
