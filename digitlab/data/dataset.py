"""`Dataset`: images and labels, the one shape of data every part of digitlab passes around."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError

NUM_CLASSES = 10


@dataclass(frozen=True)
class Dataset:
    """Greyscale digit images with their labels.

    Attributes:
        images: uint8 array, N x H x W, 0 = background, 255 = ink (MNIST's convention).
        labels: int64 array of N class indices in 0..9.
        name: a short name for tables ("mnist-train").
        source: where the data came from (a path or URL), for error messages and reports.
    """

    images: np.ndarray
    labels: np.ndarray
    name: str = "dataset"
    source: str = ""

    def __post_init__(self) -> None:
        images, labels = np.asarray(self.images), np.asarray(self.labels)
        where = self.source or self.name
        if images.ndim != 3:
            raise DataError(f"{where}: images must be N x H x W, got shape {images.shape}")
        if images.dtype != np.uint8:
            raise DataError(f"{where}: images must be uint8, got {images.dtype}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise DataError(
                f"{where}: {len(images)} images but {labels.size} labels (shape {labels.shape})"
            )
        if not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{where}: labels must be integers, got {labels.dtype}")
        if labels.size and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
            bad = labels[(labels < 0) | (labels >= NUM_CLASSES)][0]
            raise DataError(f"{where}: label {bad} is out of range 0..{NUM_CLASSES - 1}")
        object.__setattr__(self, "images", images)
        object.__setattr__(self, "labels", labels.astype(np.int64, copy=False))

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index) -> "Dataset":
        """A sub-dataset: ``ds[:1000]``, ``ds[mask]``, ``ds[indices]``."""
        if isinstance(index, (int, np.integer)):
            index = slice(index, index + 1)
        return Dataset(self.images[index], self.labels[index], self.name, self.source)

    @property
    def image_shape(self) -> tuple[int, int]:
        return tuple(self.images.shape[1:])

    def class_counts(self) -> np.ndarray:
        """Number of images of each class, an int array of length 10."""
        return np.bincount(self.labels, minlength=NUM_CLASSES)
