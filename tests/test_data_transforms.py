import numpy as np
import pytest

from digitlab.data import DataError, Dataset, flatten, one_hot, scale, scale_tutorial, train_val_split
from conftest import tiny_digits


def test_scale_and_flatten():
    images = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    x = scale(images)
    assert x.dtype == np.float32 and x.max() == 1.0 and x.min() == 0.0
    assert flatten(x).shape == (1, 4)
    t = scale_tutorial(images)
    assert t.dtype == np.float32
    np.testing.assert_allclose([t.min(), t.max()], [0.01, 1.0], rtol=1e-6)


def test_one_hot():
    y = one_hot(np.array([0, 3, 9]))
    assert y.dtype == np.float32 and y.shape == (3, 10)
    assert y.argmax(1).tolist() == [0, 3, 9] and y.sum() == 3
    with pytest.raises(DataError, match="0..9"):
        one_hot(np.array([10]))


def test_split_is_seeded_and_disjoint():
    images, labels = tiny_digits(50)
    ds = Dataset(images, labels)
    a_train, a_val = train_val_split(ds, 0.2, seed=3)
    b_train, b_val = train_val_split(ds, 0.2, seed=3)
    c_train, c_val = train_val_split(ds, 0.2, seed=4)
    assert len(a_train) == 40 and len(a_val) == 10
    np.testing.assert_array_equal(a_val.images, b_val.images)
    assert not np.array_equal(a_val.images, c_val.images)
    rows = {im.tobytes() for im in a_train.images} | {im.tobytes() for im in a_val.images}
    assert len(rows) == 50
    assert len(train_val_split(ds, 7)[1]) == 7
    with pytest.raises(DataError):
        train_val_split(ds, 1.0)


def test_augment_keeps_shape_and_dtype_and_is_seeded():
    from digitlab.data import Augment

    images, _ = tiny_digits(16)
    augment = Augment(shift=2, rotate=10, scale=0.1)
    a = augment(images, np.random.default_rng(5))
    b = augment(images, np.random.default_rng(5))
    c = augment(images, np.random.default_rng(6))
    assert a.shape == images.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, images)
    np.testing.assert_array_equal(Augment(0, 0, 0)(images, np.random.default_rng(0)), images)


def test_augment_moves_a_dot_by_at_most_the_shift():
    from digitlab.data import Augment

    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 14, 14] = 255
    for seed in range(10):
        out = Augment(shift=3, rotate=0, scale=0)(image, np.random.default_rng(seed))[0].astype(float)
        ys, xs = np.mgrid[0:28, 0:28]
        cy, cx = (out * ys).sum() / out.sum(), (out * xs).sum() / out.sum()
        assert abs(cy - 14) <= 3.01 and abs(cx - 14) <= 3.01


def test_warp_matches_a_direct_bilinear_loop():
    """`warp` against the maths written out pixel by pixel: each output pixel samples the input at
    R(-angle) (p - centre - shift) / zoom + centre, bilinearly, reading zero outside the image.
    Non-square images and large moves check the row/column arithmetic and the borders."""
    from digitlab.data.transforms import warp

    rng = np.random.default_rng(0)
    n, h, w = 4, 6, 9
    images = rng.integers(0, 256, (n, h, w)).astype(np.float32)
    angle, zoom = rng.uniform(-1, 1, n), rng.uniform(0.6, 1.4, n)
    shift = rng.uniform(-4, 4, (n, 2))

    def pixel(k, y, x):
        return images[k, y, x] if 0 <= y < h and 0 <= x < w else 0.0

    got = warp(images, angle, zoom, shift)
    want = np.zeros((n, h, w))
    cy, cx = (h - 1) / 2, (w - 1) / 2
    for k in range(n):
        c, s = np.cos(angle[k]) / zoom[k], np.sin(angle[k]) / zoom[k]
        for y in range(h):
            for x in range(w):
                dy, dx = y - cy - shift[k, 0], x - cx - shift[k, 1]
                sy, sx = c * dy + s * dx + cy, -s * dy + c * dx + cx
                y0, x0 = int(np.floor(sy)), int(np.floor(sx))
                fy, fx = sy - y0, sx - x0
                want[k, y, x] = ((1 - fy) * (1 - fx) * pixel(k, y0, x0) + (1 - fy) * fx * pixel(k, y0, x0 + 1)
                                 + fy * (1 - fx) * pixel(k, y0 + 1, x0) + fy * fx * pixel(k, y0 + 1, x0 + 1))
    assert got.dtype == np.float32 and (got == 0).any() and (got > 0).any()
    np.testing.assert_allclose(got, want, atol=0.05)


def test_training_with_augmentation_keeps_labels():
    """A model trained on augmented batches still learns the classes: the labels travel with
    their (distorted) images."""
    from conftest import pattern_digits
    from digitlab.data import Augment
    from digitlab.nn import Adam, Dense, Flatten, ReLU, Rescaling, Sequential, Softmax

    x, y = pattern_digits(400, size=12, noise=20)
    xt, yt = pattern_digits(200, size=12, seed=3, noise=20)
    model = Sequential([Rescaling(1 / 255), Flatten(), Dense(64), ReLU(), Dense(10), Softmax()], input_shape=(12, 12))
    model.compile(Adam(0.01)).fit(x, y, epochs=6, batch_size=32, augment=Augment(shift=0.5, rotate=3, scale=0.02))
    assert model.evaluate(xt, yt)["accuracy"] > 0.8
