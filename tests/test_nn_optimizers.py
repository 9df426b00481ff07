"""One optimizer step checked by hand; schedules at their landmarks."""

import math

import numpy as np
import pytest

from digitlab.errors import ModelError
from digitlab.nn import SGD, Adam
from digitlab.nn.schedules import Cosine, OneCycle, StepDecay, get_schedule


def _run(opt, grads_per_step, p0):
    p = np.array(p0, np.float32)
    g = np.zeros_like(p)
    opt.bind([p], [g])
    for step_grad in grads_per_step:
        g[...] = step_grad
        opt.step()
    return p


def test_sgd_step_by_hand():
    p = _run(SGD(lr=0.1), [[0.5, -1.0]], [1.0, 2.0])
    np.testing.assert_allclose(p, [0.95, 2.1], rtol=1e-6)


def test_sgd_weight_decay_by_hand():
    # g' = g + wd * p = [0.5 + 0.01, -1 + 0.02]
    p = _run(SGD(lr=0.1, weight_decay=0.01), [[0.5, -1.0]], [1.0, 2.0])
    np.testing.assert_allclose(p, [1 - 0.1 * 0.51, 2 - 0.1 * -0.98], rtol=1e-6)


def test_momentum_two_steps_by_hand():
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    p = _run(SGD(lr=0.1, momentum=0.9), [g1, g2], [0.0, 0.0])
    v1 = g1
    v2 = 0.9 * v1 + g2
    np.testing.assert_allclose(p, -0.1 * v1 - 0.1 * v2, rtol=1e-6)


def test_nesterov_two_steps_by_hand():
    g1, g2 = np.array([1.0, -2.0]), np.array([0.5, 0.5])
    p = _run(SGD(lr=0.1, momentum=0.9, nesterov=True), [g1, g2], [0.0, 0.0])
    v1 = g1
    v2 = 0.9 * v1 + g2
    np.testing.assert_allclose(p, -0.1 * (g1 + 0.9 * v1) - 0.1 * (g2 + 0.9 * v2), rtol=1e-6)


def test_sgd_does_not_change_the_velocity_when_scaling():
    opt = SGD(lr=0.5, momentum=0.5)
    _run(opt, [[1.0]], [0.0])
    np.testing.assert_allclose(opt.velocity[0], [1.0])


def test_adam_two_steps_by_hand():
    lr, b1, b2, eps = 0.01, 0.9, 0.999, 1e-8
    g1, g2 = np.array([0.3, -2.0]), np.array([-0.1, 1.0])
    p = _run(Adam(lr, b1, b2, eps), [g1, g2], [1.0, 1.0])
    ref, m, v = np.array([1.0, 1.0]), 0.0, 0.0
    for t, g in enumerate([g1, g2], start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        ref = ref - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(p, ref, rtol=1e-5)


def test_adam_first_step_is_lr_times_sign():
    p = _run(Adam(0.001), [[3.0, -0.2, 0.0]], [0.0, 0.0, 0.0])
    np.testing.assert_allclose(p, [-0.001, 0.001, 0.0], atol=1e-7)


@pytest.mark.parametrize("bad", [dict(lr=0), dict(lr=-1), dict(lr=float("nan")), dict(momentum=1.0)])
def test_sgd_rejects_bad_settings(bad):
    with pytest.raises(ModelError, match="SGD"):
        SGD(**bad)


def test_schedules():
    assert StepDecay(every=2, factor=0.5)(1.0, 4.5, 10) == 0.25
    assert Cosine()(1.0, 0, 10) == 1.0 and Cosine()(1.0, 10, 10) == pytest.approx(0.0)
    assert Cosine()(1.0, 5, 10) == pytest.approx(0.5)
    one = OneCycle(warmup=0.25, div=25, final_div=1e4)
    assert one(1.0, 0, 8) == pytest.approx(1 / 25)
    assert one(1.0, 2, 8) == pytest.approx(1.0)
    assert one(1.0, 8, 8) == pytest.approx(1 / 25e4)
    assert math.isclose(get_schedule(None)(0.3, 5, 10), 0.3)
    with pytest.raises(ModelError, match="unknown schedule 'zigzag'"):
        get_schedule("zigzag")


def test_sgd_with_scaled_gradients_takes_the_same_step():
    """The model scales the loss gradient by lr for plain SGD (backprop is linear): same weights."""
    from digitlab.nn import Dense, Sequential, Sigmoid

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 6)).astype(np.float32), np.array([0, 1, 2, 1])
    for wd in (0.0, 0.1):
        a = Sequential([Dense(5), Sigmoid(), Dense(3), Sigmoid()], input_shape=(6,), seed=1).compile(SGD(0.5, weight_decay=wd), "mse")
        b = Sequential([Dense(5), Sigmoid(), Dense(3), Sigmoid()], input_shape=(6,), seed=1).compile(SGD(0.5, weight_decay=wd), "mse")
        a.train_step(x, y)  # scaled path
        _, grad = b.loss.value_and_grad(b.forward(x, training=True), y)
        b.backward(grad)
        b.optimizer.step()  # unscaled path: p -= lr (g + wd p)
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wa, wb, rtol=1e-6, atol=1e-7)
    with pytest.raises(ModelError, match="pre-scaled"):
        SGD(0.1, momentum=0.9).step(scaled=True)
