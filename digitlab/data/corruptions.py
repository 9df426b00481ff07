"""Corruptions of digit images in the manner of MNIST-C: eight kinds at five severities, generated
on the fly from a seed. `digitlab.evaluate.robustness` measures a model under each of them."""

from __future__ import annotations

import math

import numpy as np

from ..errors import DataError, lookup
from .dataset import Dataset
from .transforms import warp

# Severity 1..5 -> the strength of each corruption (MNIST-C style: one dial per corruption).
# Pixel and distance units are those of a 28 x 28 image; shift scales with the image size.
SEVERITIES = range(1, 6)
_NOISE_SIGMA = (20.0, 40.0, 60.0, 80.0, 100.0)  # gaussian noise, grey levels (0..255)
_BLUR_SIGMA = (0.5, 0.75, 1.0, 1.25, 1.5)  # gaussian blur, pixels
_ROTATE_DEG = (10.0, 20.0, 30.0, 40.0, 50.0)  # rotation, degrees, random sign per image
_SHIFT_PX = (2.0, 3.0, 4.0, 5.0, 6.0)  # translation, pixels, random direction per image
_SCALE = (0.15, 0.3, 0.45, 0.6, 0.75)  # zoom by (1 + s) or 1 / (1 + s), random per image
_INVERT = (0.6, 0.7, 0.8, 0.9, 1.0)  # weight of the inverted image in the blend
# thicken / thin: grey dilation / erosion by 3 x 3 elements, step after step; a step of weight t
# moves each pixel a fraction t of the way to its dilated (eroded) value. Erosion is the harsher
# (MNIST strokes are 2-3 pixels wide), so thin has gentler steps.
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
_SQUARE = np.ones((3, 3), bool)
_THICKEN = (((_CROSS, 0.5),), ((_CROSS, 1.0),), ((_SQUARE, 1.0),), ((_SQUARE, 1.0), (_CROSS, 0.5)),
            ((_SQUARE, 1.0), (_CROSS, 1.0)))
_THIN = (((_CROSS, 0.2),), ((_CROSS, 0.4),), ((_CROSS, 0.6),), ((_CROSS, 0.8),), ((_CROSS, 1.0),))


def _noise(images, severity, rng):
    return images + rng.normal(0.0, _NOISE_SIGMA[severity - 1], images.shape).astype(np.float32)


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(images, severity, rng):
    """Separable gaussian blur, zero (background) beyond the border."""
    k = _gaussian_kernel(_BLUR_SIGMA[severity - 1]).astype(np.float32)
    r = len(k) // 2
    n, h, w = images.shape
    padded = np.pad(images.astype(np.float32), ((0, 0), (r, r), (r, r)))
    rows = sum(wt * padded[:, i : i + h, :] for i, wt in enumerate(k))  # N x H x (W + 2r)
    return sum(wt * rows[:, :, i : i + w] for i, wt in enumerate(k))


def _rotate(images, severity, rng):
    n = len(images)
    angle = np.deg2rad(_ROTATE_DEG[severity - 1]) * rng.choice([-1.0, 1.0], n)
    return warp(images, angle, np.ones(n), np.zeros((n, 2)))


def _shift(images, severity, rng):
    n, h, _ = images.shape
    direction = rng.uniform(0, 2 * np.pi, n)
    distance = _SHIFT_PX[severity - 1] * h / 28
    shift = distance * np.stack([np.sin(direction), np.cos(direction)], 1)
    return warp(images, np.zeros(n), np.ones(n), shift)


def _scale(images, severity, rng):
    n = len(images)
    zoom = (1 + _SCALE[severity - 1]) ** rng.choice([-1.0, 1.0], n)
    return warp(images, np.zeros(n), zoom, np.zeros((n, 2)))


def _morph(images, steps, reduce):
    """Grey dilation (``np.maximum``) or erosion (``np.minimum``), step after step; the border
    reads as background."""
    out = images.astype(np.float32)
    n, h, w = images.shape
    for element, weight in steps:
        padded = np.pad(out, ((0, 0), (1, 1), (1, 1)))
        morphed = reduce.reduce([padded[:, dy : dy + h, dx : dx + w] for dy, dx in zip(*np.nonzero(element))])
        out = out + np.float32(weight) * (morphed - out)
    return out


def _thicken(images, severity, rng):
    return _morph(images, _THICKEN[severity - 1], np.maximum)


def _thin(images, severity, rng):
    return _morph(images, _THIN[severity - 1], np.minimum)


def _invert(images, severity, rng):
    a = np.float32(_INVERT[severity - 1])
    x = images.astype(np.float32)
    return (1 - a) * x + a * (255 - x)


CORRUPTIONS = {
    "noise": _noise, "blur": _blur, "rotate": _rotate, "shift": _shift,
    "scale": _scale, "thicken": _thicken, "thin": _thin, "invert": _invert,
}
KINDS = tuple(CORRUPTIONS)


def check_corruption(kind: str, severity) -> None:
    lookup(CORRUPTIONS, kind, "corruption", DataError)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise DataError(f"severity must be an integer 1..5; got {severity!r}")


def corrupt(images: np.ndarray, kind: str, severity: int = 3, seed: int = 0) -> np.ndarray:
    """A corrupted copy of uint8 images N x H x W (same shape, uint8, 0..255).

    kinds (severity 1..5 sets the strength; the shift is in 28 x 28 pixels and scales with the size,
    blur and thicken/thin work in pixels of the image itself):
        noise    add gaussian noise, sigma 20, 40, 60, 80, 100 grey levels, clipped to 0..255;
        blur     gaussian blur, sigma 0.5 .. 1.5 pixels (separable kernel);
        rotate   rotate by 10, 20, 30, 40, 50 degrees, clockwise or anticlockwise at random;
        shift    move by 2 .. 6 pixels in a random direction;
        scale    zoom by 1.15 .. 1.75, in or out at random, about the centre;
        thicken  grey dilation: half a 3x3 cross, a cross, a square, square + half cross,
                 square + cross;
        thin     grey erosion by a 3x3 cross at weight 0.2 .. 1.0 (stroke edges fade);
        invert   blend towards 255 - x with weight 0.6 .. 1.0 (severity 5 is exactly 255 - x).

    Randomness (noise, directions) comes from ``np.random.default_rng(seed)``: the same seed gives
    the same images.
    """
    check_corruption(kind, severity)
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"corrupt takes uint8 images N x H x W; got {images.dtype} {images.shape}")
    out = CORRUPTIONS[kind](images, int(severity), np.random.default_rng(seed))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def corrupt_dataset(dataset: Dataset, kind: str, severity: int = 3, seed: int = 0) -> Dataset:
    """``dataset`` with `corrupt` applied to its images, named e.g. "mnist-test+blur3"."""
    return Dataset(corrupt(dataset.images, kind, severity, seed), dataset.labels,
                   f"{dataset.name}+{kind}{severity}", dataset.source)
