"""``digitlab train``: train a recipe, show its epochs and test score, save the model file."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from .. import recipes
from ..evaluate import percent
from ..modelfile import save_model
from ._ui import MAX_EPOCHS, DataDir, console, training_progress, writable


def train(
    recipe: str = typer.Option(recipes.DEFAULT_RECIPE, "--recipe", "-r", help=f"Recipe name: {', '.join(recipes.RECIPES)}."),
    epochs: Optional[int] = typer.Option(None, min=1, max=MAX_EPOCHS, help="Epochs (default: the recipe's)."),
    batch_size: Optional[int] = typer.Option(None, min=1, help="Mini-batch size (default: the recipe's)."),
    lr: Optional[float] = typer.Option(None, min=0.0, help="Learning rate (default: the recipe's)."),
    seed: int = typer.Option(0, min=0, help="Seed for initial weights, shuffling and dropout."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Model file to write (default: models/RECIPE.npz)."),
    data_dir: DataDir = None,
) -> None:
    """Train a recipe, evaluate it on the test set and save the model file."""
    spec = recipes.get_recipe(recipe)
    out = out or Path("models") / f"{spec.name}.npz"
    if out.suffix != ".npz":
        raise typer.BadParameter("model files end in .npz", param_hint="--out")
    writable(out)
    console.print(f"[bold]{spec.name}[/]: {spec.summary}")
    result = recipes.train_recipe(spec, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                                  data_dir=data_dir, callbacks=[training_progress()])
    model = result.model
    table = Table(title=f"{spec.name}: training", title_justify="left")
    for name in ("epoch", "loss", "accuracy", "lr", "seconds"):
        table.add_column(name, justify="right")
    for e in model.history.epochs:
        table.add_row(str(e["epoch"]), f"{e['loss']:.4f}", f"{e['accuracy']:.2%}", f"{e['lr']:.3g}", f"{e['seconds']:.1f}")
    console.print(table)
    summary = Table(title="test set", title_justify="left")
    for name in ("recipe", "images", "test accuracy", "published", "test loss", "training time"):
        summary.add_column(name, justify="left" if name == "recipe" else "right")
    summary.add_row(spec.name, f"{model.metadata['metrics']['test_images']:,}", f"[bold]{percent(result.test['accuracy'])}[/]",
                    percent(spec.published), f"{result.test['loss']:.4f}", f"{result.seconds:.1f} s")
    console.print(summary)
    path = save_model(model, out)
    console.print(f"saved {path}")
