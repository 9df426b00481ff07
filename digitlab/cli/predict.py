"""``digitlab predict``: read digits in your own images, or look at one test image."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.table import Table

from ..modelfile import load_model
from ._ui import DataDir, console, writable


def predict(
    model: Path = typer.Argument(..., help="Model file (.npz)."),
    images: Optional[List[Path]] = typer.Argument(None, help="Photos, scans or drawings of digits (PNG, JPEG, ...)."),
    index: Optional[int] = typer.Option(None, "--index", "-i", min=0, help="Predict this test-set image instead."),
    number: bool = typer.Option(False, "--number", "-n", help="Each image holds a written number: split it into digits."),
    show: Optional[Path] = typer.Option(None, help="Write a PNG of each input next to what the network saw."),
    threshold: float = typer.Option(0.0, min=0.0, max=1.0, help="Answer '?' when the top probability is below this."),
    data_dir: DataDir = None,
) -> None:
    """Read digits in your own images (photos, scans, drawings), or a test-set image with --index.

    Each image is turned into an MNIST-like 28x28 digit first (grey, ink made white, cropped,
    fitted into 20x20, centred by its centre of mass): see digitlab.vision.
    """
    writable(show)
    net = load_model(model)
    if not images:
        return _predict_test_image(net, index or 0, data_dir)
    from ..vision import open_image, read

    table = Table(title=f"{model.name}: {len(images)} image(s)", title_justify="left")
    for name in ("image", "answer", "top 3 per digit"):
        table.add_column(name)
    originals, boxes, seen, answers = [], [], [], []
    for path in images:
        reading = read(net, path, number=number, threshold=threshold)
        top = ["  ".join(f"{d}:{p:.0%}" for d, p in row) for row in reading.top(3)]
        table.add_row(str(path), f"[bold]{reading.text}[/]", "\n".join(top))
        if show:
            thumbnail = open_image(path).convert("L")
            scale = 400 / max(thumbnail.size)
            if scale < 1:
                thumbnail.thumbnail((400, 400))
            originals.append(thumbnail)
            boxes.append(reading.boxes * min(scale, 1.0))
            seen.append(reading.digits)
            answers.append(reading.text)
    console.print(table)
    if show:
        from ..plots import readings_figure

        console.print(f"wrote {readings_figure(originals, seen, answers, show, boxes)}")


def _predict_test_image(net, index: int, data_dir) -> None:
    from ..evaluate import test_set_for

    test = test_set_for(net, data_dir)
    if index >= len(test):
        raise typer.BadParameter(f"the test set has {len(test)} images (0..{len(test) - 1})", param_hint="--index")
    image, label = test.images[index], int(test.labels[index])
    probs = net.predict_proba(image[None])[0]
    console.print(ascii_digit(image))
    table = Table(title=f"test image {index}: label {label}", title_justify="left")
    table.add_column("digit", justify="right")
    table.add_column("probability", justify="right")
    for k in np.argsort(probs)[::-1][:3]:
        table.add_row(f"{k}{' ✓' if k == label else ''}", f"{probs[k]:.2%}")
    console.print(table)


def ascii_digit(image: np.ndarray) -> str:
    """A greyscale digit as text, two characters per pixel so it keeps its shape."""
    ramp = " .:-=+*#%@"
    ink_rows = np.flatnonzero(image.max(axis=1) > 0)
    if len(ink_rows):  # drop the empty margin above and below the digit
        image = image[max(0, ink_rows[0] - 1) : ink_rows[-1] + 2]
    return "\n".join("".join(ramp[int(v) * 10 // 256] * 2 for v in row) for row in image)
