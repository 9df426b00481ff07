"""``digitlab reproduce``: train each tutorial recipe and print one table next to the published figures."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .. import recipes as rp
from ..evaluate import percent
from ..nn import Callback
from ._ui import DataDir, Every, console, err_console, writable


class _RecipeProgress(Callback):
    """One bar per recipe over all its batches, showing the epoch and running accuracy."""

    def __init__(self, progress: Progress, name: str):
        self.progress, self.name = progress, name

    def on_train_begin(self, logs):
        self.batches = logs["batches"]
        self.task = self.progress.add_task(self.name, total=logs["epochs"] * logs["batches"], epoch=0,
                                           epochs=logs["epochs"], acc=0.0)

    def on_epoch_begin(self, epoch, logs):
        self.epoch = epoch
        self.done = self.progress.tasks[self.task].completed
        self.due = Every(self.batches, 100)

    def on_batch_end(self, batch, logs):
        if self.due(batch):
            self.progress.update(self.task, completed=self.done + batch, epoch=self.epoch, acc=logs["accuracy"])


def reproduce(
    recipes: Optional[str] = typer.Option(
        None, "--recipes", "-r",
        help=f"Comma-separated recipes to run (default: {', '.join(rp.default_names())}); {rp.SKLEARN_TUTORIAL} is the scikit-learn tutorial."),
    quick: bool = typer.Option(False, "--quick", help="Fewer epochs per recipe (about 2 minutes in all); the figures are labelled quick."),
    seed: int = typer.Option(0, min=0, help="Seed of every recipe's training."),
    save: Optional[Path] = typer.Option(None, "--save", help="Folder to save each trained model in (NAME.npz), for digitlab evaluate."),
    data_dir: DataDir = None,
) -> None:
    """Train each tutorial recipe and print one table next to the tutorials' published figures.

    Runs every recipe with a published figure, the scikit-learn tutorial (with scikit-learn) and digitlab's comparison rows, and prints the published accuracy, ours, training time and epochs.
    """
    names = None
    if recipes is not None:
        names = [n.strip() for n in recipes.split(",") if n.strip()]
        if not names:
            raise typer.BadParameter(f"no recipe named in {recipes!r}; leave --recipes out to run them all",
                                     param_hint="--recipes")
    writable(save, folder=True)
    columns = [TextColumn("{task.description:22s}"), BarColumn(),
               TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}  acc {task.fields[acc]:.2%}"),
               TimeElapsedColumn()]
    with Progress(*columns, console=err_console, transient=True) as progress:
        rows = rp.reproduce(
            names, quick=quick, seed=seed, data_dir=data_dir, save_dir=save,
            callbacks=lambda recipe: [_RecipeProgress(progress, recipe.name)],
            on_row=lambda row: progress.console.print(
                f"{row.name}: {percent(row.accuracy)} in {row.seconds:.1f} s ({row.epochs} {'iterations' if row.engine != 'digitlab' else 'epochs'})"),
        )
    title = ("reproduce --quick: fewer epochs than the recipes (marked *), so not the tutorials' figures" if quick
             else "reproduce: the tutorials, run here")
    table = Table(title=title, title_justify="left")
    for name in ("recipe", "data (train/test)", "published", "ours", "difference", "time", "epochs"):
        table.add_column(name, justify="left" if name in ("recipe", "data (train/test)") else "right")
    for row in rows:
        diff = "—" if row.published is None else f"{100 * (row.accuracy - row.published):+.2f} pt"
        epochs = f"{row.epochs}/{row.full_epochs}" if row.quick else str(row.epochs)
        table.add_row(row.name, f"{row.dataset} {_count(row.train_images)}/{_count(row.test_images)}",
                      percent(row.published), f"[bold]{percent(row.accuracy)}[/]" + ("*" if row.quick else ""), diff,
                      f"{row.seconds:.1f} s", epochs + (" it" if row.engine != "digitlab" else ""))
    console.print(table)
    for row in rows:
        if row.path is not None:
            console.print(f"saved {row.path}")
    if any(row.engine != "digitlab" for row in rows):
        console.print("[dim]it: iterations of scikit-learn's solver (it stops when the loss stops improving)[/]")


def _count(n: int) -> str:
    return f"{n // 1000}k" if n >= 10_000 and n % 1000 == 0 else f"{n:,}"
