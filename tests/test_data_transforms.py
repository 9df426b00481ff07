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
