"""What the sub-commands share: consoles, progress display, and the options several commands take."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path
from typing import Annotated, Callable, Iterator, Optional, TextIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from .._files import ensure_writable
from ..nn import Callback

# Tables stay readable when output goes to a file or CI log (rich would assume 80 columns there).
console = Console(width=None if sys.stdout.isatty() else 120)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 120)

# Options several commands take, defined once.
DataDir = Annotated[Optional[Path], typer.Option(
    help="Folder holding the four MNIST files (default: $DIGITLAB_DATA_DIR, then the cache).")]
Limit = Annotated[Optional[int], typer.Option("--limit", min=1, help="Use only the first N test images.")]

# The most --epochs a command takes: a typo's 10000000000 is refused at once rather than run.
MAX_EPOCHS = 100_000


def writable(path: Optional[Path], folder: bool = False) -> Optional[Path]:
    """``path`` (None passes), once `ensure_writable` has checked that the command will be able to
    write it: called before the work, so a run does not end in an unwritable destination."""
    return path if path is None else ensure_writable(path, folder)


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


class ImagesPerSecond(ProgressColumn):
    """The rate of a progress bar counting images."""

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} images/s" if speed else "- images/s", style="progress.data.speed")


class ImageProgress:
    """A progress bar for images done (on stderr, only on a terminal): count, images/s, time
    elapsed and time left. ``advance(n)`` adds done images; ``total(n)`` sets the total once it is
    known (it may be counted while the work goes). Use as a context manager."""

    def __init__(self, description: str = "predicting"):
        self.shown = err_console.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 ImagesPerSecond(), TimeElapsedColumn(), TimeRemainingColumn(),
                                 console=err_console, transient=False, disable=not self.shown)
        self.task = self.progress.add_task(description, total=None)

    def __enter__(self) -> "ImageProgress":
        self.progress.start()
        return self

    def __exit__(self, *exc) -> None:
        self.progress.stop()

    def advance(self, n: int) -> None:
        self.progress.advance(self.task, n)

    def total(self, n: int) -> None:
        self.progress.update(self.task, total=n)


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


def training_progress() -> Callback:
    """The CLI's progress for training: a rich bar on a terminal. Written to a file or a pipe,
    where a redrawn bar would only appear at the end, `ProgressBar`'s plain line as each epoch
    ends, so a long run's log shows how far it has got."""
    return TrainingProgress() if err_console.is_terminal else ProgressBar(err_console.file)


class ProgressBar(Callback):
    """A plain-text progress line per epoch, for logs, scripts and notebooks: redrawn during the
    epoch on a terminal, one line per epoch elsewhere."""

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


class TrainingProgress(Callback):
    """A rich progress bar for training: one line per epoch with loss, accuracy and ETA."""

    def __init__(self, console: Console = err_console):
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
