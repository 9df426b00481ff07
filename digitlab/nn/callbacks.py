"""Callbacks: hooks into `Sequential.fit` that read a ``logs`` dict and may stop training.

``logs`` at the end of an epoch holds ``epoch`` (1-based), ``loss``, ``accuracy`` (running means
over the epoch's batches, in training mode), ``val_loss``/``val_accuracy`` when there is validation
data, ``lr`` and ``seconds``. After each batch it holds ``batch`` (1-based), ``batches``, ``loss``,
``accuracy`` (running means so far) and ``lr``.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO


from ..errors import ModelError


class Callback:
    model = None  # set by fit before on_train_begin

    def on_train_begin(self, logs: dict) -> None: ...
    def on_epoch_begin(self, epoch: int, logs: dict) -> None: ...
    def on_batch_end(self, batch: int, logs: dict) -> None: ...
    def on_epoch_end(self, epoch: int, logs: dict) -> None: ...
    def on_train_end(self, logs: dict) -> None: ...


def _better(monitor: str):
    """Comparison for a metric: lower is better for losses, higher for accuracies."""
    if "loss" in monitor:
        return lambda new, best, delta: new < best - delta
    return lambda new, best, delta: new > best + delta


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not improved by ``min_delta`` for ``patience`` epochs; with
    ``restore_best`` the model ends with the weights of its best epoch."""

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, restore_best: bool = True):
        if patience < 0:
            raise ModelError(f"EarlyStopping: patience must be >= 0. Received: patience={patience!r}")
        self.monitor, self.patience, self.min_delta, self.restore_best = monitor, patience, min_delta, restore_best
        self.better = _better(monitor)

    def on_train_begin(self, logs):
        self.best, self.best_epoch, self.wait, self.best_weights = None, None, 0, None
        self.stopped_epoch = None

    def on_epoch_end(self, epoch, logs):
        if self.monitor not in logs:
            raise ModelError(f"EarlyStopping monitors {self.monitor!r} but training logs only {sorted(logs)}"
                             + (" (give validation data)" if self.monitor.startswith("val_") else ""))
        value = logs[self.monitor]
        if self.best is None or self.better(value, self.best, self.min_delta):
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


class ModelCheckpoint(Callback):
    """Save the model to ``path`` (atomically) after each epoch, or only when ``monitor`` improves.
    ``path`` may contain ``{epoch}``."""

    def __init__(self, path: str, monitor: str | None = None, **metadata):
        self.path, self.monitor, self.metadata = str(path), monitor, metadata
        self.better = _better(monitor) if monitor else None
        self.best = None

    def on_epoch_end(self, epoch, logs):
        if self.monitor:
            value = logs[self.monitor]
            if self.best is not None and not self.better(value, self.best, 0.0):
                return
            self.best = value
        self.model.save(self.path.format(epoch=epoch), **self.metadata)


class Every:
    """Whether a progress display is due to redraw after batch ``batch`` of ``total``: about
    ``times`` times a pass, and always at the last batch. Batch numbers may skip (per-sample
    training reports once per block of samples)."""

    def __init__(self, total: int, times: int):
        self.total, self.step, self.next = total, max(1, total // times), 0

    def __call__(self, batch: int) -> bool:
        if batch < self.next and batch != self.total:
            return False
        self.next = batch + self.step
        return True


class ProgressBar(Callback):
    """A plain-text progress line per epoch, for scripts and notebooks (the CLI draws its own)."""

    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream, self.width = stream or sys.stderr, width

    def on_train_begin(self, logs):
        self.epochs = logs.get("epochs")

    def on_epoch_begin(self, epoch, logs):
        self.start = time.perf_counter()
        self.epoch = epoch
        self.due = Every(logs["batches"], 100)  # redraw about a hundred times an epoch

    def on_batch_end(self, batch, logs):
        total = logs["batches"]
        if not self.stream.isatty() or not self.due(batch):
            return
        filled = int(self.width * batch / total)
        elapsed = time.perf_counter() - self.start
        eta = elapsed / batch * (total - batch)
        self.stream.write(
            f"\repoch {self.epoch}/{self.epochs} [{'=' * filled}{'.' * (self.width - filled)}] "
            f"{batch}/{total} loss {logs['loss']:.4f} acc {logs['accuracy']:.4f} eta {eta:4.0f}s"
        )
        self.stream.flush()

    def on_epoch_end(self, epoch, logs):
        extra = "".join(f" {k} {logs[k]:.4f}" for k in ("val_loss", "val_accuracy") if k in logs)
        if not self.stream.isatty():  # no redrawn line was written: print the whole summary
            self.stream.write(f"epoch {epoch}/{self.epochs} loss {logs['loss']:.4f} acc {logs['accuracy']:.4f}")
        self.stream.write(f" {logs['seconds']:.1f}s{extra}\n")
        self.stream.flush()


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
