"""Model files: one ``.npz`` holding the weight arrays and a JSON header.

The header records the format and its version, the architecture (enough to rebuild the network),
the recipe, the training configuration, the per-epoch history, test metrics, the package version
and a sha256 over the arrays. Files are read with ``allow_pickle=False`` (loading a model never
runs code) and written atomically (a temporary file renamed over the target).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from . import __version__
from ._files import atomic_write, jsonable
from .errors import ModelError
from .nn import Callback, Sequential
from .nn.callbacks import improved

FORMAT = "digitlab-model"
FORMAT_VERSION = 1
_HEADER_KEY = "header"


def _array_key(i: int) -> str:
    return f"w{i:03d}"


def _checksum(arrays: list[np.ndarray]) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def save_model(model: Sequential, path: str | os.PathLike, **metadata) -> Path:
    """Write ``model`` to ``path``. Keyword arguments (``recipe``, ``metrics``, ``training``, ...)
    are merged into ``model.metadata`` and stored in the header."""
    if not model.built:
        raise ModelError("cannot save a model that is not built (train it or give input_shape)")
    model.metadata.update(metadata)
    arrays = model.get_weights()
    header = {
        **model.metadata,
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "digitlab_version": __version__,
        "saved": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "architecture": model.get_config(),
        "compile": model.training_config(),
        "history": model.history.epochs,
        "arrays": [{"shape": list(a.shape), "dtype": a.dtype.str} for a in arrays],
        "sha256": _checksum(arrays),
    }
    blob = json.dumps(jsonable(header), allow_nan=False).encode("utf-8")
    path = Path(path)
    if path.suffix != ".npz":
        raise ModelError(f"{path}: model files end in .npz")
    with atomic_write(path) as f:
        np.savez(f, **{_HEADER_KEY: np.frombuffer(blob, dtype=np.uint8)},
                 **{_array_key(i): a for i, a in enumerate(arrays)})
    return path


def _open(path: Path) -> tuple[dict, list[np.ndarray]]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            if _HEADER_KEY not in npz.files:
                raise ModelError(f"{path}: not a digitlab model file (no header)")
            raw = npz[_HEADER_KEY]
            header = json.loads(raw.tobytes().decode("utf-8"))
            count = len(header.get("arrays", []))
            arrays = [npz[_array_key(i)] for i in range(count)]
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except ModelError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not a readable model file, truncated or corrupt ({type(e).__name__}: {e})") from None
    return header, arrays


def read_header(path: str | os.PathLike) -> dict:
    """The header of a model file, checked for format and version, without building the model."""
    path = Path(path)
    header, _ = _open(path)
    _check_header(path, header)
    return header


def _check_header(path: Path, header: dict) -> None:
    if header.get("format") != FORMAT:
        raise ModelError(f"{path}: not a digitlab model file (format {header.get('format')!r})")
    version = header.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelError(
            f"{path}: written in model format {version} by digitlab {header.get('digitlab_version')}; "
            f"this digitlab ({__version__}) reads format <= {FORMAT_VERSION}: upgrade digitlab"
        )


def load_model(path: str | os.PathLike) -> Sequential:
    """Read a model file written by `save_model` and rebuild the network,
    with its history and metadata. Raises `ModelError` for a missing, foreign, newer, truncated or
    tampered file."""
    path = Path(path)
    header, arrays = _open(path)
    _check_header(path, header)
    if _checksum(arrays) != header.get("sha256"):
        raise ModelError(f"{path}: the weights do not match the checksum in the header (corrupted or modified)")
    try:
        model = Sequential.from_config(header["architecture"])
        model.set_weights(arrays)
    except (KeyError, TypeError) as e:
        raise ModelError(f"{path}: the architecture in the header is invalid ({e})") from None
    if header.get("compile"):
        c = header["compile"]
        model.compile(c["optimizer"], c["loss"], c.get("schedule"))
    model.history.epochs = list(header.get("history", []))
    reserved = {"format", "format_version", "digitlab_version", "architecture", "compile", "history", "arrays", "sha256"}
    model.metadata = {k: v for k, v in header.items() if k not in reserved}
    return model


class ModelCheckpoint(Callback):
    """Save the model to ``path`` (atomically, with `save_model`) after each epoch, or only when
    ``monitor`` improves. ``path`` may contain ``{epoch}``."""

    def __init__(self, path: str, monitor: str | None = None, **metadata):
        self.path, self.monitor, self.metadata = str(path), monitor, metadata
        self.best = None

    def on_epoch_end(self, epoch, logs):
        if self.monitor:
            value = logs[self.monitor]
            if self.best is not None and not improved(self.monitor, value, self.best):
                return
            self.best = value
        save_model(self.model, self.path.format(epoch=epoch), **self.metadata)
