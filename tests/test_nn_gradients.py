"""Every layer, activation and loss: backward agrees with central differences (float64)."""

import numpy as np
import pytest

from digitlab.nn import (
    CrossEntropy,
    Dense,
    Dropout,
    Flatten,
    LeakyReLU,
    MeanSquaredError,
    ReLU,
    Rescaling,
    Reshape,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from gradcheck import check_layer, numerical_grad, to_float64


@pytest.mark.parametrize("use_bias", [True, False])
def test_dense(use_bias):
    check_layer(Dense(4, use_bias=use_bias), (5,))


def test_dense_batch_of_one():
    check_layer(Dense(3), (6,), batch=1)


@pytest.mark.parametrize("layer", [ReLU(), LeakyReLU(0.1), Sigmoid(), Tanh(), Softmax()], ids=repr)
def test_activations(layer):
    x = np.random.default_rng(3).standard_normal((4, 6))
    x[np.abs(x) < 1e-3] = 0.5  # keep clear of ReLU's kink, where the derivative is undefined
    check_layer(layer, (6,), x=x)


def test_dropout_training_and_inference():
    def reseed(layer):
        layer.rng = np.random.default_rng(42)

    out = check_layer(Dropout(0.4), (10,), batch=4, training=True, before_forward=reseed)
    assert (out == 0).any()
    layer = Dropout(0.4)
    layer.build((10,), np.random.default_rng(0))
    x = np.ones((2, 10))
    np.testing.assert_array_equal(layer.forward(x, training=False), x)


def test_dropout_keeps_the_expected_value():
    layer = Dropout(0.3)
    layer.build((1000,), np.random.default_rng(0))
    y = layer.forward(np.ones((200, 1000), np.float32), training=True)
    assert abs(y.mean() - 1) < 0.01 and abs((y == 0).mean() - 0.3) < 0.01


@pytest.mark.parametrize("layer, shape", [(Flatten(), (2, 3)), (Reshape((3, 2, 1)), (6,)), (Rescaling(0.5, 0.1), (4,))], ids=repr)
def test_shape_and_scaling_layers(layer, shape):
    check_layer(layer, shape)


def test_rescaling_takes_uint8_to_float32():
    y = Rescaling(0.99 / 255, 0.01).forward(np.array([[0, 255]], np.uint8))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[0.01, 1.0]], rtol=1e-6)


def _loss_check(loss, logits_to_output):
    rng = np.random.default_rng(1)
    z = rng.standard_normal((5, 10))
    y = rng.integers(0, 10, 5)
    f = lambda: loss.value(logits_to_output(z), y)
    value, grad = loss.value_and_grad(logits_to_output(z), y)
    assert value == pytest.approx(f())
    np.testing.assert_allclose(grad, numerical_grad(f, z), rtol=1e-5, atol=1e-8)


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_cross_entropy_gradient_is_with_respect_to_logits(smoothing):
    _loss_check(CrossEntropy(smoothing), _softmax)


def test_mean_squared_error():
    _loss_check(MeanSquaredError(0.01, 0.99), lambda z: z)


def test_cross_entropy_value_by_hand():
    p = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    assert CrossEntropy().value(p, np.array([0, 2])) == pytest.approx(-(np.log(0.7) + np.log(0.8)) / 2)
    assert np.isfinite(CrossEntropy().value(np.array([[1.0, 0.0]]), np.array([1])))


def test_whole_model_backward_including_fused_softmax():
    model = Sequential([Dense(6), Tanh(), Dense(5), ReLU(), Dense(4), Softmax()], input_shape=(3,), seed=2)
    model.compile("sgd", "cross_entropy")
    for layer in model.layers:
        to_float64(layer)
    for layer in model.layers:
        layer.need_input_grad = True
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((4, 3)), np.array([0, 1, 3, 2])
    f = lambda: model.loss.value(model.forward(x), y)
    _, grad = model.loss.value_and_grad(model.forward(x), y)
    model.backward(grad, skip_last=True)
    for layer in model.layers:
        for p, g in zip(layer.params, layer.grads):
            analytic = g.copy()
            np.testing.assert_allclose(analytic, numerical_grad(f, p), rtol=1e-5, atol=1e-8)
