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
