"""The models a server holds: found, loaded and checked at start-up, then shared by every request.

Requests predict with one shared `Sequential` from several worker threads at once, with no lock:
the engine keeps what a call leaves behind per thread (each layer's ``saved`` context for
``backward``, and the work arrays of `digitlab.nn.kernels.Workspace`, such as `Conv2D`'s im2col
patches), so concurrent calls cannot overwrite each other's arrays, and a long computation (the
confusion view's 10,000 test images) does not hold up the others.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import ModelError
from ..modelfile import load_model
from ..nn import Sequential

INPUT_SHAPE = (28, 28)
GALLERY = 36  # misclassified examples returned, the most confident mistakes first


class ModelNotFound(ModelError):
    """A request named a model this server does not hold."""


@dataclass
class ServedModel:
    """One model and what the server knows about it."""

    name: str
    model: Sequential
    path: Path | None = None
    _confusion: dict | None = field(default=None, repr=False)
    _confusion_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        """Probabilities, N x 10 float32, for uint8 N x 28 x 28 images (from any thread)."""
        return self.model.predict_proba(images)

    def describe(self) -> dict:
        """Name, recipe, test accuracy and size: a row of ``GET /api/models``."""
        meta = self.model.metadata
        return {
            "name": self.name,
            "file": self.path.name if self.path else None,
            "recipe": meta.get("recipe"),
            "test_accuracy": (meta.get("metrics") or {}).get("test_accuracy"),
            "params": self.model.num_params,
            "epochs": len(self.model.history),
        }

    def details(self) -> dict:
        """Everything the page's model view shows: architecture, training history, metrics."""
        meta = self.model.metadata
        return {
            **self.describe(),
            "recipe_version": meta.get("recipe_version"),
            "published_accuracy": meta.get("published_accuracy"),
            "training": meta.get("training") or {},
            "metrics": meta.get("metrics") or {},
            "saved": meta.get("saved"),
            "input_shape": list(self.model.input_shape),
            "architecture": [
                {"layer": text, "output_shape": list(shape), "params": int(params)}
                for text, shape, params in self.model.summary()
            ],
            "history": self.model.history.epochs,
        }

    def confusion(self, data_dir=None) -> dict:
        """Confusion matrix and most confident mistakes on the MNIST test set, computed on first
        use and cached. Raises `DataError` when MNIST is not on this machine (never downloads)."""
        with self._confusion_lock:
            if self._confusion is None:
                self._confusion = self._compute_confusion(data_dir)
            return self._confusion

    def _compute_confusion(self, data_dir) -> dict:
        from ..data import load_mnist
        from ..evaluate import evaluate_model

        test = load_mnist("test", data_dir, download=False)
        ev = evaluate_model(self, test)
        return {
            "dataset": test.name,
            "images": len(test),
            "accuracy": ev.accuracy,
            "matrix": ev.confusion.tolist(),  # rows: true label, columns: predicted
            "misclassified": [
                {"index": int(i), "label": int(test.labels[i]), "predicted": int(ev.predicted[i]),
                 "confidence": float(ev.confidence[i]), "image": test.images[i]}
                for i in ev.mistakes[:GALLERY]
            ],
        }


class ModelStore:
    """The served models by name, and the default one.

    ``models``: a model file, a folder of model files (every ``*.npz`` in it), or a mapping
    name -> model file or `Sequential`. Every model is loaded now, so a broken file stops the server
    from starting with a message naming it instead of failing later, on a request.
    """

    def __init__(self, models, default: str | None = None):
        self.models: dict[str, ServedModel] = {}
        for name, source in _sources(models).items():
            if isinstance(source, Sequential):
                model, path = source, None
            else:
                path = Path(source)
                model = load_model(path)
            if not model.built or tuple(model.input_shape) != INPUT_SHAPE:
                where = path or name
                raise ModelError(f"{where}: the server needs models of 28x28 images; this one takes "
                                 f"{model.input_shape}")
            self.models[name] = ServedModel(name, model, path)
        if not self.models:
            raise ModelError("no models to serve")
        if default is not None and default not in self.models:
            raise ModelNotFound(f"default model {default!r} is not among {', '.join(self.models)}")
        self.default = default or next(iter(self.models))

    def get(self, name: str | None = None) -> ServedModel:
        """The model called ``name`` (the default one for None); `ModelNotFound` otherwise."""
        if name is None or name == "":
            name = self.default
        try:
            return self.models[name]
        except KeyError:
            raise ModelNotFound(f"no model named {name!r}; this server has: {', '.join(self.models)}") from None

    def __iter__(self):
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)


def _sources(models) -> dict:
    if isinstance(models, Mapping):
        return dict(models)
    if isinstance(models, Sequential):
        return {"model": models}
    path = Path(os.fspath(models)).expanduser()
    if path.is_dir():
        files = sorted(path.glob("*.npz"))
        if not files:
            raise ModelError(f"{path}: no model files (*.npz) in this folder")
        return {f.stem: f for f in files}
    if not path.exists():
        raise ModelError(f"{path}: no such model file or folder")
    return {path.stem: path}

