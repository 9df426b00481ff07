"""The engine's threads: every core works on every layer.

NumPy runs its element-wise operations, gathers and reductions on one core; only matrix products
(BLAS) use several. On a small machine that leaves most cores idle for most of a convolutional
network's training step. Letting BLAS start threads of its own does not fix it and costs more:
OpenBLAS keeps its threads spinning for a while after every product, so work started on another
core right after a product fights them for that core, and arrays one core writes just after
another core's BLAS thread read them bounce between the cores' caches. On this project's 2-core
machine, gathering the second convolution's patches of cnn-fast took 0.6 ms alone and 2.3 ms right
after a multi-threaded product.

So while a model trains or predicts, the engine takes the threads itself (`engine_threads`): BLAS
runs one thread per call, and each layer cuts its heavy work (gathers, products, element-wise
passes) into one contiguous slice of the batch per core, run at once (`split`). NumPy releases the
GIL inside each of these calls, so the slices really run in parallel. For that convolution, forward
then took 1.6 ms instead of 2.1-3.7 ms, and backward 1.9 ms instead of 2.5-4.0 ms.

Results do not depend on the number of threads except for the order of floating-point sums in the
few reductions that add per-slice partial results (bias, weight and batch-norm sums).
"""

from __future__ import annotations

import functools
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Callable, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

T = TypeVar("T")

# Below this much work (floats touched, or multiply-adds) one slice is not worth a thread: handing
# a slice to the pool and waiting for it costs about 20 microseconds.
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

_pool: ThreadPoolExecutor | None = None
_pool_owner = (0, 0)  # (process id, size) the pool was made for: a forked child makes its own
_in_worker = threading.local()


def _mark_worker() -> None:
    _in_worker.active = True


def _get_pool() -> ThreadPoolExecutor:
    global _pool, _pool_owner
    owner = (os.getpid(), THREADS)
    if _pool is None or _pool_owner != owner:
        if _pool is not None and _pool_owner[0] == owner[0]:
            _pool.shutdown(wait=False)  # resized: let the old threads go
        _pool = ThreadPoolExecutor(THREADS - 1, thread_name_prefix="digitlab", initializer=_mark_worker)
        _pool_owner = owner
    return _pool


def slices(n: int, work_per_item: float = 1.0) -> list[tuple[int, int]]:
    """Contiguous (lo, hi) slices covering range(n): one per thread, fewer when the work is small."""
    count = int(min(THREADS, n, n * work_per_item // MIN_WORK))
    if count <= 1 or getattr(_in_worker, "active", False):
        return [(0, n)]
    bounds = [n * i // count for i in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:]))


def row_work(x, passes: int = 1) -> int:
    """Work per row of ``x`` (along its first axis) for ``passes`` passes over it, for `split`."""
    return passes * (x.size // max(len(x), 1))


def split(fn: Callable[[int, int], T], n: int, work_per_item: float = 1.0) -> list[T]:
    """Run ``fn(lo, hi)`` on the `slices` of range(n) at once, the calling thread taking the first;
    returns the results in slice order. Every slice has finished when it returns, even when one
    raised (the slices write into shared arrays)."""
    parts = slices(n, work_per_item)
    if len(parts) == 1:
        return [fn(0, n)]
    pool = _get_pool()
    futures = [pool.submit(fn, lo, hi) for lo, hi in parts[1:]]
    try:
        first = fn(*parts[0])
    finally:
        rest = [f.exception() for f in futures]  # waits for each
    for error in rest:
        if error is not None:
            raise error
    return [first, *(f.result() for f in futures)]


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out = a @ b`` for 2-D arrays, sliced over the threads along the larger operand: by rows
    of ``a``, or by columns of ``b``. Each thread then reads half of the larger operand and all of
    the smaller one, as a multi-threaded BLAS would arrange it."""
    (m, k), n = a.shape, b.shape[1]
    if a.size >= b.size:
        split(lambda lo, hi: np.matmul(a[lo:hi], b, out=out[lo:hi]), m, k * n / GEMM_WORK)
    else:
        split(lambda lo, hi: np.matmul(a, b[:, lo:hi], out=out[:, lo:hi]), n, m * k / GEMM_WORK)
    return out


_blas: ThreadpoolController | None = None


@contextmanager
def engine_threads():
    """Hold BLAS to one thread per call inside the block: the layers `split` their work instead."""
    global _blas
    if _blas is None:
        _blas = ThreadpoolController()  # finds the BLAS libraries loaded (NumPy's): about 1 ms, once
    with _blas.limit(limits=1, user_api="blas"):
        yield


def using_engine_threads(method):
    """Decorator: run ``method`` inside `engine_threads`."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with engine_threads():
            return method(*args, **kwargs)

    return wrapper
