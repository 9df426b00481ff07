"""The training loop every trainer shares: `Sequential.fit` and the pure-Python engine's trainer
both hand it one epoch's work and get the same callbacks, history and divergence check."""

from __future__ import annotations

import math
import time
from typing import Callable, Iterable, Optional

from ..errors import ModelError
from .callbacks import Callback, CallbackList, History

# report(batch, loss, accuracy, lr): running means after a batch, for the per-batch callbacks.
Report = Callable[[int, float, float, float], None]
# epoch(e, report) -> (mean loss, accuracy, lr at its end) for 0-based epoch e of this run; report
# is None when no callback listens. Raises FloatingPointError when the loss stops being finite.
Epoch = Callable[[int, Optional[Report]], "tuple[float, float, float]"]


def run_epochs(model, epochs: int, batches: int, samples: int, epoch: Epoch,
               callbacks: Iterable[Callback] = (), validate: Callable[[], dict] | None = None) -> History:
    """Train ``model`` for ``epochs`` epochs of ``batches`` batches over ``samples`` samples.

    Each epoch: the callbacks' ``on_epoch_begin``, ``epoch(e, report)``, ``validate()`` (extra
    logs such as ``val_loss``), then one dict of logs appended to ``model.history`` and to the
    returned `History`, and ``on_epoch_end``. A callback may set ``model.stop_training``. If the
    loss stops being finite the model gets back the weights it had when the epoch began and a
    `ModelError` says so.
    """
    cbs = CallbackList(callbacks, model)
    history = History()
    model.stop_training = False
    train_logs = {"epochs": epochs, "samples": samples, "batches": batches}
    cbs.on_train_begin(train_logs)

    def report(batch, loss, accuracy, lr):
        cbs.on_batch_end(batch, {"batch": batch, "batches": batches, "loss": loss, "accuracy": accuracy, "lr": lr})

    logs: dict = dict(train_logs)
    first = len(model.history) + 1
    for e in range(epochs):
        number = first + e
        cbs.on_epoch_begin(number, train_logs)
        start = time.perf_counter()
        good_weights = model.get_weights()
        try:
            loss, accuracy, lr = epoch(e, report if cbs.wants_batches else None)
            if not math.isfinite(loss):
                raise FloatingPointError(loss)
        except FloatingPointError:
            model.set_weights(good_weights)
            raise ModelError(f"training diverged: the loss became non-finite at epoch {number}; the weights of "
                             f"the last good epoch are kept. Lower the learning rate (it was "
                             f"{model.optimizer.lr:g})") from None
        logs = {"epoch": number, "loss": loss, "accuracy": accuracy, "lr": lr}
        if validate is not None:
            logs.update(validate())
        logs["seconds"] = time.perf_counter() - start
        history.epochs.append(dict(logs))
        model.history.epochs.append(dict(logs))  # before the callbacks: a checkpoint saves it
        cbs.on_epoch_end(number, logs)
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return history
