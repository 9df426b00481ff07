"""Shared fixtures: tiny generated data for unit tests, the real MNIST copy for integration tests."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]


def _mnist_dir() -> Path | None:
    for candidate in (os.environ.get("DIGITLAB_DATA_DIR"), REPO.parent / "shared" / "data" / "mnist"):
        if candidate and (Path(candidate) / "train-images-idx3-ubyte.gz").is_file():
            return Path(candidate)
    return None


MNIST_DIR = _mnist_dir()
MNIST_MISSING = (
    "real MNIST not found: set DIGITLAB_DATA_DIR to a folder with the four *-ubyte.gz files "
    "(CI keeps them in ../shared/data/mnist)"
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """No test reads or writes the user's cache, nor downloads by accident."""
    monkeypatch.setenv("DIGITLAB_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture
def mnist_dir() -> Path:
    if MNIST_DIR is None:
        pytest.skip(MNIST_MISSING)
    return MNIST_DIR


@pytest.fixture(scope="session")
def mnist():
    """(train, test) Datasets from the real MNIST copy, loaded once per session."""
    if MNIST_DIR is None:
        pytest.skip(MNIST_MISSING)
    from digitlab.data import load_mnist

    return load_mnist("train", MNIST_DIR), load_mnist("test", MNIST_DIR)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the IDX format."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, gz: bool = False) -> Path:
    data = idx_bytes(array)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def tiny_digits(n: int = 20, size: int = 28, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Random uint8 images and labels covering every class."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size), dtype=np.uint8)
    labels = np.arange(n) % 10
    return images, labels


def write_mnist_folder(folder: Path, n_train: int = 30, n_test: int = 10, gz: bool = True) -> Path:
    """A folder laid out like MNIST's four files, with tiny random content."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = tiny_digits(n, seed=seed)
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", images, gz)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", labels.astype(np.uint8), gz)
    return folder


def pattern_digits(n: int = 300, size: int = 8, seed: int = 0, noise: float = 40.0):
    """A learnable toy problem: each class is a fixed random pattern plus pixel noise (uint8)."""
    templates = np.random.default_rng(1234).random((10, size, size)) > 0.6
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    images = templates[labels] * 200.0 + rng.normal(0, noise, (n, size, size)) + 30
    return np.clip(images, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="session")
def mnist_model(mnist, tmp_path_factory):
    """A `cnn-fast` model trained for one epoch on the real MNIST (about 20 s, once per session),
    for tests that need a network able to read real digits."""
    from digitlab import save_model
    from digitlab.recipes import train_recipe

    result = train_recipe("cnn-fast", epochs=1, data=mnist)
    return save_model(result.model, tmp_path_factory.mktemp("model") / "cnn-fast.npz")


def strokes(n=12, size=28, seed=0):
    """Digit-like test images: anti-aliased rings about 2.5 pixels thick, at random places."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size]
    centre = rng.uniform(0.4 * size, 0.6 * size, (n, 2, 1, 1))
    radius = rng.uniform(0.15 * size, 0.3 * size, (n, 1, 1))
    d = np.hypot(ys - centre[:, 0], xs - centre[:, 1])
    ink = np.clip(1.6 - np.abs(d - radius), 0, 1)
    return (255 * ink).astype(np.uint8)


def grid_of_marks(n: int = 64, pitch: int = 15) -> bytes:
    """A PNG of an n x n grid of short strokes, ``pitch`` pixels apart, 3 kB: thousands of separate
    marks, which `digitlab.vision.segment` once took minutes to go through."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("L", (n * pitch, n * pitch), 255)
    draw = ImageDraw.Draw(image)
    for row in range(n):
        for col in range(n):
            x, y = col * pitch + 3, row * pitch + 2
            draw.line([(x, y), (x + 1, y + 8)], fill=0, width=3)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return buf.getvalue()
