"""MNIST: find the four standard files locally or download them, verified, into the user cache.

Lookup order for `load_mnist`: the ``data_dir`` argument, the ``DIGITLAB_DATA_DIR`` environment
variable, the cache (``$DIGITLAB_CACHE_DIR`` or ``~/.cache/digitlab``, sub-folder ``mnist``), then a
download into that cache.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

from .._files import atomic_write
from ..errors import DataError
from .dataset import Dataset
from .formats import read_idx_pair

FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# sha256 of each file's decompressed content, so a mirror's own gzip settings do not matter.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}

# Public mirrors of the gzip files, tried in order.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "https://yann.lecun.com/exdb/mnist/",
)

# progress(file_name, bytes_done, bytes_total or None)
Progress = Callable[[str, int, "int | None"], None]


def cache_dir() -> Path:
    """Where downloaded data lives: ``$DIGITLAB_CACHE_DIR`` or ``~/.cache/digitlab``."""
    env = os.environ.get("DIGITLAB_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "digitlab"


def _find(folder: Path, stem: str) -> Path | None:
    for candidate in (folder / f"{stem}.gz", folder / stem):
        if candidate.is_file():
            return candidate
    return None


def _has_all(folder: Path) -> bool:
    return all(_find(folder, stem) for pair in FILES.values() for stem in pair)


def find_mnist(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The first folder holding all four MNIST files, by the lookup order above; None if none does.

    A folder named explicitly (argument or environment variable) that lacks a file is an error,
    not a reason to look elsewhere: the user asked for that folder.
    """
    for explicit, how in ((data_dir, "data_dir"), (os.environ.get("DIGITLAB_DATA_DIR"), "DIGITLAB_DATA_DIR")):
        if explicit:
            folder = Path(explicit).expanduser()
            missing = [f"{s}[.gz]" for pair in FILES.values() for s in pair if not _find(folder, s)]
            if missing:
                raise DataError(f"{folder} (from {how}): missing MNIST file(s) {', '.join(missing)}")
            return folder
    cached = cache_dir() / "mnist"
    return cached if _has_all(cached) else None


def load_mnist(
    split: str = "train",
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: Progress | None = None,
) -> Dataset:
    """Load MNIST's training (60,000) or test (10,000) images: uint8 N x 28 x 28, labels int64.

    Looks in ``data_dir``, then ``$DIGITLAB_DATA_DIR``, then the cache; downloads into the cache if
    it finds nothing and ``download`` is true.
    """
    if split not in FILES:
        raise DataError(f"split must be 'train' or 'test', got {split!r}")
    folder = find_mnist(data_dir)
    if folder is None:
        if not download:
            raise DataError(_missing_message())
        folder = download_mnist(progress=progress)
    images, labels = (_find(folder, stem) for stem in FILES[split])
    return read_idx_pair(images, labels, name=f"mnist-{split}")


def _missing_message() -> str:
    names = ", ".join(f"{s}.gz" for pair in FILES.values() for s in pair)
    return (
        f"MNIST not found. Put the four files ({names}) in a folder and set DIGITLAB_DATA_DIR to it "
        f"(or pass --data-dir), or copy them to {cache_dir() / 'mnist'}"
    )


def download_mnist(
    dest: str | os.PathLike | None = None,
    mirrors: Sequence[str] = MIRRORS,
    checksums: dict[str, str] = SHA256,
    progress: Progress | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download the four MNIST files into ``dest`` (default: the cache), trying each mirror in turn.

    Each file is checked against its sha256 before it is renamed into place, so the folder holds
    only whole, verified files. Returns the folder. Raises `DataError` if no mirror serves a file.
    """
    dest = Path(dest) if dest is not None else cache_dir() / "mnist"
    if progress is None:
        progress = _stderr_progress if sys.stderr.isatty() else None
    for stem in (s for pair in FILES.values() for s in pair):
        target = dest / f"{stem}.gz"
        if target.is_file() and _sha256_of(target) == checksums[stem]:
            continue
        failures = []
        for mirror in mirrors:
            url = mirror.rstrip("/") + f"/{stem}.gz"
            try:
                payload = _fetch(url, stem, progress, timeout)
                content = gzip.decompress(payload)
            except (urllib.error.URLError, http.client.HTTPException, OSError, EOFError, ValueError) as e:
                failures.append(f"{url}: {getattr(e, 'reason', None) or e}")
                continue
            digest = hashlib.sha256(content).hexdigest()
            if digest != checksums[stem]:
                failures.append(f"{url}: checksum mismatch (got sha256 {digest[:12]}...)")
                continue
            with atomic_write(target) as f:
                f.write(payload)
            break
        else:
            raise DataError(
                f"could not download {stem}.gz from any mirror ({'; '.join(failures)}). "
                + _missing_message()
            )
    return dest


def _fetch(url: str, name: str, progress: Progress | None, timeout: float) -> bytes:
    """GET ``url`` into memory, reporting progress; raise if the body is shorter than announced."""
    request = urllib.request.Request(url, headers={"User-Agent": "digitlab"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        total = response.headers.get("Content-Length")
        total = int(total) if total else None
        chunks, done = [], 0
        while True:
            chunk = response.read(1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            done += len(chunk)
            if progress:
                progress(name, done, total)
    if total is not None and done != total:
        raise OSError(f"connection closed after {done} of {total} bytes")
    return b"".join(chunks)


def _sha256_of(gz_path: Path) -> str:
    try:
        return hashlib.sha256(gzip.decompress(gz_path.read_bytes())).hexdigest()
    except (OSError, EOFError):
        return ""


def _stderr_progress(name: str, done: int, total: int | None) -> None:
    """A plain one-line progress bar for library use; the CLI shows its own."""
    if total:
        filled = int(30 * done / total)
        sys.stderr.write(f"\r{name:26s} [{'#' * filled}{'.' * (30 - filled)}] {done / total:4.0%}")
    else:
        sys.stderr.write(f"\r{name:26s} {done / 1e6:.1f} MB")
    if total and done >= total:
        sys.stderr.write("\n")
    sys.stderr.flush()
