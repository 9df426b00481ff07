"""Convolution layers: gradient checks, a direct-loop reference, shapes and model round trips."""

import numpy as np
import pytest

from digitlab.errors import ModelError
from digitlab.nn import (
    BatchNorm,
    Conv2D,
    Dense,
    Flatten,
    GlobalAveragePooling2D,
    MaxPool2D,
    ReLU,
    Rescaling,
    Reshape,
    Sequential,
    Softmax,
)
from digitlab.nn.kernels import channel_op
from gradcheck import check_layer
from conftest import pattern_digits


def direct_conv(x, w, b, stride, pad):
    """The definition, one output value at a time: y[n,i,j,f] = sum_{a,b,c} x[n, s*i+a, s*j+b, c] w[a,b,c,f] + b[f]."""
    (top, bottom), (left, right) = pad
    x = np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    k, _, _, f = w.shape
    n, h, wd, _ = x.shape
    oh, ow = (h - k) // stride + 1, (wd - k) // stride + 1
    y = np.zeros((n, oh, ow, f))
    for i in range(oh):
        for j in range(ow):
            patch = x[:, i * stride : i * stride + k, j * stride : j * stride + k, :]
            y[:, i, j, :] = np.tensordot(patch, w, axes=([1, 2, 3], [0, 1, 2])) + b
    return y


@pytest.mark.parametrize("k, stride, padding, shape", [
    (3, 1, "same", (7, 7, 2)), (3, 2, "same", (7, 8, 3)), (5, 1, "valid", (8, 8, 1)),
    (3, 2, "valid", (9, 7, 2)), (1, 1, "same", (4, 4, 3)), (4, 2, "same", (8, 8, 2)),
    (5, 2, "same", (9, 8, 1)), (3, 1, "same", (6, 7, 1)),  # one channel: tap-major patches
])
def test_conv_matches_direct_loop(k, stride, padding, shape):
    rng = np.random.default_rng(0)
    layer = Conv2D(4, k, stride, padding)
    layer.build(shape, rng)
    layer.params[1][...] = rng.standard_normal(4)
    x = rng.standard_normal((2, *shape)).astype(np.float32)
    pad = ((layer.shape.top, layer.shape.bottom), (layer.shape.left, layer.shape.right))
    expected = direct_conv(x.astype(np.float64), layer.params[0].astype(np.float64), layer.params[1], stride, pad)
    y = layer.forward(x)
    assert y.shape == (2, *layer.output_shape) and y.dtype == np.float32
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)
    if padding == "same":
        assert layer.output_shape[:2] == (-(-shape[0] // stride), -(-shape[1] // stride))


@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("k, stride, padding", [(3, 1, "same"), (3, 2, "same"), (2, 2, "valid"), (3, 1, "valid"),
                                                (4, 2, "same"), (5, 2, "same"), (5, 3, "same")])
def test_conv_gradients(k, stride, padding, channels):
    check_layer(Conv2D(3, k, stride, padding), (6, 5, channels), batch=2)


def test_maxpool_gradients_and_values():
    x = np.random.default_rng(1).standard_normal((2, 5, 6, 3))  # 5 rows: the last is dropped
    out = check_layer(MaxPool2D(2), (5, 6, 3), x=x)
    assert out.shape == (2, 2, 3, 3)
    np.testing.assert_array_equal(out[0, 1, 2], x[0, 2:4, 4:6].max(axis=(0, 1)))


def test_global_average_pooling():
    out = check_layer(GlobalAveragePooling2D(), (3, 4, 2))
    assert out.shape == (3, 2)


@pytest.mark.parametrize("shape", [(5,), (4, 3, 2)])
def test_batchnorm_training_gradients_and_statistics(shape):
    layer = BatchNorm(momentum=0.5)
    x = np.random.default_rng(2).standard_normal((6, *shape)) * 3 + 1
    out = check_layer(layer, shape, x=x, training=True, rtol=1e-4)
    axes = tuple(range(out.ndim - 1))
    np.testing.assert_allclose(out.mean(axis=axes), 0, atol=1e-7)
    np.testing.assert_allclose(out.var(axis=axes), 1, rtol=1e-3)


def test_batchnorm_statistics_keep_float32_precision_far_from_zero():
    """The batch statistics must not lose the variance when the mean dwarfs it (as a one-pass
    sum-of-squares formula would in float32)."""
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((3000, 4)) * [1, 0.01, 5, 1] + [1000, 50, -300, 0]).astype(np.float32)
    exact = (x - x.astype(np.float64).mean(0)) / np.sqrt(x.astype(np.float64).var(0) + BatchNorm().eps)
    layer = BatchNorm(momentum=0.0)
    layer.build((4,), np.random.default_rng(0))
    np.testing.assert_allclose(layer.forward(x, training=True), exact, atol=2e-3)
    np.testing.assert_allclose(layer.state[1], x.astype(np.float64).var(0, ddof=1), rtol=1e-3)


def test_batchnorm_inference_gradients_and_running_stats():
    layer = BatchNorm(momentum=0.0)
    layer.build((3,), np.random.default_rng(0))
    x = np.random.default_rng(3).standard_normal((50, 3)).astype(np.float32) * 2 + 5
    layer.forward(x, training=True)
    np.testing.assert_allclose(layer.state[0], x.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(layer.state[1], x.var(axis=0, ddof=1), rtol=1e-4)
    y = layer.forward(x, training=False)
    np.testing.assert_allclose(y.mean(axis=0), 0, atol=1e-4)
    check_layer(BatchNorm(), (4,), training=False)


def test_misuse():
    with pytest.raises(ModelError, match="add Reshape"):
        Conv2D(4).build((28, 28), np.random.default_rng(0))
    with pytest.raises(ModelError, match="padding must be 'same' or 'valid'"):
        Conv2D(4, padding="full")
    with pytest.raises(ModelError, match="does not fit"):
        Conv2D(2, 5, padding="valid").build((3, 3, 1), np.random.default_rng(0))


def small_cnn(seed=0):
    return Sequential([Rescaling(1 / 255), Reshape((8, 8, 1)), Conv2D(4, 3), BatchNorm(), MaxPool2D(2), ReLU(),
                       Conv2D(8, 3, stride=2), ReLU(), Flatten(), Dense(10), Softmax()], input_shape=(8, 8), seed=seed
                      ).compile({"name": "adam", "lr": 0.01})


def test_small_cnn_learns_and_round_trips(tmp_path):
    x, y = pattern_digits(300)
    xt, yt = pattern_digits(100, seed=5)
    model = small_cnn()
    model.fit(x, y, epochs=4, batch_size=32)
    assert model.evaluate(xt, yt)["accuracy"] > 0.9
    from digitlab import load_model, save_model

    loaded = load_model(save_model(model, tmp_path / "cnn.npz"))
    np.testing.assert_array_equal(loaded.predict_proba(xt), model.predict_proba(xt))
    np.testing.assert_array_equal(loaded.layers[3].state[0], model.layers[3].state[0])


def test_prediction_batches_bound_work_memory_and_do_not_change_answers(monkeypatch):
    import digitlab.nn.model as model_module

    wide = Sequential([Rescaling(1 / 255), Reshape((28, 28, 1)), Conv2D(64, 3), ReLU(), Flatten(), Dense(10), Softmax()],
                      input_shape=(28, 28))
    dense = Sequential([Rescaling(1 / 255), Flatten(), Dense(10), Softmax()], input_shape=(28, 28))
    assert dense.inference_batch() == 2048
    # 28 x 28 outputs x 9 taps x 1 channel = 7,056 floats (28 KB) a 28x28 image: 256 MB holds 9,510
    assert wide.inference_batch() == 2048
    monkeypatch.setattr(model_module, "INFERENCE_BYTES", 28224 * 100)
    assert wide.inference_batch() == 100
    x = np.random.default_rng(0).integers(0, 256, (250, 28, 28), dtype=np.uint8)
    np.testing.assert_allclose(wide.predict_proba(x), wide.predict_proba(x, batch_size=250), rtol=1e-5, atol=1e-6)


def test_a_convolution_keeps_one_set_of_work_arrays_whatever_the_batch_sizes():
    conv = Conv2D(4, 3)
    conv.build((8, 8, 2), np.random.default_rng(0))
    sizes = []
    for n in (1, 5, 3, 7):
        conv.forward(np.ones((n, 8, 8, 2), np.float32))
        conv.backward(np.ones((n, 8, 8, 4), np.float32))
        sizes.append(conv.workspace.nbytes())
    # The work memory follows the batch in hand (7 is the largest and last), not all batches seen.
    assert sizes[3] == max(sizes) and sizes[1] > sizes[2]


@pytest.mark.parametrize("shape", [(600, 32), (3, 17, 5, 32), (257, 64), (5, 3), (2, 9000)])
@pytest.mark.parametrize("op", [np.add, np.subtract, np.multiply, np.maximum])
def test_channel_op_equals_broadcasting(shape, op):
    # Wide rows, a remainder that does not fill one, a vector longer than a wide row.
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32)
    vector = rng.standard_normal(shape[-1]).astype(np.float32)
    out = np.empty_like(a)
    assert channel_op(op, a, vector, out) is out
    np.testing.assert_array_equal(out, op(a, vector))
    strided = a[::2]  # not contiguous: broadcast the usual way, still into `out`
    out = np.empty_like(strided)
    np.testing.assert_array_equal(channel_op(op, strided, vector, out), op(strided, vector))
