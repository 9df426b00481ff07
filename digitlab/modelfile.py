"""Model files: one ``.npz`` holding the weight arrays and a JSON header.

The header records the format and its version, the architecture (enough to rebuild the network),
the recipe, the training configuration, the per-epoch history, test metrics, the package version
and a sha256 over the arrays. Files are read with ``allow_pickle=False`` (loading a model never
runs code) and written atomically (a temporary file renamed over the target).

Nothing in a file is trusted before it is checked, and nothing the size of the weights is read or
allocated before the checks that bound it: the header against a declared schema (`_SCHEMA`), each
stored array's shape (read from its own small header) against the header's list and against the
shapes the architecture implies (`Layer.weight_shapes`, before a layer allocates its weights), then the
checksum, and finally that every weight is finite. Every fault is a one-line `ModelError` naming
the file.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import math
import os
import zipfile
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from . import __version__
from ._files import atomic_write, jsonable
from .errors import ModelError
from .nn import Callback, Sequential
from .nn.callbacks import improved
from .nn.model import layer_from_config

FORMAT = "digitlab-model"
FORMAT_VERSION = 1
_HEADER_KEY = "header"
# Limits on what a file may ask a reader to hold, checked from the zip directory before reading:
# the JSON header, and all arrays together, uncompressed (1 GiB is a 250-million-parameter network,
# far beyond any digit reader; the recipes' models are a few MB).
MAX_HEADER_BYTES = 64 << 20
MAX_ARRAY_BYTES = 1 << 30


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
    path = Path(path)
    if path.suffix != ".npz":
        raise ModelError(f"{path}: model files end in .npz")
    # Nothing is written that `load_model` would refuse.
    for i, a in enumerate(arrays):
        if not np.isfinite(a).all():
            raise ModelError(f"{path}: cannot save: weight array {_array_key(i)} holds NaN or infinite values")
    header = jsonable(header)
    problem = _check_fields(header, _SCHEMA)
    if problem:
        raise ModelError(f"{path}: cannot save: {problem}")
    blob = json.dumps(header, allow_nan=False).encode("utf-8")
    with atomic_write(path) as f:
        np.savez(f, **{_HEADER_KEY: np.frombuffer(blob, dtype=np.uint8)},
                 **{_array_key(i): a for i, a in enumerate(arrays)})
    return path


def _open(path: Path, weights: bool) -> tuple[dict, list[np.ndarray] | None]:
    """The checked header and, with ``weights``, the checked arrays (else None). Everything is
    checked before the memory the file asks for is spent: the header against `_SCHEMA`, each
    array's shape as stored (from its own small header) against the header's list and, with
    ``weights``, against the shapes the architecture implies."""
    try:
        with zipfile.ZipFile(path) as zf:
            members = _members(path, zf)
            if _HEADER_KEY not in members:
                raise ModelError(f"{path}: not a digitlab model file (no header)")
            if members[_HEADER_KEY].info.file_size > MAX_HEADER_BYTES:
                raise ModelError(f"{path}: the header is over the limit of {MAX_HEADER_BYTES >> 20} MiB")
            header = json.loads(_read_member(zf, members[_HEADER_KEY]).tobytes().decode("utf-8"))
            _check_header(path, header)
            stored = [members.get(_array_key(i)) for i in range(len(header["arrays"]))]
            _check_stored(path, header["arrays"], stored, len(members) - 1)
            if not weights:
                return header, None
            _check_architecture(path, header["architecture"], [m.shape for m in stored])
            return header, [_read_member(zf, m) for m in stored]
    except FileNotFoundError:
        raise ModelError(f"{path}: no such model file") from None
    except IsADirectoryError:
        raise ModelError(f"{path}: is a folder, not a model file") from None
    except ModelError:
        raise
    # NotImplementedError and RuntimeError: zipfile's words for an unknown compression method and
    # an encrypted member; RecursionError: JSON nested too deep.
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError, UnicodeDecodeError,
            NotImplementedError, RuntimeError, RecursionError) as e:
        raise ModelError(f"{path}: not a readable model file, truncated or corrupt ({type(e).__name__}: {e})") from None


class _Member(NamedTuple):
    """An array stored in the file, known from its own header; its data not read yet."""

    key: str
    info: zipfile.ZipInfo
    shape: tuple[int, ...]
    dtype: np.dtype


def _members(path: Path, zf: zipfile.ZipFile) -> dict[str, _Member]:
    """Every ``.npy`` member of the file by key, from the zip directory and the array headers."""
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    members, total = {}, 0
    for info in zf.infolist():
        if not info.filename.endswith(".npy"):
            continue
        key = info.filename[:-4]
        with zf.open(info) as f:
            version = np.lib.format.read_magic(f)
            if version not in readers:
                raise ValueError(f"array {key} is in .npy format {version}, expected 1.0 or 2.0")
            shape, _, dtype = readers[version](f)
            start = f.tell()
        if dtype.hasobject:
            raise ModelError(f"{path}: not a readable model file: array {key} holds Python objects, "
                             "which are never loaded")
        size = start + math.prod(shape) * dtype.itemsize
        if info.file_size != size:
            raise ValueError(f"array {key} declares {size:,} bytes but holds {info.file_size:,}")
        total += size
        members[key] = _Member(key, info, shape, dtype)
    if total > MAX_ARRAY_BYTES:
        raise ModelError(f"{path}: holds {total / 2**20:,.0f} MiB of arrays, over the limit of "
                         f"{MAX_ARRAY_BYTES >> 20:,} MiB for a model file")
    return members


def _read_member(zf: zipfile.ZipFile, member: _Member) -> np.ndarray:
    """The array itself (its size checked by `_members`)."""
    with zf.open(member.info) as f:
        return np.lib.format.read_array(f, allow_pickle=False)


def read_header(path: str | os.PathLike) -> dict:
    """The header of a model file, checked against the schema and the stored arrays' shapes,
    without reading the weights or building the model."""
    path = Path(path)
    return _open(path, weights=False)[0]


def _integer(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _number_or_null(v) -> bool:
    return v is None or _integer(v) or isinstance(v, float)


# What a reader relies on in a header, declared as data and checked by `_check_fields` (on reading
# and on saving): a dict is an object with those fields (a name ending in "?" is optional), a
# one-item list is a list of such items, and a (description, test) pair is any other value.
_STRING = ("a string", lambda v: isinstance(v, str))
_OBJECT = ("an object", lambda v: isinstance(v, dict))
_NUMBER = ("a number or null", _number_or_null)
_SIZE = ("an integer >= 0", lambda v: _integer(v) and v >= 0)
_SPEC = ("a name or an object", lambda v: isinstance(v, (str, dict)))
_SPEC_OR_NULL = ("a name, an object or null", lambda v: v is None or isinstance(v, (str, dict)))
_SCHEMA = {
    "architecture": {
        "input_shape": ("a non-empty list of positive integers",
                        lambda v: isinstance(v, list) and len(v) > 0 and all(_integer(d) and d > 0 for d in v)),
        "seed?": _SIZE,
        "layers": [{"type": _STRING, "config?": _OBJECT}],
    },
    "arrays": [{"shape": [_SIZE], "dtype": _STRING}],
    "sha256": _STRING,
    "compile?": {"optimizer?": _SPEC, "loss?": _SPEC, "schedule?": _SPEC_OR_NULL},
    "history?": [_OBJECT],
    # metadata the front ends show
    "digitlab_version?": _STRING,
    "recipe?": _STRING,
    "published_accuracy?": _NUMBER,
    "training?": {"dataset?": _STRING},
    "metrics?": {"test_accuracy?": _NUMBER, "test_loss?": _NUMBER},
}


def _check_fields(value, schema, where: str = "") -> str | None:
    """What is wrong with ``value`` under ``schema`` (see `_SCHEMA`), or None if nothing is."""
    if isinstance(schema, dict):
        if not isinstance(value, dict):
            return f"{where or 'the header'} must be an object. Got {_short(value)}"
        for name, field in schema.items():
            key = name.rstrip("?")
            if key in value:
                problem = _check_fields(value[key], field, f"{where}.{key}" if where else key)
                if problem:
                    return problem
            elif not name.endswith("?"):
                return f"{where + '.' if where else ''}{key} is missing"
        return None
    if isinstance(schema, list):
        if not isinstance(value, list):
            return f"{where} must be a list. Got {_short(value)}"
        return next(filter(None, (_check_fields(v, schema[0], f"{where}[{i}]") for i, v in enumerate(value))), None)
    description, test = schema
    return None if test(value) else f"{where} must be {description}. Got {_short(value)}"


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_header(path: Path, header) -> None:
    if not isinstance(header, dict):
        raise ModelError(f"{path}: not a digitlab model file "
                         f"(its header is a JSON {type(header).__name__}, not an object)")
    if header.get("format") != FORMAT:
        raise ModelError(f"{path}: not a digitlab model file (format {_short(header.get('format'))})")
    version = header.get("format_version")
    if not _integer(version) or version < 1:
        raise ModelError(f"{path}: invalid header: format_version must be a positive integer. Got {_short(version)}")
    if version > FORMAT_VERSION:
        raise ModelError(
            f"{path}: written in model format {version} by digitlab {header.get('digitlab_version')}; "
            f"this digitlab ({__version__}) reads format <= {FORMAT_VERSION}: upgrade digitlab"
        )
    problem = _check_fields(header, _SCHEMA)
    if problem:
        raise ModelError(f"{path}: invalid header: {problem}")


def _check_stored(path: Path, declared: list[dict], stored: list[_Member | None], count: int) -> None:
    """The arrays the header lists are the arrays the file holds, floating-point."""
    if count != len(declared) or None in stored:
        raise ModelError(f"{path}: the header lists {len(declared)} weight arrays, the file holds {count}")
    for entry, member in zip(declared, stored):
        if tuple(entry["shape"]) != member.shape or entry["dtype"] != member.dtype.str:
            raise ModelError(f"{path}: array {member.key} is {member.dtype.str} {member.shape}, the header says "
                             f"{entry['dtype']} {tuple(entry['shape'])}")
        if member.dtype.kind != "f":
            raise ModelError(f"{path}: array {member.key} holds {member.dtype}, weights are floating-point")


def _check_architecture(path: Path, architecture: dict, stored: list[tuple[int, ...]]) -> None:
    """The architecture builds, and its layers' weights have the shapes of the stored arrays. A
    layer's weights are compared (`Layer.weight_shapes`) before they are allocated: a header
    claiming a huge layer costs nothing."""
    shape, rng, used = tuple(architecture["input_shape"]), np.random.default_rng(0), 0

    def attempt(i: int, fn, *args):
        try:
            return fn(*args)
        except (TypeError, ValueError, OverflowError, IndexError) as e:  # ModelError is a ValueError
            raise ModelError(f"{path}: layer {i} of the architecture is invalid ({e})") from None

    def compare(i: int, layer, expected: list[tuple[int, ...]]) -> None:
        nonlocal used
        found = stored[used : used + len(expected)]
        if found != expected:
            raise ModelError(f"{path}: layer {i} ({type(layer).__name__}) needs weights of shape "
                             f"{', '.join(map(str, expected))}; the file holds {', '.join(map(str, found)) or 'none'}")
        used += len(expected)

    for i, config in enumerate(architecture["layers"]):
        layer = attempt(i, layer_from_config, config)
        compare(i, layer, attempt(i, layer.weight_shapes, shape))
        shape = attempt(i, layer.build, shape, rng)
    if used != len(stored):
        raise ModelError(f"{path}: the architecture has {used} weight arrays; the file holds {len(stored)}")


def load_model(path: str | os.PathLike) -> Sequential:
    """Read a model file written by `save_model` and rebuild the network, with its history and
    metadata. Raises `ModelError`, naming the file, for a missing, foreign, newer, truncated,
    tampered or inconsistent file, and for weights that are not all finite."""
    path = Path(path)
    header, arrays = _open(path, weights=True)
    if _checksum(arrays) != header["sha256"]:
        raise ModelError(f"{path}: the weights do not match the checksum in the header (corrupted or modified)")
    for i, a in enumerate(arrays):
        if not np.isfinite(a).all():
            raise ModelError(f"{path}: weight array {_array_key(i)} holds NaN or infinite values")
    try:
        model = Sequential.from_config(header["architecture"])
        model.set_weights(arrays)
        if header.get("compile"):
            model.compile(**header["compile"])
    except ModelError as e:
        raise ModelError(f"{path}: {e}") from None
    except (TypeError, ValueError) as e:
        raise ModelError(f"{path}: invalid training configuration in the header ({type(e).__name__}: {e})") from None
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
