"""The data layer: `Dataset`, MNIST lookup and download, readers for other formats, transforms
(scaling, augmentation) and corruptions."""

from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from .corruptions import CORRUPTIONS, KINDS, SEVERITIES, corrupt, corrupt_dataset
from .dataset import NUM_CLASSES, Dataset
from .formats import (
    IMAGE_FORMATS,
    load_sklearn_digits,
    parse_idx,
    read_csv,
    read_idx,
    read_idx_pair,
    read_image_folder,
    read_keras_npz,
)
from .mnist import MIRRORS, cache_dir, download_mnist, find_mnist, load_mnist
from .transforms import Augment, flatten, one_hot, scale, scale_tutorial, train_val_split

DATASETS = ("mnist", "digits")


def load_dataset(spec: str = "mnist", split: str = "train", data_dir=None) -> Dataset:
    """Load a dataset by name or path, the way the CLI's ``--dataset`` takes it.

    ``spec``: "mnist"; "digits" (scikit-learn's 8x8, split "train" = first 1,000, "test" = the
    rest, "all"); or a path: a folder of the four MNIST IDX files, an image folder ``DIR/<label>/``,
    a Keras ``.npz``, or a ``.csv``. Formats with no splits (CSV, image folder) ignore ``split``.
    """
    if spec == "mnist":
        return load_mnist(split, data_dir)
    if spec == "digits":
        return load_sklearn_digits(split)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DataError(f"{spec}: not a dataset name ({', '.join(DATASETS)}) nor an existing path")
    if path.is_dir():
        if find_mnist_in(path):
            return load_mnist(split, path)
        return read_image_folder(path)
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith(".npz"):
        return read_keras_npz(path, split)
    if suffixes.endswith((".csv", ".csv.gz")):
        return read_csv(path)
    raise DataError(f"{path}: unknown dataset format (expected a folder, .npz or .csv)")


def find_mnist_in(folder: Path) -> bool:
    """True if ``folder`` holds any MNIST IDX file (then all four are required)."""
    return any(folder.glob("*-ubyte*"))


def has_splits(spec: str) -> bool:
    """Whether a dataset spec has separate train and test parts."""
    if spec in DATASETS:
        return True
    path = Path(spec).expanduser()
    return (path.is_dir() and find_mnist_in(path)) or path.suffix.lower() == ".npz"


__all__ = [
    "Augment", "CORRUPTIONS", "DATASETS", "IMAGE_FORMATS", "KINDS", "SEVERITIES", "corrupt", "corrupt_dataset", "DataError", "Dataset", "MIRRORS", "NUM_CLASSES", "cache_dir", "download_mnist",
    "find_mnist", "flatten", "has_splits", "load_dataset", "load_mnist", "load_sklearn_digits",
    "one_hot", "parse_idx", "read_csv", "read_idx", "read_idx_pair", "read_image_folder",
    "read_keras_npz", "scale", "scale_tutorial", "train_val_split",
]
