"""Callbacks: hooks into training that read a ``logs`` dict and may stop it, and `CallbackList`,
which calls every hook of a run's callbacks in one place (as Keras's ``CallbackList`` does).

``logs`` at the end of an epoch holds ``epoch`` (1-based), ``loss``, ``accuracy`` (running means
over the epoch's batches, in training mode), ``val_loss``/``val_accuracy`` when there is validation
data, ``lr`` and ``seconds``. After each batch it holds ``batch`` (1-based), ``batches``, ``loss``,
``accuracy`` (running means so far) and ``lr``.

Progress display is not here: the front ends draw it (see `digitlab.cli`).
"""

from __future__ import annotations

import math
from typing import Iterable

from ..errors import ModelError


class Callback:
    model = None  # set before on_train_begin

    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...


class CallbackList:
    """The callbacks of one training run, called as one. Per-batch hooks cost time when batches
    are single images, so ``on_batch_end`` reaches only the callbacks that define it, and
    ``wants_batches`` tells a trainer whether to report batches at all."""

    def __init__(self, callbacks: Iterable[Callback], model) -> None:
        self.callbacks = list(callbacks)
        for cb in self.callbacks:
            cb.model = model
        self._batch = [cb for cb in self.callbacks if type(cb).on_batch_end is not Callback.on_batch_end]

    @property
    def wants_batches(self) -> bool:
        return bool(self._batch)

    def on_train_begin(self, logs):
        for cb in self.callbacks:
            cb.on_train_begin(logs)

    def on_epoch_begin(self, epoch, logs):
        for cb in self.callbacks:
            cb.on_epoch_begin(epoch, logs)

    def on_batch_end(self, batch, logs):
        for cb in self._batch:
            cb.on_batch_end(batch, logs)

    def on_epoch_end(self, epoch, logs):
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_end(self, logs):
        for cb in self.callbacks:
            cb.on_train_end(logs)


def improved(monitor: str, new: float, best: float, min_delta: float = 0.0) -> bool:
    """Whether ``new`` beats ``best`` by more than ``min_delta``: lower is better for a loss,
    higher for an accuracy."""
    if "loss" in monitor:
        return new < best - min_delta
    return new > best + min_delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; with
    ``restore_best`` the model ends with the weights of its best epoch."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, restore_best: bool = True):
        if patience < 0:
            raise ModelError(f"EarlyStopping: patience must be >= 0. Received: patience={patience!r}")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, min_delta, restore_best

    def on_train_begin(self, logs):
        self.best, self.best_epoch, self.wait, self.best_weights = None, None, 0, None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise ModelError(f"EarlyStopping monitors {self.monitor!r} but training logs only {sorted(logs)}"
                             + (" (give validation data)" if self.monitor.startswith("val_") else ""))
        value = logs[self.monitor]
        if self.best is None or improved(self.monitor, value, self.best, self.min_delta):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best:
                self.best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.model.stop_training = True
            self.stopped_epoch = epoch

    def on_train_end(self, logs):
        if self.restore_best and self.best_weights is not None and self.best_epoch != logs.get("epoch"):
            self.model.set_weights(self.best_weights)
            logs["restored_epoch"] = self.best_epoch


class History:
    """The end-of-epoch logs of training, one dict per epoch. `Sequential.fit` returns the epochs
    of that call; ``model.history`` holds every epoch the model was ever trained for."""

    def __init__(self, epochs: list[dict] | None = None):
        self.epochs: list[dict] = list(epochs or [])

    def __getitem__(self, key: str) -> list:
        """``history["val_accuracy"]``: one value per epoch."""
        return [e.get(key, math.nan) for e in self.epochs]

    def __len__(self) -> int:
        return len(self.epochs)
