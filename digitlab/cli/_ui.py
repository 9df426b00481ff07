"""Terminal output shared by the sub-commands: consoles and progress bars (rich)."""

from __future__ import annotations

import contextlib
import sys
from typing import Callable, Iterator

from rich.console import Console

from ..nn.callbacks import Callback, Every, ProgressBar
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

# Tables stay readable when output goes to a file or CI log (rich would assume 80 columns there).
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)


@contextlib.contextmanager
def progress_bar(kind: str = "download") -> Iterator[Callable[[str, int, "int | None"], None]]:
    """Yield ``report(name, done, total)``; each new name gets its own bar (on stderr)."""
    columns = [TextColumn("{task.description:26s}"), BarColumn(), DownloadColumn(),
               TransferSpeedColumn(), TimeRemainingColumn()]
    tasks: dict[str, int] = {}
    with Progress(*columns, console=err_console, transient=False) as progress:

        def report(name: str, done: int, total: int | None) -> None:
            if name not in tasks:
                tasks[name] = progress.add_task(name, total=total)
            progress.update(tasks[name], completed=done, total=total)

        yield report


def training_progress() -> Callback:
    """The CLI's progress for `Sequential.fit`: a rich bar on a terminal. Written to a file or a
    pipe, where a redrawn bar would only appear at the end, `ProgressBar`'s plain line as each
    epoch ends, so a long run's log shows how far it has got."""
    return TrainingProgress() if err_console.is_terminal else ProgressBar(err_console.file)


class TrainingProgress(Callback):
    """A rich progress bar for `Sequential.fit`: one line per epoch with loss, accuracy and ETA."""

    def __init__(self, console: Console = err_console):
        from rich.progress import MofNCompleteColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("epoch {task.fields[epoch]:>3}/{task.fields[epochs]}"), BarColumn(),
            MofNCompleteColumn(), TextColumn("loss {task.fields[loss]:.4f}  acc {task.fields[acc]:.4f}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=False,
        )

    def on_train_begin(self, logs):
        self.epochs = logs["epochs"]
        self.progress.start()

    def on_epoch_begin(self, epoch, logs):
        self.task = self.progress.add_task("", total=logs["batches"], epoch=epoch, epochs=self.epochs, loss=0.0, acc=0.0)
        self.due = Every(logs["batches"], 200)

    def on_batch_end(self, batch, logs):
        if self.due(batch):
            self.progress.update(self.task, completed=batch, loss=logs["loss"], acc=logs["accuracy"])

    def on_train_end(self, logs):
        self.progress.stop()
