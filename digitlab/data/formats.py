"""Readers for the file formats MNIST-like data comes in. Each returns a `Dataset` or raises
`DataError` naming the file and what is wrong with it.

| format | function |
|---|---|
| IDX (LeCun's original files), raw or gzip | `read_idx`, `read_idx_pair` |
| Keras `mnist.npz` (x_train, y_train, x_test, y_test) | `read_keras_npz` |
| CSV: label then pixels, with or without a header row | `read_csv` |
| image folder `DIR/<label>/*.png` | `read_image_folder` |
| scikit-learn's bundled 8x8 digits | `load_sklearn_digits` |
"""

from __future__ import annotations

import gzip
import io
import math
import os
import warnings
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset

# IDX type codes (third byte of the magic number) -> numpy dtype, big-endian as the format says.
_IDX_DTYPES = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
# The image formats digitlab opens, as Pillow names them (PPM covers PBM, PGM and PPM), for the
# image-folder reader here and for `digitlab.vision` and the web app. Pillow is never asked to
# try its other plugins on a file (EPS would run Ghostscript).
IMAGE_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")


def _read_bytes(path: Path) -> bytes:
    """The file's content, decompressed if it is gzip (detected by its magic bytes, not its name)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return raw


def parse_idx(data: bytes, where: str = "<bytes>") -> np.ndarray:
    """Decode an IDX byte string into an array, checking magic number, dimensions and length."""
    if len(data) == 0:
        raise DataError(f"{where}: empty file")
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(f"{where}: not an IDX file (bad magic number {data[:4].hex() or 'none'})")
    dtype, ndim = _IDX_DTYPES[data[2]], data[3]
    if ndim == 0:
        raise DataError(f"{where}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{where}: truncated IDX header ({len(data)} bytes)")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    expected = math.prod(dims) * dtype.itemsize  # Python ints: 3+ dimensions of 2**32 overflow int64
    actual = len(data) - header
    if actual < expected:
        raise DataError(
            f"{where}: truncated: header declares {'x'.join(map(str, dims))} "
            f"({expected} bytes of data) but only {actual} bytes follow"
        )
    if actual > expected:
        raise DataError(f"{where}: {actual - expected} unexpected bytes after the declared data")
    return np.frombuffer(data, dtype, offset=header).reshape(dims).astype(dtype.newbyteorder("="))


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (raw or gzip-compressed) into a numpy array."""
    path = Path(path)
    return parse_idx(_read_bytes(path), str(path))


def read_idx_pair(images_path, labels_path, name: str = "idx") -> Dataset:
    """Read an IDX images file (N x H x W, uint8) and its labels file (N) into a `Dataset`."""
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DataError(f"{images_path}: expected uint8 images N x H x W, got {images.dtype} {images.shape}")
    if labels.ndim != 1:
        raise DataError(f"{labels_path}: expected a 1-D labels file, got shape {labels.shape}")
    if len(images) != len(labels):
        raise DataError(
            f"{labels_path}: {len(labels)} labels for {len(images)} images in {images_path}"
        )
    return _dataset(images, labels, name, labels_path)


def _dataset(images, labels, name, source) -> Dataset:
    """Build a Dataset, re-raising its validation error with the file named."""
    labels = np.asarray(labels)
    bad = ~((labels >= 0) & (labels <= 9))  # NaN is bad too
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        shown = f"{labels[first]:.15g}" if labels.dtype.kind == "f" else labels[first]
        raise DataError(f"{source}: label {shown} at position {first} is out of range 0..9")
    return Dataset(images, labels.astype(np.int64), name=name, source=str(source))


def read_keras_npz(path: str | os.PathLike, split: str = "train") -> Dataset:
    """Read Keras' ``mnist.npz`` (arrays x_train, y_train, x_test, y_test); pickles are refused."""
    path = Path(path)
    if split not in ("train", "test"):
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = {f"x_{split}", f"y_{split}"} - set(npz.files)
            if missing:
                raise DataError(f"{path}: missing array(s) {', '.join(sorted(missing))}; has {npz.files}")
            x, y = npz[f"x_{split}"], npz[f"y_{split}"]
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except DataError:
        raise
    except (ValueError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path}: not a readable .npz file ({e})") from None
    if x.ndim != 3 or x.dtype != np.uint8:
        raise DataError(f"{path}: x_{split} must be uint8 N x H x W, got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{path}: y_{split} must be {len(x)} integer labels, got {y.dtype} {y.shape}")
    return _dataset(x, y, f"{path.stem}-{split}", path)


def read_csv(path: str | os.PathLike, name: str | None = None) -> Dataset:
    """Read a CSV of rows ``label,p0,...,p(HW-1)`` (HW a square: 784 for 28x28), with or without a
    header row (Kaggle's ``train.csv`` has one, the tutorials' ``mnist_train.csv`` has none)."""
    path = Path(path)
    text = _read_bytes(path).decode("utf-8", errors="replace")
    if not text.strip():
        raise DataError(f"{path}: empty file")
    first_line = text.lstrip().split("\n", 1)[0]
    skip = 0 if _is_number(first_line.split(",", 1)[0]) else 1
    try:
        table = np.loadtxt(io.StringIO(text), delimiter=",", skiprows=skip, dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise DataError(f"{path}: {_loadtxt_reason(e, skip)}") from None
    if table.size == 0:
        raise DataError(f"{path}: no data rows")
    n_pixels = table.shape[1] - 1
    side = int(round(np.sqrt(n_pixels)))
    if n_pixels < 1 or side * side != n_pixels:
        raise DataError(
            f"{path}: each row must be a label then H*W pixels of a square image "
            f"(785 for 28x28); found {table.shape[1]} columns"
        )
    pixels, labels = table[:, 1:], table[:, 0]
    if np.any(pixels != np.round(pixels)) or pixels.min() < 0 or pixels.max() > 255:
        row = int(np.flatnonzero((pixels != np.round(pixels)).any(1) | (pixels < 0).any(1) | (pixels > 255).any(1))[0])
        raise DataError(f"{path}: row {row + 1 + skip}: pixels must be integers in 0..255")
    if np.any(labels != np.round(labels)):
        row = int(np.flatnonzero(labels != np.round(labels))[0])
        raise DataError(f"{path}: row {row + 1 + skip}: label {labels[row]} is not an integer")
    images = pixels.astype(np.uint8).reshape(-1, side, side)
    return _dataset(images, labels, name or path.stem, path)  # checked as floats: 1e300 fits no int64


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def _loadtxt_reason(e: ValueError, skip: int) -> str:
    """numpy's loadtxt message, with its row counted as a line of the file."""
    msg = str(e).strip().splitlines()[0]
    return f"{msg} (after skipping {skip} header row)" if skip else msg


def read_image_folder(root: str | os.PathLike, name: str | None = None) -> Dataset:
    """Read ``root/<label>/*.png|jpg|...``: one sub-folder per digit 0..9, images converted to grey.
    Every image must have the same size (use `digitlab.vision.to_mnist` for raw photos) and be in one
    of the `IMAGE_FORMATS`, whatever its name says."""
    from PIL import Image, UnidentifiedImageError

    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: not a directory")
    label_dirs = sorted(p for p in root.iterdir() if p.is_dir())
    bad = [p.name for p in label_dirs if p.name not in {str(d) for d in range(10)}]
    if bad:
        raise DataError(f"{root}: sub-folders must be named 0..9 (one per label); found {bad[0]!r}")
    images, labels = [], []
    for label_dir in label_dirs:
        for file in sorted(label_dir.iterdir()):
            if file.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("error", Image.DecompressionBombWarning)
                    with Image.open(file, formats=IMAGE_FORMATS) as im:
                        arr = np.asarray(im.convert("L"), dtype=np.uint8)
            except UnidentifiedImageError:
                raise DataError(f"{file}: not a readable image (not in a format digitlab reads: "
                                f"{', '.join(IMAGE_FORMATS)})") from None
            except (Image.DecompressionBombError, Image.DecompressionBombWarning, OSError, SyntaxError,
                    ValueError) as e:
                raise DataError(f"{file}: not a readable image ({e})") from None
            if images and arr.shape != images[0].shape:
                raise DataError(
                    f"{file}: is {arr.shape[1]}x{arr.shape[0]}, the others are "
                    f"{images[0].shape[1]}x{images[0].shape[0]}; all images must have one size"
                )
            images.append(arr)
            labels.append(int(label_dir.name))
    if not images:
        raise DataError(f"{root}: no images found in sub-folders 0..9 ({', '.join(IMAGE_SUFFIXES)})")
    return Dataset(np.stack(images), np.array(labels), name or root.name, str(root))


def load_sklearn_digits(split: str = "all") -> Dataset:
    """scikit-learn's bundled 8x8 digits (1,797 images), values 0..16 rescaled to 0..255, kept 8x8.

    ``split``: "all", or the scikit-learn tutorial's split: "train" = the first 1,000 images,
    "test" = the other 797. Needs the optional scikit-learn extra.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError(
            "the 8x8 digits come with scikit-learn: pip install 'digitlab[sklearn]'"
        ) from None
    bunch = load_digits()
    images = np.round(bunch.images * (255 / 16)).astype(np.uint8)
    parts = {"all": slice(None), "train": slice(0, 1000), "test": slice(1000, None)}
    if split not in parts:
        raise DataError(f"split must be one of {', '.join(parts)}; got {split!r}")
    return Dataset(images[parts[split]], bunch.target[parts[split]], f"digits-{split}", "sklearn.datasets.load_digits")
