"""The engine's threads: every core works on every layer.

NumPy runs its element-wise operations, gathers and reductions on one core; only matrix products
(BLAS) use several. On a small machine that leaves most cores idle for most of a convolutional
network's training step. Letting BLAS start threads of its own does not fix it and costs more:
OpenBLAS keeps its threads spinning for a while after every product, so work started on another
core right after a product fights them for that core, and arrays one core writes just after
another core's BLAS thread read them bounce between the cores' caches.

So while a model trains or predicts, the engine takes the threads itself (`engine_threads`): BLAS
runs one thread per call, and the kernels (`digitlab.nn.kernels`) cut their heavy work (gathers,
products, element-wise passes) into one contiguous slice of the batch per core, run at once
(`split`). NumPy releases the GIL inside each of these calls, so the slices really run in
parallel. BENCHMARKS.md has what this gained.

Results do not depend on the number of threads except for the order of floating-point sums in the
few reductions that add per-slice partial results (bias, weight and batch-norm sums).
"""

from __future__ import annotations

import functools
import os
import threading
from contextlib import contextmanager
from typing import Callable, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

T = TypeVar("T")

# Below this much work (floats touched by element-wise passes) a slice is not worth a thread:
# handing one over and waiting for it costs more than the slice saves. Chosen by timing training
# with several values (BENCHMARKS.md).
MIN_WORK = 1 << 16
# Matrix products count their multiply-adds divided by this: a product smaller than about 8
# million multiply-adds runs whole, on one core.
GEMM_WORK = 128


def _default_threads() -> int:
    setting = os.environ.get("DIGITLAB_THREADS", "")
    if setting.isdigit() and int(setting) > 0:
        return int(setting)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, 8))


THREADS = _default_threads()  # slices per operation at most; DIGITLAB_THREADS overrides


def set_threads(count: int) -> None:
    """Cut the engine's work into at most ``count`` slices from now on (what DIGITLAB_THREADS sets
    at import): a process that shares the machine with others of its kind, such as one of several
    Dask workers, takes its share of the cores rather than all of them."""
    global THREADS
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"the number of engine threads must be an integer >= 1; got {count!r}")
    THREADS = count


class _Worker:
    """A thread that runs one slice at a time, handed over through two locks: a quarter of the
    hand-over time of a ThreadPoolExecutor's futures."""

    def __init__(self) -> None:
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task: tuple = ()
        self._outcome: tuple = ()
        threading.Thread(target=self._serve, name="digitlab-engine", daemon=True).start()

    def _serve(self) -> None:
        _local.in_worker = True
        while True:
            self._go.acquire()
            fn, lo, hi = self._task
            try:
                self._outcome = (fn(lo, hi), None)
            except BaseException as error:  # handed to the caller, raised there
                self._outcome = (None, error)
            self._done.release()

    def start(self, fn, lo: int, hi: int) -> None:
        self._task = (fn, lo, hi)
        self._go.release()

    def finish(self) -> tuple:
        """(result, error) of the slice, once it has run."""
        self._done.acquire()
        return self._outcome


_workers: list[_Worker] = []
_workers_pid = 0  # a forked child has none of its parent's threads: it starts its own
_workers_busy = threading.Lock()  # one caller at a time uses the workers; others run unsliced
_local = threading.local()


def _get_workers(count: int) -> list[_Worker]:
    global _workers, _workers_pid
    if _workers_pid != os.getpid():
        _workers, _workers_pid = [], os.getpid()
    while len(_workers) < count:
        _workers.append(_Worker())
    return _workers[:count]


def slices(n: int, work_per_item: float = 1.0) -> list[tuple[int, int]]:
    """Contiguous (lo, hi) slices covering range(n): one per thread, fewer when the work is small."""
    count = int(min(THREADS, n, n * work_per_item // MIN_WORK))
    if count <= 1 or getattr(_local, "in_worker", False):
        return [(0, n)]
    bounds = [n * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def split(fn: Callable[[int, int], T], n: int, work_per_item: float = 1.0) -> list[T]:
    """Run ``fn(lo, hi)`` on the `slices` of range(n) at once, the calling thread taking the first;
    returns the results in slice order. Every slice has finished when it returns, even when one
    raised (the slices write into shared arrays). While another thread of the program is using
    the workers, the call runs whole in the calling thread."""
    parts = slices(n, work_per_item)
    if len(parts) == 1 or not _workers_busy.acquire(blocking=False):
        return [fn(0, n)]
    try:
        workers = _get_workers(len(parts) - 1)
        for worker, (lo, hi) in zip(workers, parts[1:]):
            worker.start(fn, lo, hi)
        try:
            first = fn(*parts[0])
        finally:
            outcomes = [worker.finish() for worker in workers]
    finally:
        _workers_busy.release()
    for _, error in outcomes:
        if error is not None:
            raise error
    return [first, *(result for result, _ in outcomes)]


def split_sum(fn: Callable[[int, int], T], n: int, work_per_item: float = 1.0) -> T:
    """`split`, then the slices' results added up: each an array (partial sums over the slice's
    rows), or a tuple of arrays added item by item."""
    parts = split(fn, n, work_per_item)
    if isinstance(parts[0], tuple):
        return tuple(functools.reduce(np.add, items) for items in zip(*parts))
    return functools.reduce(np.add, parts)


_blas: ThreadpoolController | None = None


@contextmanager
def engine_threads():
    """Hold BLAS to one thread per call inside the block: the kernels `split` their work instead.
    Several threads may be inside at once (threadpoolctl lets one of them control BLAS's pool)."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController()  # finds the BLAS libraries loaded (NumPy's), once
    with _blas.limit(limits=1, user_api="blas"):
        yield


def using_engine_threads(method):
    """Decorator: run ``method`` inside `engine_threads`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with engine_threads():
            return method(*args, **kwargs)

    return wrapper
