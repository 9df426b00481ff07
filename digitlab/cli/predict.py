"""``digitlab predict``: read digits in your own images, a few as a table or any number as rows of
CSV, JSON Lines or Parquet (on Dask with --workers or --scheduler); or look at one test image."""

from __future__ import annotations

import contextlib
import threading
from itertools import islice
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer
from rich.markup import escape
from rich.table import Table

from ..batch import PARTITION_SIZE, count_sources, iter_sources, predict_to_file
from ..batch.output import check_output
from ..errors import DigitlabError
from ..modelfile import load_model
from ._ui import DataDir, ImageProgress, console, err_console, writable

TABLE_ROWS = 20  # with no --output, up to this many images print as a table; more as CSV


def predict(
    model: Path = typer.Argument(..., help="Model file (.npz)."),
    inputs: Optional[List[str]] = typer.Argument(
        None, metavar="[INPUT]...", show_default=False,
        help="Images (PNG, JPEG, ...), folders (walked recursively), glob patterns, tar or zip archives of "
             "images, datasets (mnist, digits, an MNIST folder, IDX, Keras .npz, .csv)."),
    output: Optional[str] = typer.Option(
        None, "--output", "-o", help="Write one row per image to this .csv, .jsonl or .parquet file ('-': CSV on "
                                     "standard output). Without it, a few images print as a table, more as CSV."),
    resume: bool = typer.Option(False, help="Keep the parts an interrupted run of the same --output left; compute "
                                             "the rest."),
    workers: Optional[int] = typer.Option(None, min=1, help="Run on a local Dask cluster of N worker processes "
                                                            "(pip install 'digitlab[batch]')."),
    scheduler: Optional[str] = typer.Option(None, help="Run on the Dask cluster at tcp://HOST:PORT; its workers "
                                                       "need digitlab and the inputs on shared storage."),
    partition_size: int = typer.Option(PARTITION_SIZE, min=1, help="Images per partition (one task, one part file)."),
    split: str = typer.Option("test", help="The split of a dataset that has them (mnist, digits, .npz)."),
    index: Optional[int] = typer.Option(None, "--index", "-i", min=0, help="Predict this test-set image instead."),
    number: bool = typer.Option(False, "--number", "-n", help="Each image holds a written number: split it into digits."),
    show: Optional[Path] = typer.Option(None, help="Write a PNG of each input next to what the network saw."),
    threshold: float = typer.Option(0.0, min=0.0, max=1.0, help="Answer '?' when the top probability is below this."),
    data_dir: DataDir = None,
) -> int:
    """Read digits in your own images (photos, scans, drawings), or a test-set image with --index.

    Each image is turned into an MNIST-like 28x28 digit first (grey, ink made white, cropped,
    fitted into 20x20, centred by its centre of mass): see digitlab.vision. Dataset images are
    MNIST-like already and go to the model as they are. Every input gets one row, with the reason
    when it cannot be read; the exit status is 1 when some could not be.
    """
    batch = output is not None or workers is not None or scheduler is not None or resume
    if not inputs:
        if batch:
            raise typer.BadParameter("give the images to read", param_hint="INPUT")
        writable(show)
        return _predict_test_image(load_model(model), index or 0, data_dir)
    if workers is not None and scheduler is not None:
        raise typer.BadParameter("give --workers (a local cluster) or --scheduler (a running one), not both")
    if batch and (number or show):
        raise typer.BadParameter("--number and --show are for the table of a few images; "
                                 "not with --output, --resume, --workers or --scheduler")
    writable(show)
    net = load_model(model)
    if not batch:
        listed = iter_sources(inputs, split, data_dir)
        first = list(islice(listed, TABLE_ROWS + 1))
        if number or show:
            return _table(net, model.name, [*first, *listed], number, show, threshold)
        if len(first) <= TABLE_ROWS:
            return _table(net, model.name, first, number, show, threshold)
    output = output or "-"
    check_output(output, resume)
    with _runner(workers, scheduler) as runner, ImageProgress() as progress:
        if progress.shown:
            _count_in_background(inputs, split, data_dir, progress)
        summary = predict_to_file(model if runner else net, inputs, output, threshold=threshold,
                                  partition_size=partition_size, resume=resume, split=split, data_dir=data_dir,
                                  runner=runner, progress=progress.advance)
    if output != "-":
        kept = f" ({summary.reused:,} parts kept from the interrupted run)" if summary.reused else ""
        console.print(f"wrote {summary.rows:,} rows to {output}{kept}")
    return _errors(summary.errors, summary.rows)


@contextlib.contextmanager
def _runner(workers: int | None, scheduler: str | None):
    """None (this process runs the partitions), or a Dask runner on a local or running cluster."""
    if workers is None and scheduler is None:
        yield None
        return
    try:
        from ..batch import dask as batch_dask
    except ImportError:
        raise DigitlabError("--workers and --scheduler run on Dask: pip install 'digitlab[batch]'") from None
    cluster = batch_dask.local_cluster(workers) if workers is not None else batch_dask.connect(scheduler)
    with cluster as client:
        yield batch_dask.DaskRunner(client)


def _count_in_background(inputs, split, data_dir, progress: ImageProgress) -> None:
    """Count the inputs beside the work (listing holds nothing), so the bar can say the time left."""

    def count():
        with contextlib.suppress(Exception):  # only the bar's total: the run reports its own errors
            progress.total(count_sources(inputs, split, data_dir))

    threading.Thread(target=count, name="digitlab-count", daemon=True).start()


def _errors(errors: int, rows: int) -> int:
    """Exit status 1, with a one-line count, when some inputs could not be read."""
    if not errors:
        return 0
    err_console.print(f"{errors:,} of {rows:,} images could not be read: the error column says why", highlight=False)
    return 1


def _table(net, model_name: str, sources: list, number: bool, show: Optional[Path], threshold: float) -> int:
    """A few images as a table, whole names kept (long ones wrap); an image that cannot be read
    gets its reason on its row."""
    from ..batch import Reader
    from ..vision import open_image, read, read_digits

    lines, errors = [], 0
    originals, boxes, seen, answers = [], [], [], []
    with Reader() as reader:
        for source in sources:
            try:
                loaded = source.load(reader)
                if isinstance(loaded, np.ndarray):  # a dataset's image: MNIST-like already
                    reading = read_digits(net, loaded[None], threshold)
                else:
                    reading = read(net, loaded, number=number, threshold=threshold)
            except Exception as e:  # noqa: BLE001 - as in a batch: the row says why, the others go on
                reason = str(e) if isinstance(e, DigitlabError) else \
                    f"unexpected error reading this image ({type(e).__name__}: {e})"
                lines.append((str(source), "[red]-[/]", f"[red]{escape(reason)}[/]"))
                errors += 1
                continue
            top = ["  ".join(f"{d}:{p:.0%}" for d, p in row) for row in reading.top(3)]
            lines.append((str(source), f"[bold]{reading.text}[/]", "\n".join(top)))
            if show:
                thumbnail = open_image(loaded).convert("L") if not isinstance(loaded, np.ndarray) else \
                    _array_image(loaded)
                scale = 400 / max(thumbnail.size)
                if scale < 1:
                    thumbnail.thumbnail((400, 400))
                originals.append(thumbnail)
                boxes.append(np.empty((0, 4)) if reading.boxes is None else reading.boxes * min(scale, 1.0))
                seen.append(reading.digits)
                answers.append(reading.text)
    table = Table(title=f"{model_name}: {len(sources)} image(s)", title_justify="left")
    table.add_column("image", overflow="fold")
    table.add_column("answer")
    table.add_column("top 3 per digit" if not errors else "top 3 per digit, or why it cannot be read", overflow="fold")
    for name, answer, detail in lines:
        table.add_row(escape(name), answer, detail)
    console.print(table)
    if show and originals:
        from ..plots import readings_figure

        console.print(f"wrote {readings_figure(originals, seen, answers, show, boxes)}")
    return _errors(errors, len(sources))


def _array_image(array: np.ndarray):
    from PIL import Image

    return Image.fromarray(255 - array)  # a dataset's digit is white on black: shown as ink on paper


def _predict_test_image(net, index: int, data_dir) -> int:
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
    return 0


def ascii_digit(image: np.ndarray) -> str:
    """A greyscale digit as text, two characters per pixel so it keeps its shape."""
    ramp = " .:-=+*#%@"
    ink_rows = np.flatnonzero(image.max(axis=1) > 0)
    if len(ink_rows):  # drop the empty margin above and below the digit
        image = image[max(0, ink_rows[0] - 1) : ink_rows[-1] + 2]
    return "\n".join("".join(ramp[int(v) * 10 // 256] * 2 for v in row) for row in image)
