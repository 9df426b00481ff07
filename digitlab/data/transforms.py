"""Array transforms between a `Dataset` and what a network eats."""

from __future__ import annotations

import numpy as np

from ..errors import DataError
from .dataset import NUM_CLASSES, Dataset


def flatten(images: np.ndarray) -> np.ndarray:
    """N x H x W -> N x (H*W), no copy when the input is contiguous."""
    return images.reshape(len(images), -1)


def scale(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 0..1."""
    return images.astype(np.float32) * np.float32(1 / 255)


def scale_tutorial(images: np.ndarray) -> np.ndarray:
    """uint8 0..255 -> float32 0.01..1.00, the scaling of the NumPy sigmoid tutorial (no zero inputs)."""
    return images.astype(np.float32) * np.float32(0.99 / 255) + np.float32(0.01)


def one_hot(labels: np.ndarray, num_classes: int = NUM_CLASSES, dtype=np.float32) -> np.ndarray:
    """Integer labels (N,) -> N x num_classes with a 1 in each label's column."""
    labels = np.asarray(labels)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels must be in 0..{num_classes - 1}; got {labels.min()}..{labels.max()}")
    out = np.zeros((len(labels), num_classes), dtype=dtype)
    out[np.arange(len(labels)), labels] = 1
    return out


def train_val_split(
    dataset: Dataset, validation: float | int = 0.1, seed: int = 0
) -> tuple[Dataset, Dataset]:
    """Shuffle with ``seed`` and hold out ``validation`` (a fraction in (0, 1) or a count)."""
    n = len(dataset)
    n_val = int(round(validation * n)) if isinstance(validation, float) else int(validation)
    if not 0 < n_val < n:
        raise DataError(f"validation must leave at least one image on each side; got {validation} of {n}")
    order = np.random.default_rng(seed).permutation(n)
    return dataset[np.sort(order[n_val:])], dataset[np.sort(order[:n_val])]


def warp(images: np.ndarray, angle: np.ndarray, zoom: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """Rotate each image by ``angle`` (radians, N), zoom it by ``zoom`` (N) about its centre and move
    it by ``shift`` (N x 2 pixels: dy, dx), with bilinear interpolation and zero (background)
    outside. images: N x H x W (any numeric dtype); returns float32 N x H x W."""
    n, h, w = images.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    grid = np.stack([ys.ravel() - (h - 1) / 2, xs.ravel() - (w - 1) / 2])  # 2 x HW
    # Inverse map: output pixel p samples the input at R(-angle) (p - shift) / zoom.
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    inverse = np.stack([np.stack([cos, sin], 1), np.stack([-sin, cos], 1)], 1).astype(np.float32)  # N x 2 x 2
    src = inverse @ (grid[None] - np.asarray(shift, np.float32)[:, :, None])  # N x 2 x HW
    y, x = src[:, 0] + np.float32((h - 1) / 2), src[:, 1] + np.float32((w - 1) / 2)
    y0, x0 = np.floor(y), np.floor(x)
    wy, wx = y - y0, x - x0
    # Sample a copy with a ring of zeros, so taps just outside read background.
    padded = np.zeros((n, h + 2, w + 2), np.float32)
    padded[:, 1:-1, 1:-1] = images
    iy = np.clip(y0.astype(np.intp) + 1, 0, h)  # +1: the padding ring
    ix = np.clip(x0.astype(np.intp) + 1, 0, w)
    # Each output pixel's top-left tap as an index into the whole padded batch; the other three
    # taps are one column, one row, and one of each further on: four takes from the flat array,
    # several times faster than a take_along_axis per tap.
    row, size = w + 2, (h + 2) * (w + 2)
    top_left = iy * row + ix + np.arange(0, n * size, size)[:, None]
    flat = padded.ravel()
    vy, vx = 1 - wy, 1 - wx
    out = (flat.take(top_left) * vy * vx + flat.take(top_left + 1) * vy * wx
           + flat.take(top_left + row) * wy * vx + flat.take(top_left + row + 1) * wy * wx)
    out[(y0 < -1) | (y0 > h - 1) | (x0 < -1) | (x0 > w - 1)] = 0  # clipped taps read the edge: zero them
    return out.reshape(n, h, w)


class Augment:
    """Random affine distortions of a batch of images, for training: each image is rotated by up
    to ``rotate`` degrees, scaled by a factor in [1 - scale, 1 + scale] and shifted by up to
    ``shift`` pixels in x and y, about its centre (see `warp`). Labels are unchanged: small
    distortions keep a digit the same digit.

    Called as ``augment(images, rng)`` with uint8 images N x H x W; returns a new uint8 array of the
    same shape. All randomness comes from ``rng``, so a seeded generator gives reproducible batches.
    """

    def __init__(self, shift: float = 2.0, rotate: float = 10.0, scale: float = 0.1):
        if shift < 0 or rotate < 0 or not 0 <= scale < 1:
            raise DataError(f"Augment: needs shift >= 0, rotate >= 0, 0 <= scale < 1; got {shift}, {rotate}, {scale}")
        self.shift, self.rotate, self.scale = float(shift), float(rotate), float(scale)

    def get_config(self) -> dict:
        return {"shift": self.shift, "rotate": self.rotate, "scale": self.scale}

    def __repr__(self) -> str:
        return "Augment(" + ", ".join(f"{k}={v}" for k, v in self.get_config().items()) + ")"

    def __call__(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        n = len(images)
        angle = np.deg2rad(rng.uniform(-self.rotate, self.rotate, n))
        zoom = rng.uniform(1 - self.scale, 1 + self.scale, n)
        shift = rng.uniform(-self.shift, self.shift, (n, 2))
        return np.clip(np.rint(warp(images, angle, zoom, shift)), 0, 255).astype(np.uint8)
