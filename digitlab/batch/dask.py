"""Batch prediction on Dask (``dask.distributed``): digitlab runs its partitions as Dask tasks
rather than building a cluster of its own. Needs the ``batch`` extra: ``pip install
'digitlab[batch]'``.

- `local_cluster(n)`: a Dask cluster of ``n`` worker processes on this machine; `connect(address)`:
  a running one (its workers need digitlab installed, and read the inputs from storage they share
  with the client: relative paths are taken from the client's working folder).
- `DaskRunner(client)`: the runner `predict_to_file` and `predict_rows` take to run each partition
  as one task (`digitlab.batch.run.predict_partition`): reading, `find_digit` and inference happen in
  the workers; the client only lists the inputs and writes what comes back (a part's encoded
  rows, about 100 bytes an image).
- `predict_dask(model, collection)`: for code that already lives in Dask: a lazy collection of
  predictions from a dask array of images, or a bag or dataframe of paths.

The model travels once: its file's bytes are scattered to every worker (`Client.scatter`, a
``ModelRef``), and each worker process loads it once (`worker_model`, keyed by a digest of the
weights) for every partition it runs, also after the worker is restarted.

Threads: a worker runs one partition per Dask thread, so inside a worker the engine and OpenCV
take one thread each unless the worker's environment sets DIGITLAB_THREADS; `local_cluster` sets
it to the cores divided by the workers' threads (the engine's other devices are unchanged). Dask's
nanny already holds OpenMP, MKL and OpenBLAS to one thread, and the engine holds BLAS to one
thread while it predicts.

Exactly once: a task whose worker dies is run again elsewhere by Dask; its result reaches the
client once, as its future's result, and the client writes its part atomically under the
partition's index. A part written before the death and written again holds the same rows. A
partition that kills `distributed.scheduler.allowed-failures` workers (3) stops the run with an
error; the parts written are kept for ``--resume``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections import deque
from typing import Iterable, Iterator

import numpy as np

try:
    import dask
    from distributed import Client, KilledWorker, LocalCluster, as_completed
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("digitlab.batch.dask needs Dask: pip install 'digitlab[batch]'") from e

from ..errors import DigitlabError, ModelError
from .run import (
    COLUMNS,
    PARTITION_SIZE,
    Job,
    ModelRef,
    _set_up_process,
    model_ref,
    partitions,
    predict_partition,
    read_partition,
    worker_model,
)
from .sources import Source, iter_sources


def cores() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


# Dask keeps, for its developers, the last `distributed.admin.low-level-log-length` (1,000)
# messages of every connection. Each task message holds its partition's sources, so on the
# client (and on the scheduler, which a local cluster runs in the client's process) those logs
# would keep the inputs of up to a thousand finished partitions alive: memory growing with the
# run, and Python's garbage collector walking the objects again and again. Ten are enough to
# read a broken connection's last words (the setting bounds the scheduler's transition and event
# logs too).
RECENT_MESSAGES = {"distributed.admin.low-level-log-length": 10}


@contextlib.contextmanager
def local_cluster(workers: int, threads_per_worker: int = 1, **kwargs) -> Iterator[Client]:
    """A `Client` of a new Dask cluster of ``workers`` processes on this machine (loopback only,
    no dashboard), closed on leaving. Each worker's engine takes
    ``cores() // (workers * threads_per_worker)`` threads (at least 1). ``kwargs`` go to
    `distributed.LocalCluster`."""
    if workers < 1:
        raise DigitlabError(f"--workers must be at least 1; got {workers}")
    engine = max(1, cores() // (workers * threads_per_worker))
    settings = dict(n_workers=workers, threads_per_worker=threads_per_worker, processes=True, host="127.0.0.1",
                    dashboard_address=None, silence_logs=logging.ERROR, env={"DIGITLAB_THREADS": str(engine)},
                    # no dashboard; the scheduler's health routes on a free loopback port, not 8787
                    scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
    # The workers' statistical profiler (a stack sample every 10 ms, for the dashboard, which is
    # off) costs the partitions' Python code several per cent: off, for as long as the cluster
    # lives (a nanny hands its config, which refers to this one, to the workers it restarts).
    with dask.config.set({"distributed.worker.profile.enabled": False, **RECENT_MESSAGES}), \
            LocalCluster(**{**settings, **kwargs}) as cluster, Client(cluster) as client:
        yield client


@contextlib.contextmanager
def connect(address: str, timeout: str = "10s") -> Iterator[Client]:
    """A `Client` of the running Dask scheduler at ``address`` (``tcp://HOST:PORT``), or a
    `DigitlabError` saying it cannot be reached."""
    try:
        with dask.config.set(RECENT_MESSAGES):
            client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as e:
        raise DigitlabError(f"cannot reach the Dask scheduler at {address} ({e})") from None
    with client:
        yield client


class DaskRunner:
    """Run partitions as Dask tasks, at most ``window`` at a time (default: twice the cluster's
    threads), so the client holds a bounded number of partitions whatever the number of inputs.
    Earlier partitions get a higher priority. A runner for `predict_to_file` and `predict_rows`."""

    def __init__(self, client: Client, window: int | None = None):
        self.client, self.window = client, window

    def __call__(self, model, job: Job, parts: Iterable[tuple[int, list[Source]]], ordered: bool = False):
        client = self.client
        # A key of its own, not the data's hash: with the same model, a run just before releases
        # its copy as this one is sent, and the scheduler would forget the key this run needs.
        [shared] = client.scatter([model_ref(model)], broadcast=True, hash=False)
        window = self.window or max(4, 2 * sum(client.nthreads().values()))
        token = uuid.uuid4().hex[:12]
        parts = iter(parts)
        running: dict = {}  # future -> (index, sources)
        order: deque[int] = deque()  # indices in the order submitted (for ``ordered``)
        finished: dict[int, tuple] = {}  # done, waiting for an earlier one (``ordered``)
        queue = as_completed()

        def fill() -> None:
            while len(running) + len(finished) < window:
                item = next(parts, None)
                if item is None:
                    return
                index, sources = item
                future = client.submit(predict_partition, shared, sources, job, priority=-index,
                                       key=f"digitlab-partition-{token}-{index}")
                running[future] = item
                order.append(index)
                queue.add(future)

        try:
            fill()
            for future in queue:
                index, sources = running.pop(future)
                part = _result(future, index, sources)
                future.release()
                if not ordered:
                    yield index, sources, part
                else:
                    finished[index] = (sources, part)
                    while order and order[0] in finished:
                        first = order.popleft()
                        yield first, *finished.pop(first)
                fill()
        finally:
            if running:
                client.cancel(list(running))
            shared.release()


def _result(future, index: int, sources: list[Source]):
    try:
        return future.result()
    except KilledWorker as e:
        raise DigitlabError(f"partition {index} (from {sources[0]}) was lost: {e}; the parts written are "
                            "kept, and --resume continues") from None
    except ImportError as e:
        raise DigitlabError(f"the Dask workers cannot run digitlab ({e}): install it where they run, "
                            "pip install 'digitlab[batch]'") from None


# ------------------------------------------------------------------- Dask collections in, out


def predict_dask(model, collection, *, threshold: float = 0.0, column: str | None = None,
                 split: str = "test", data_dir: str | None = None):
    """Predictions over a Dask collection, as a lazy Dask collection (nothing runs until it is
    computed). ``model``: a `Sequential` or a model file; it enters the graph once, as its file's
    bytes, and each worker process loads it once.

    - a dask array of images, N x 28 x 28 (the model's input shape), uint8 0..255 as MNIST: a dask
      array N x 10 of float32 probabilities, chunked as the images are along N (``.argmax(axis=1)``
      gives the digits). The images go to the model as they are, like a dataset's.
    - a dask bag of inputs (paths, folders, archives, datasets, `Source` objects): a bag of row
      dicts (`digitlab.batch.run.Row` fields), one per image, read as `predict_rows` reads them.
    - a dask dataframe with a ``column`` of such inputs, or a dask series of them: a dask dataframe
      of rows (needs pandas).

    Relative paths are taken from this process's working folder.
    """
    ref = model_ref(model)
    shared = dask.delayed(ref, pure=True, traverse=False)
    job = Job("rows", threshold, os.getcwd())
    import dask.array as da
    import dask.bag as db

    if isinstance(collection, da.Array):
        return _predict_array(ref, shared, collection)
    if isinstance(collection, db.Bag):
        return collection.map_partitions(_bag_rows, shared, job, split, data_dir)
    if type(collection).__module__.startswith(("dask.dataframe", "dask_expr")):
        import dask.dataframe as dd

        series = collection[column] if column is not None else collection
        if not isinstance(series, dd.Series):
            raise DigitlabError("give column= to say which column of the dataframe holds the inputs")
        return series.map_partitions(_frame_rows, shared, job, split, data_dir, meta=_frame_meta())
    raise DigitlabError(f"expected a dask array, bag or dataframe; got {type(collection).__name__}")


def _predict_array(ref: ModelRef, shared, images):
    shape = tuple(worker_model(ref).input_shape)
    if images.ndim != 1 + len(shape) or tuple(images.shape[1:]) != shape:
        raise ModelError(f"expected images N x {' x '.join(map(str, shape))}; got a dask array of shape {images.shape}")
    classes = worker_model(ref).output_shape[-1]
    images = images.rechunk({axis: -1 for axis in range(1, images.ndim)})
    return images.map_blocks(_block_probabilities, shared, dtype=np.float32,
                             drop_axis=list(range(2, images.ndim)), chunks=(images.chunks[0], (classes,)),
                             meta=np.empty((0, classes), np.float32))


def _block_probabilities(block: np.ndarray, model: ModelRef) -> np.ndarray:
    _set_up_process()
    return worker_model(model).predict_proba(block)


def _rows(elements, model: ModelRef, job: Job, split: str, data_dir):
    _set_up_process()
    net = worker_model(model)
    sources = iter_sources(elements, split, data_dir, root=job.root)
    for _, chunk in partitions(sources, PARTITION_SIZE):
        yield from read_partition(net, chunk, job.threshold, job.root)


def _bag_rows(elements, model, job, split, data_dir) -> list[dict]:
    return [row._asdict() for row in _rows(elements, model, job, split, data_dir)]


def _frame_meta():
    import pandas as pd

    return pd.DataFrame({name: pd.Series(dtype="float64" if name == "probability" else object) for name in COLUMNS})


def _frame_rows(series, model, job, split, data_dir):
    import pandas as pd

    rows = list(_rows(list(series), model, job, split, data_dir))
    frame = pd.DataFrame(rows, columns=list(COLUMNS))
    return frame.astype({name: "float64" if name == "probability" else object for name in COLUMNS})


__all__ = ["DaskRunner", "connect", "cores", "local_cluster", "predict_dask"]
