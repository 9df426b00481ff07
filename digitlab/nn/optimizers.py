"""Optimizers. Each takes the list of parameter arrays and the matching list of gradient arrays and
updates the parameters in place on ``step()``. The model hands them one flat buffer of all
parameters (and one of all gradients), so an update is a handful of whole-array NumPy operations
instead of a handful per tensor.

Weight decay is classic L2 regularisation: ``wd * p`` is added to the gradient of every parameter,
biases included (PyTorch's convention).

``gradient_scale()``: back-propagation is linear in the loss gradient, so multiplying that small
N x 10 array by a factor multiplies every parameter gradient by it. Plain SGD's update
``p -= lr g`` is linear in g too: the model scales the loss gradient by ``lr`` and calls
``step(scaled=True)``, which then subtracts the gradients as they are: one pass less over all the
weights per step, the largest single saving when training on one image at a time.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import ModelError
from .kernels import elementwise
from .registry import from_spec


class Optimizer:
    def __init__(self, lr: float, weight_decay: float = 0.0):
        if not (isinstance(lr, (int, float)) and lr > 0 and math.isfinite(lr)):
            raise ModelError(f"{type(self).__name__}: lr must be a positive number. Received: lr={lr!r}")
        if not weight_decay >= 0:
            raise ModelError(f"{type(self).__name__}: weight_decay must be >= 0. Received: {weight_decay!r}")
        self.lr = self.base_lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []

    def bind(self, params: list[np.ndarray], grads: list[np.ndarray]) -> "Optimizer":
        self.params, self.grads = params, grads
        self._tmp = [np.empty_like(p) for p in params]
        return self

    def _decayed(self, p: np.ndarray, g: np.ndarray, tmp: np.ndarray, factor: float = 1.0) -> np.ndarray:
        """g + wd p (with ``factor``: g + factor wd p, for gradients already scaled by ``factor``)."""
        if self.weight_decay:
            np.multiply(p, np.float32(self.weight_decay * factor), out=tmp)
            g += tmp
        return g

    def gradient_scale(self) -> float:
        """The factor the model may apply to the loss gradient before back-propagating, when the
        update is linear in the gradient (then ``step(scaled=True)``); 1.0 when it is not."""
        return 1.0

    def step(self, scaled: bool = False) -> None:
        """Update the parameters from the gradients; ``scaled``: the gradients were multiplied by
        ``gradient_scale()`` during back-propagation."""
        raise NotImplementedError

    def get_config(self) -> dict:
        return {"lr": self.base_lr, "weight_decay": self.weight_decay}


class SGD(Optimizer):
    """Stochastic gradient descent, with optional momentum (PyTorch's form):
    ``v = mu v + g; p -= lr v``, or with Nesterov ``p -= lr (g + mu v)``."""

    def __init__(self, lr: float = 0.01, momentum: float = 0.0, nesterov: bool = False, weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        if not 0 <= momentum < 1:
            raise ModelError(f"SGD: momentum must be in [0, 1). Received: momentum={momentum!r}")
        if nesterov and not momentum:
            raise ModelError("SGD: nesterov needs a momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def bind(self, params, grads):
        super().bind(params, grads)
        self.velocity = [np.zeros_like(p) for p in params] if self.momentum else []
        return self

    def gradient_scale(self) -> float:
        # With momentum the velocity mixes steps taken at different rates: not a single factor.
        return 1.0 if self.momentum else self.lr

    def step(self, scaled: bool = False):
        if scaled and self.momentum:
            raise ModelError("SGD with momentum cannot take pre-scaled gradients")
        lr, mu = np.float32(self.lr), np.float32(self.momentum)

        def plain(p, g, tmp):  # p -= lr g + lr wd p
            if not scaled:
                np.multiply(g, lr, out=g)  # the gradient buffer is rewritten by the next backward
            p -= self._decayed(p, g, tmp, self.lr)

        def with_momentum(p, g, tmp, v):
            g = self._decayed(p, g, tmp)
            v *= mu
            v += g
            if self.nesterov:
                np.multiply(v, mu, out=tmp)
                tmp += g
                direction = tmp
            else:
                direction = v
            np.multiply(direction, lr, out=tmp)
            p -= tmp

        if mu:
            for arrays in zip(self.params, self.grads, self._tmp, self.velocity):
                elementwise(with_momentum, *arrays, passes=8)
        else:
            for arrays in zip(self.params, self.grads, self._tmp):
                elementwise(plain, *arrays, passes=3)

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction:
    ``m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr m^ / (sqrt(v^) + eps)``."""

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
                 weight_decay: float = 0.0):
        super().__init__(lr, weight_decay)
        for name, b in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= b < 1:
                raise ModelError(f"Adam: {name} must be in [0, 1). Received: {name}={b!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.t = 0

    def bind(self, params, grads):
        super().bind(params, grads)
        self.m = [np.zeros_like(p) for p in params]
        self.v = [np.zeros_like(p) for p in params]
        self.t = 0
        return self

    def step(self, scaled: bool = False):
        self.t += 1
        b1, b2 = np.float32(self.beta1), np.float32(self.beta2)
        bc1, bc2 = 1 - self.beta1**self.t, 1 - self.beta2**self.t
        # lr m^ / (sqrt(v^) + eps) = [lr sqrt(bc2) / bc1] m / (sqrt(v) + eps sqrt(bc2)): one scale,
        # one shift, no separate bias-corrected copies of m and v.
        step_size = np.float32(self.lr * math.sqrt(bc2) / bc1)
        eps = np.float32(self.eps * math.sqrt(bc2))

        def update(p, g, m, v, tmp):
            g = self._decayed(p, g, tmp)
            m -= g  # m = b1 (m - g) + g = b1 m + (1 - b1) g, in place
            m *= b1
            m += g
            np.multiply(g, g, out=tmp)
            v -= tmp
            v *= b2
            v += tmp
            np.sqrt(v, out=tmp)
            tmp += eps
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            p -= tmp

        for arrays in zip(self.params, self.grads, self.m, self.v, self._tmp):
            elementwise(update, *arrays, passes=14)

    def get_config(self):
        return {**super().get_config(), "beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}


OPTIMIZERS = {"sgd": SGD, "adam": Adam}


def get_optimizer(spec) -> Optimizer:
    """An optimizer from its name, a ``{"name": ..., **config}`` dict, or an instance."""
    return from_spec(OPTIMIZERS, spec, "optimizer")
