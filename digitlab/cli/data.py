"""``digitlab data info|show|download``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.table import Table

from .. import recipes
from ..data import Dataset, download_mnist, has_splits, load_dataset
from ._ui import DataDir, console, progress_bar, writable

app = typer.Typer(help="Look at and fetch datasets.", no_args_is_help=True)

DATASET_HELP = "mnist, digits (scikit-learn 8x8), or a path: MNIST folder, image folder, .npz, .csv"


def _splits(dataset: str, data_dir) -> list[Dataset]:
    if has_splits(dataset):
        return [load_dataset(dataset, split, data_dir) for split in ("train", "test")]
    return [load_dataset(dataset, "all", data_dir)]


@app.command()
def info(
    dataset: str = typer.Option("mnist", "--dataset", "-d", help=DATASET_HELP),
    data_dir: DataDir = None,
) -> None:
    """Counts per split and per class, image size and pixel statistics, as a table."""
    parts = _splits(dataset, data_dir)
    summary = Table(title=f"dataset: {dataset}", title_justify="left")
    for name in ("split", "images", "size", "pixel mean", "pixel std", "ink pixels"):
        summary.add_column(name, justify="left" if name == "split" else "right")
    for part in parts:
        h, w = part.image_shape
        pixels = part.images
        summary.add_row(part.name, f"{len(part):,}", f"{h}x{w}", f"{pixels.mean():.1f}",
                        f"{pixels.std():.1f}", f"{np.count_nonzero(pixels) / pixels.size:.1%}")
    console.print(summary)
    per_class = Table(title="images per class", title_justify="left")
    per_class.add_column("digit", justify="right")
    for part in parts:
        per_class.add_column(part.name, justify="right")
    counts = [part.class_counts() for part in parts]
    for digit in range(10):
        per_class.add_row(str(digit), *(f"{c[digit]:,} ({c[digit] / c.sum():.1%})" for c in counts))
    console.print(per_class)
    for part in parts:
        console.print(f"[dim]{part.name}: {part.source}[/]")


@app.command()
def show(
    dataset: str = typer.Option("mnist", "--dataset", "-d", help=DATASET_HELP),
    split: str = typer.Option("train", help="train or test (datasets that have splits)."),
    n: int = typer.Option(64, "--n", min=1, max=1024, help="How many images to draw."),
    start: int = typer.Option(0, min=0, help="Index of the first image."),
    out: Path = typer.Option(Path("mnist-samples.png"), "--out", "-o", help="PNG file to write."),
    data_dir: DataDir = None,
    augment: Optional[str] = typer.Option(
        None, help="Draw the images as this recipe's training distorts them: "
                   f"{', '.join(name for name, r in recipes.RECIPES.items() if r.augment)}."),
    seed: int = typer.Option(0, min=0, help="Seed of the distortions drawn with --augment."),
) -> None:
    """Draw a labelled grid of images to a PNG file."""
    from ..data import Augment
    from ..plots import sample_grid

    settings = None
    if augment is not None:
        settings = recipes.get_recipe(augment).augment
        if not settings:
            raise typer.BadParameter(f"recipe {augment!r} trains on undistorted images", param_hint="--augment")
    writable(out)
    part = load_dataset(dataset, split if has_splits(dataset) else "all", data_dir)
    chosen = part[start : start + n]
    if len(chosen) == 0:
        raise typer.BadParameter(f"start {start} is past the last image ({len(part) - 1})", param_hint="--start")
    images, title = chosen.images, f"{part.name}, images {start}..{start + len(chosen) - 1}"
    if settings:
        images = Augment(**settings)(images, np.random.default_rng(seed))
        title += f", as {augment} distorts them (seed {seed})"
    path = sample_grid(images, chosen.labels, out, title=title)
    console.print(f"wrote {path} ({len(chosen)} images)")


@app.command()
def download(
    dest: Optional[Path] = typer.Option(None, help="Folder to download into (default: the cache)."),
) -> None:
    """Download the four MNIST files from public mirrors, verify their sha256, store them in the cache."""
    writable(dest, folder=True)
    with progress_bar("download") as report:
        folder = download_mnist(dest, progress=report)
    console.print(f"MNIST is in {folder}")
