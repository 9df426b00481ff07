"""Central-difference gradient checks in float64, shared by the engine's tests."""

from __future__ import annotations

import numpy as np


def to_float64(layer) -> None:
    """Swap a built layer's parameters (and state) for float64 copies, so the check is exact enough."""
    layer.params = [p.astype(np.float64) for p in layer.params]
    layer.grads = [np.zeros_like(p) for p in layer.params]
    layer.state = [s.astype(np.float64) for s in layer.state]


def numerical_grad(f, x: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """d f / d x by central differences, element by element (x is changed in place and restored)."""
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f()
        flat[i] = old - h
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return grad


def check_layer(layer, input_shape, batch: int = 3, seed: int = 0, training: bool = False,
                before_forward=lambda layer: None, x: np.ndarray | None = None, rtol: float = 1e-5):
    """Compare a layer's backward (input and parameter gradients) with central differences of
    ``L = sum(forward(x) * R)`` for a random R. ``before_forward`` resets any randomness (dropout)."""
    rng = np.random.default_rng(seed)
    layer.build(tuple(input_shape), np.random.default_rng(seed + 1))
    to_float64(layer)
    if x is None:
        x = rng.standard_normal((batch, *input_shape))
    state0 = [s.copy() for s in layer.state]

    def loss():
        for s, s0 in zip(layer.state, state0):
            s[...] = s0  # a forward pass may update running statistics: start from the same ones
        before_forward(layer)
        return float(np.sum(layer.forward(x.copy(), training) * R))

    before_forward(layer)
    out = layer.forward(x.copy(), training)
    R = rng.standard_normal(out.shape)
    for s, s0 in zip(layer.state, state0):
        s[...] = s0
    before_forward(layer)
    layer.forward(x.copy(), training)
    grad_x = layer.backward(R.copy())
    scale = lambda a: max(1.0, float(np.abs(a).max()))
    if layer.need_input_grad:
        num_x = numerical_grad(loss, x)
        np.testing.assert_allclose(grad_x, num_x, rtol=rtol, atol=rtol * scale(num_x), err_msg="input gradient")
    for i, p in enumerate(layer.params):
        analytic = layer.grads[i].copy()
        num_p = numerical_grad(loss, p)
        np.testing.assert_allclose(analytic, num_p, rtol=rtol, atol=rtol * scale(num_p), err_msg=f"gradient of parameter {i}")
    return out
