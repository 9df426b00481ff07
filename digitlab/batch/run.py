"""Predicting over many inputs: a partition of sources in, one `Row` per source out.

`predict_partition` is the unit of work, the same in a plain process, a process pool and a Dask
worker: read each source (errors kept per row), turn each picture into an MNIST-like digit
(`digitlab.vision.find_digit`; dataset items are MNIST-like already and go as they are), then one
batched `predict_proba` for the partition. `predict_rows` yields rows in order; `predict_to_file`
writes them as resumable parts (`digitlab.batch.output`). Where the partitions run is a runner's
business: `run_serial` here, `digitlab.batch.dask.DaskRunner` on a Dask cluster.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Union

import numpy as np

from ..errors import DigitlabError
from ..modelfile import load_model, save_model
from ..nn import Sequential
from ..vision import find_digit
from .sources import Reader, Source, iter_sources, readable

PARTITION_SIZE = 1000  # images per partition: about a second of work, one task, one part file


class Row(NamedTuple):
    """The result for one input.

    Attributes:
        source: the image file, the archive, or the dataset (with ``:split`` when it has splits).
        item: the archive member, or the image's index in the dataset; "" for a plain file.
        answer: the digit read ("7"), "?" when its probability is below the threshold; None when
            the input could not be read.
        probability: the answer's probability (the top one); None with an error.
        top3: the three most probable digits, ((digit, probability), ...); None with an error.
        error: why the input could not be read (not an image, truncated, too large, blank...);
            None when it was.
    """

    source: str
    item: str
    answer: Optional[str]
    probability: Optional[float]
    top3: Optional[tuple]
    error: Optional[str]


COLUMNS = Row._fields


def read_partition(model: Sequential, sources: list[Source], threshold: float = 0.0,
                   root: str | None = None) -> list[Row]:
    """One `Row` per source, in order. Each source is read and found (`find_digit`) on its own,
    its error caught into its row; the digits found are predicted in one batch."""
    shape = tuple(model.input_shape)
    digits = np.empty((len(sources), *shape), np.uint8)
    found: list[int] = []
    errors: dict[int, str] = {}
    with Reader(root) as reader:
        for i, source in enumerate(sources):
            try:
                digit = _digit(source.load(reader), shape)
            except DigitlabError as e:
                errors[i] = str(e)
            except Exception as e:  # a fault of one input must not lose the others: keep it in its row
                errors[i] = f"unexpected error reading this image ({type(e).__name__}: {e})"
            else:
                digits[len(found)] = digit
                found.append(i)
    probs = model.predict_proba(digits[: len(found)]) if found else np.empty((0, 10), np.float32)
    top = np.argsort(-probs, axis=1, kind="stable")[:, :3]
    results = {i: (p, t) for i, p, t in zip(found, probs, top)}
    rows = []
    for i, source in enumerate(sources):
        name, item = readable(source.source), readable(source.item)
        if i in errors:
            rows.append(Row(name, item, None, None, None, readable(errors[i])))
            continue
        p, t = results[i]
        best = float(p[t[0]])
        answer = str(int(t[0])) if best >= threshold else "?"
        rows.append(Row(name, item, answer, best, tuple((int(d), float(p[d])) for d in t), None))
    return rows


def _digit(loaded, shape: tuple) -> np.ndarray:
    """The model's input for one loaded source: a dataset's array as it is (MNIST-like already:
    running `to_mnist` again would re-crop and re-centre it); a picture through `find_digit`."""
    if isinstance(loaded, np.ndarray):
        if loaded.shape != shape:
            raise DigitlabError(f"image is {'x'.join(map(str, loaded.shape))}; the model takes "
                                f"{'x'.join(map(str, shape))}")
        return loaded
    if shape != (28, 28):
        raise DigitlabError(f"the model takes {'x'.join(map(str, shape))} images: pictures are read as 28x28, "
                            "so only a dataset of its own size can be read with it")
    return find_digit(loaded).image


# ------------------------------------------------------------------------ the model per process


@dataclass(frozen=True)
class ModelRef:
    """A model as a worker gets it: its file's bytes, and ``key``, a digest of its architecture
    and weights. A process loads each key once (`worker_model`) and keeps it for every later
    partition."""

    key: str
    data: bytes = field(repr=False)

    def __dask_tokenize__(self):
        return self.key


def model_key(model: Sequential) -> str:
    """A digest of ``model``'s architecture and weights: the same for a model and its file."""
    h = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True).encode())
    for array in model.get_weights():
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()[:32]


def model_ref(model: Union[Sequential, str, os.PathLike]) -> ModelRef:
    """The `ModelRef` of a model file or a `Sequential` (saved to a temporary file for its bytes)."""
    if isinstance(model, ModelRef):
        return model
    if isinstance(model, Sequential):
        with tempfile.TemporaryDirectory() as tmp:
            data = save_model(model, Path(tmp) / "model.npz").read_bytes()
        return ModelRef(model_key(model), data)
    path = Path(model)
    net = load_model(path)  # checked here, once, before any worker spends time on it
    return ModelRef(model_key(net), path.read_bytes())


_MODELS: dict[str, Sequential] = {}


def worker_model(model) -> Sequential:
    """The `Sequential` to predict with in this process: ``model`` itself, or the one a
    `ModelRef` or a path describes, loaded the first time this process sees it."""
    if isinstance(model, Sequential):
        return model
    if not isinstance(model, ModelRef):
        model = model_ref(model)
    if model.key not in _MODELS:
        with tempfile.TemporaryDirectory() as tmp:  # load_model reads files: checked as any file is
            path = Path(tmp) / "model.npz"
            path.write_bytes(model.data)
            net = load_model(path)
        if len(_MODELS) >= 4:
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[model.key] = net
    return _MODELS[model.key]


_SET_UP = False


def _set_up_process() -> None:
    """In a Dask worker, once: the engine and OpenCV take one thread per Dask thread unless
    DIGITLAB_THREADS says otherwise (several workers share a machine; each runs partitions on its
    own threads). A plain process keeps the engine's default, every core."""
    global _SET_UP
    if _SET_UP:
        return
    _SET_UP = True
    if "distributed" not in sys.modules:
        return
    try:
        from distributed import get_worker

        get_worker()
    except ValueError:  # not inside a Dask worker
        return
    configure_threads(None)


def configure_threads(count: int | None) -> None:
    """Set the engine's and OpenCV's threads in this process: ``count``, or DIGITLAB_THREADS if
    set, else 1. (BLAS is held to one thread by the engine whenever it predicts.)"""
    import cv2

    from ..nn import threads

    if count is None:
        setting = os.environ.get("DIGITLAB_THREADS", "")
        count = int(setting) if setting.isdigit() and int(setting) > 0 else 1
    threads.set_threads(count)
    cv2.setNumThreads(count)


# ----------------------------------------------------------------------------- the task


@dataclass(frozen=True)
class Job:
    """What every partition's task needs besides its sources and the model.

    ``format``: "rows" returns the `Row` list; "csv", "jsonl" or "parquet" the part's encoded bytes
    (`digitlab.batch.output.encode`), made where the rows are. ``root``: the folder relative
    paths are taken from.
    """

    format: str = "rows"
    threshold: float = 0.0
    root: str | None = None


class Part(NamedTuple):
    """A partition's result: its row count, how many of them hold an error, and ``data`` (the rows,
    or their encoding as `Job.format` says)."""

    rows: int
    errors: int
    data: object


def predict_partition(model, sources: list[Source], job: Job) -> Part:
    """The unit of work: read and predict one partition. ``model``: a `Sequential`, a `ModelRef`
    or a model path (loaded once per process)."""
    _set_up_process()
    rows = read_partition(worker_model(model), sources, job.threshold, job.root)
    errors = sum(row.error is not None for row in rows)
    if job.format == "rows":
        return Part(len(rows), errors, rows)
    from .output import encode

    return Part(len(rows), errors, encode(rows, job.format))


def partitions(sources: Iterable[Source], size: int = PARTITION_SIZE) -> Iterator[tuple[int, list[Source]]]:
    """``(index, sources)`` for consecutive runs of ``size`` sources, lazily."""
    if size < 1:
        raise DigitlabError(f"the partition size must be at least 1; got {size}")
    it = iter(sources)
    index = 0
    while chunk := list(islice(it, size)):
        yield index, chunk
        index += 1


# A runner takes (model, job, partitions, ordered) and yields (index, sources, Part) as partitions
# finish: in order when ``ordered``, else as they come. It may run them anywhere.
Runner = Callable[..., Iterator[tuple[int, list[Source], Part]]]


def run_serial(model, job: Job, parts: Iterable[tuple[int, list[Source]]], ordered: bool = True):
    """The plain runner: each partition in this process, one after the other."""
    net = worker_model(model)
    for index, sources in parts:
        yield index, sources, predict_partition(net, sources, job)


def predict_rows(model, inputs: Iterable, *, threshold: float = 0.0, partition_size: int = PARTITION_SIZE,
                 split: str = "test", data_dir: str | None = None, runner: Runner | None = None) -> Iterator[Row]:
    """One `Row` per image of ``inputs``, in the order they are listed, lazily.

    ``model``: a `Sequential` or a model file. ``inputs``: files, folders, glob patterns, tar or
    zip archives and datasets (see `digitlab.batch.sources`), and `Source` objects; any iterable,
    a generator of millions included: it is read a partition at a time. ``threshold``: answer "?"
    below this probability. ``runner``: where partitions run (default: here, one after another;
    `digitlab.batch.dask.DaskRunner(client)` on Dask).
    """
    runner = runner or run_serial
    model = model if isinstance(model, (Sequential, ModelRef)) else load_model(model)
    job = Job("rows", threshold, os.getcwd())
    listed = partitions(iter_sources(inputs, split, data_dir), partition_size)
    for _, _, part in runner(model, job, listed, ordered=True):
        yield from part.data


class Summary(NamedTuple):
    """What `predict_to_file` did: rows written, how many hold an error, parts kept from an
    earlier run (``--resume``), and where the output is."""

    rows: int
    errors: int
    reused: int
    output: str


def predict_to_file(model, inputs: Iterable, output: Union[str, os.PathLike], *, threshold: float = 0.0,
                    partition_size: int = PARTITION_SIZE, resume: bool = False, split: str = "test",
                    data_dir: str | None = None, runner: Runner | None = None,
                    progress: Callable[[int], None] | None = None) -> Summary:
    """Write one row per image of ``inputs`` to ``output`` (.csv, .jsonl or .parquet, told by the
    suffix; "-" writes CSV to standard output), in the order they are listed.

    Each partition becomes a part file, written atomically, in ``OUTPUT.parts/`` beside the
    output; when every partition is done the parts are joined, in order, into ``output`` (written
    atomically too) and the folder is removed. A run that is stopped leaves whole parts only; with
    ``resume``, the parts that match this run's partitions are kept and the rest computed. Without
    it, an unfinished run's parts folder is refused rather than overwritten.
    ``progress(n)``: called as each partition's ``n`` rows are done (or found done).
    Other arguments: as `predict_rows`. Raises `DigitlabError` for an unusable output or a resume
    that does not match the parts found.
    """
    from .output import PartStore, check_output, output_format, write_csv_stream

    runner = runner or run_serial
    fmt = output_format(output)
    if runner is run_serial:
        net = model if isinstance(model, (Sequential, ModelRef)) else load_model(model)
    else:
        net = model_ref(model)  # shipped to the workers as its file's bytes
    job = Job(fmt, threshold, os.getcwd())
    listed = partitions(iter_sources(inputs, split, data_dir), partition_size)
    advance = progress or (lambda n: None)
    if str(output) == "-":
        check_output(output, resume)
        rows, errors = write_csv_stream(runner(net, job, listed, ordered=True), sys.stdout.buffer, advance)
        return Summary(rows, errors, 0, "-")

    key = net.key if isinstance(net, ModelRef) else model_key(net)
    settings = {"model": key, "threshold": threshold, "partition_size": partition_size, "split": split}
    store = PartStore(Path(output), fmt, settings)
    store.start(resume)
    counts = [0, 0, 0]  # rows, errors, reused parts

    def todo():
        for index, sources in listed:
            done = store.reuse(index, sources)
            if done is None:
                yield index, sources
            else:
                counts[0] += done.rows
                counts[1] += done.errors
                counts[2] += 1
                advance(done.rows)

    for index, sources, part in runner(net, job, todo(), ordered=False):
        if part.rows != len(sources):  # a part holds every input of its partition, once
            raise DigitlabError(f"partition {index}: {part.rows} rows for {len(sources)} inputs")
        store.write(index, sources, part.data)
        counts[0] += part.rows
        counts[1] += part.errors
        advance(part.rows)
    store.finish()
    return Summary(counts[0], counts[1], counts[2], str(output))


__all__ = [
    "COLUMNS", "Job", "ModelRef", "PARTITION_SIZE", "Part", "Row", "Summary", "model_key", "model_ref",
    "partitions", "predict_partition", "predict_rows", "predict_to_file", "read_partition", "run_serial",
    "worker_model",
]
