"""Corruptions keep shape, dtype and range, are seeded, grow with their severity and go the way
their names say."""

import numpy as np
import pytest

from digitlab.data import KINDS, corrupt
from digitlab.errors import DigitlabError
from conftest import strokes


RANDOM_KINDS = {"noise", "rotate", "shift", "scale"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [28, 8])
def test_corruptions_keep_shape_dtype_range_and_are_seeded(kind, size):
    images = strokes(10, size)
    for severity in (1, 3, 5):
        out = corrupt(images, kind, severity, seed=7)
        assert out.shape == images.shape and out.dtype == np.uint8
        assert 0 <= out.min() and out.max() <= 255
        assert not np.array_equal(out, images), f"{kind} {severity} changed nothing"
        np.testing.assert_array_equal(out, corrupt(images, kind, severity, seed=7))
        other = corrupt(images, kind, severity, seed=8)
        assert np.array_equal(out, other) == (kind not in RANDOM_KINDS)
    np.testing.assert_array_equal(images, strokes(10, size))


@pytest.mark.parametrize("kind", KINDS)
def test_higher_severity_changes_more(kind):
    images = strokes(40)
    change = [np.abs(corrupt(images, kind, s, seed=1).astype(float) - images).mean() for s in range(1, 6)]
    assert all(b > a for a, b in zip(change, change[1:])), change


def test_corruptions_go_the_right_way():
    images = strokes(20)
    ink = images.astype(float).sum()
    thick, thin = corrupt(images, "thicken", 3).astype(float), corrupt(images, "thin", 3).astype(float)
    assert thick.sum() > 1.3 * ink and (thick >= images).all()
    assert thin.sum() < 0.9 * ink and (thin <= images).all()
    np.testing.assert_array_equal(corrupt(images, "invert", 5), 255 - images)
    assert corrupt(images, "invert", 1).mean() > 128 > images.mean()  # background turns light
    blurred = corrupt(images, "blur", 3)
    assert np.count_nonzero(blurred) > np.count_nonzero(images) and blurred.max() < images.max()
    assert abs(blurred.astype(float).sum() - ink) < 0.05 * ink  # blur moves ink, keeps it
    noisy = corrupt(images, "noise", 2).astype(float)
    assert noisy[images == 0].std() > 15  # the background is no longer clean

    def centre(x):
        ys, xs = np.mgrid[0:28, 0:28]
        m = x.astype(float).sum(axis=(1, 2))
        return np.stack([(x * ys).sum(axis=(1, 2)) / m, (x * xs).sum(axis=(1, 2)) / m], 1)

    moved = np.linalg.norm(centre(corrupt(images, "shift", 2)) - centre(images), axis=1)
    np.testing.assert_allclose(moved, 3.0, atol=0.3)  # severity 2: 3 pixels
    rotated = corrupt(images, "rotate", 3)
    assert abs(rotated.astype(float).sum() - ink) < 0.05 * ink  # rotation keeps the ink
    zoom_ink = corrupt(images, "scale", 4).astype(float).sum(axis=(1, 2)) / images.astype(float).sum(axis=(1, 2))
    assert ((zoom_ink > 1.3) | (zoom_ink < 0.8)).all()  # each image grew or shrank


def test_rotation_by_a_right_angle_is_exact():
    from digitlab.data.transforms import warp

    images = strokes(3, seed=2)
    out = warp(images, np.full(3, np.pi / 2), np.ones(3), np.zeros((3, 2)))
    np.testing.assert_allclose(out, np.rot90(images, k=1, axes=(1, 2)), atol=1e-3)


def test_corrupt_rejects_bad_arguments():
    images = strokes(2)
    with pytest.raises(DigitlabError, match="unknown corruption 'fog'.*noise"):
        corrupt(images, "fog")
    for severity in (0, 6, 2.5, True):
        with pytest.raises(DigitlabError, match="1..5"):
            corrupt(images, "blur", severity)
    with pytest.raises(DigitlabError, match="uint8"):
        corrupt(images.astype(np.float32), "blur")
