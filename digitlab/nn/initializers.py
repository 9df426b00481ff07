"""Weight initialisers: ``init(shape, fan_in, fan_out, rng) -> float32 array``, by name.

Every one draws from the generator it is given, so a model's seed fixes its starting weights.
"""

from __future__ import annotations

import numpy as np

from ..errors import lookup


def he_normal(shape, fan_in, fan_out, rng):
    """N(0, 2/fan_in): keeps the variance of ReLU activations constant (He et al., 2015)."""
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in))


def _uniform(limit, shape, rng):
    """U(-limit, limit) as float32: the uniform initialisers differ only in their limit."""
    return rng.uniform(-limit, limit, shape).astype(np.float32)


def he_uniform(shape, fan_in, fan_out, rng):
    return _uniform(np.sqrt(6.0 / fan_in), shape, rng)


def glorot_uniform(shape, fan_in, fan_out, rng):
    """U(-a, a), a = sqrt(6 / (fan_in + fan_out)): Keras' default (Glorot & Bengio, 2010)."""
    return _uniform(np.sqrt(6.0 / (fan_in + fan_out)), shape, rng)


def glorot_normal(shape, fan_in, fan_out, rng):
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(2.0 / (fan_in + fan_out)))


def lecun_normal(shape, fan_in, fan_out, rng):
    """N(0, 1/fan_in), the scale for tanh/SELU (LeCun et al., 1998)."""
    return rng.standard_normal(shape, dtype=np.float32) * np.float32(np.sqrt(1.0 / fan_in))


def lecun_uniform(shape, fan_in, fan_out, rng):
    return _uniform(np.sqrt(3.0 / fan_in), shape, rng)


def pytorch_default(shape, fan_in, fan_out, rng):
    """U(-a, a), a = 1/sqrt(fan_in): PyTorch's default for its Linear and Conv layers
    (``kaiming_uniform_`` with a = sqrt(5)), a third of `lecun_uniform`'s variance. Under Adam it
    makes the weights' steps larger relative to the weights themselves than `he_normal` does."""
    return _uniform(1.0 / np.sqrt(fan_in), shape, rng)


def normal_fan_in(shape, fan_in, fan_out, rng):
    """normal(0, fan_in^-0.5): the sigmoid tutorial's ``numpy.random.normal(0.0, pow(n, -0.5))``.
    The same distribution as `lecun_normal`, kept under the tutorial's own description."""
    return lecun_normal(shape, fan_in, fan_out, rng)


def uniform_fan_in(shape, fan_in, fan_out, rng):
    """U[0, 1) * sqrt(1/fan_in): the ReLU tutorial's ``np.random.rand(...) * np.sqrt(1. / n)``.
    All weights start positive, one reason that tutorial needs so many epochs."""
    return rng.random(shape, dtype=np.float32) * np.float32(np.sqrt(1.0 / fan_in))


def zeros(shape, fan_in, fan_out, rng):
    return np.zeros(shape, dtype=np.float32)


INITIALIZERS = {
    f.__name__: f
    for f in (he_normal, he_uniform, glorot_uniform, glorot_normal, lecun_normal, lecun_uniform,
              pytorch_default, normal_fan_in, uniform_fan_in, zeros)
}


def get_initializer(name: str):
    return lookup(INITIALIZERS, name, "initializer")
