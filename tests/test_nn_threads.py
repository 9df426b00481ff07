"""The engine's threads: slicing a batch over cores gives the same numbers and real parallelism."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import threadpoolctl

from digitlab.nn import BatchNorm, Conv2D, Dense, Flatten, ReLU, Rescaling, Reshape, Sequential, Softmax, threads
from digitlab.nn.callbacks import Callback
from gradcheck import check_layer
from conftest import pattern_digits


@pytest.fixture
def sliced(monkeypatch):
    """Every operation cut into up to three slices, however small."""
    monkeypatch.setattr(threads, "THREADS", 3)
    monkeypatch.setattr(threads, "MIN_WORK", 1)


def test_slices_cover_the_range_once_and_small_work_stays_whole(monkeypatch):
    monkeypatch.setattr(threads, "THREADS", 3)
    for n in (1, 2, 3, 7, 100):
        parts = threads.slices(n, work_per_item=threads.MIN_WORK)
        assert len(parts) == min(3, n)
        assert parts[0][0] == 0 and parts[-1][1] == n
        assert all(hi == lo for (_, hi), (lo, _) in zip(parts, parts[1:]))  # contiguous, no overlap
        assert max(hi - lo for lo, hi in parts) - min(hi - lo for lo, hi in parts) <= 1
    assert threads.slices(100, work_per_item=threads.MIN_WORK / 100) == [(0, 100)]
    assert threads.slices(0) == [(0, 0)]


def test_split_runs_the_slices_at_the_same_time(sliced):
    barrier = threading.Barrier(3, timeout=10)  # breaks (and the test fails) unless all three wait at once
    seen = threads.split(lambda lo, hi: (barrier.wait(), threading.get_ident(), lo, hi)[1:], 9)
    assert [(lo, hi) for _, lo, hi in seen] == [(0, 3), (3, 6), (6, 9)]
    assert len({ident for ident, _, _ in seen}) == 3 and seen[0][0] == threading.get_ident()


def test_split_inside_a_slice_runs_whole(sliced):
    inner = threads.split(lambda lo, hi: threads.split(lambda a, b: (a, b), 6), 6)
    # The workers are taken: a slice (in the calling thread or a worker) runs its own split whole.
    assert inner == [[(0, 6)]] * 3
    assert threads.split(lambda a, b: (a, b), 6) == [(0, 2), (2, 4), (4, 6)]  # and they are given back


def test_an_error_in_any_slice_is_raised_after_every_slice_finished(sliced):
    finished = []

    def work(lo, hi):
        if lo == 3:
            raise ValueError("slice 3..6")
        threading.Event().wait(0.05)
        finished.append(lo)

    with pytest.raises(ValueError, match="slice 3..6"):
        threads.split(work, 9)
    assert sorted(finished) == [0, 6]


@pytest.mark.parametrize("layer, shape, training", [
    (lambda: Conv2D(3, 3, 2), (6, 5, 2), False),
    (lambda: Conv2D(2, 2, 1, "valid"), (5, 4, 3), False),
    (lambda: Conv2D(3, 5, 2), (7, 6, 1), False),
    (lambda: BatchNorm(momentum=0.5), (3, 2, 4), True),
    (lambda: BatchNorm(), (4,), False),
    (lambda: Dense(4), (5,), False),
    (ReLU, (3, 4), False),
])
def test_gradients_are_right_when_sliced(sliced, layer, shape, training):
    x = np.random.default_rng(4).standard_normal((5, *shape)) + 0.1  # away from ReLU's kink at 0
    check_layer(layer(), shape, x=x, training=training, rtol=1e-4)


def cnn(seed=0):
    return Sequential([Rescaling(1 / 255), Reshape((8, 8, 1)), Conv2D(4, 3), BatchNorm(), ReLU(),
                       Conv2D(8, 3, stride=2), BatchNorm(), ReLU(), Flatten(), Dense(16), ReLU(),
                       Dense(10), Softmax()], input_shape=(8, 8), seed=seed).compile({"name": "adam", "lr": 0.01})


def test_training_sliced_takes_the_same_steps_as_whole(sliced, monkeypatch):
    # Only the order of a few sums differs (per-slice partial sums), so float32 rounding apart.
    # SGD, not Adam: Adam divides by the gradient's size, so it would blow up the rounding noise
    # of the biases before batch norm, whose true gradient is zero.
    x, y = pattern_digits(96)
    sliced_model = cnn().compile({"name": "sgd", "lr": 0.05, "momentum": 0.9})
    sliced_model.fit(x, y, epochs=2, batch_size=32)
    monkeypatch.setattr(threads, "THREADS", 1)
    whole = cnn().compile({"name": "sgd", "lr": 0.05, "momentum": 0.9})
    whole.fit(x, y, epochs=2, batch_size=32)
    np.testing.assert_allclose(sliced_model._flat_params, whole._flat_params, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sliced_model.predict_proba(x), whole.predict_proba(x), atol=1e-4)


def blas_threads() -> int:
    """Threads of NumPy's own BLAS (other libraries, e.g. SciPy's, may bring another)."""
    (numpy_blas,) = [lib for lib in threadpoolctl.threadpool_info()
                     if lib["user_api"] == "blas" and "numpy" in lib["filepath"]]
    return numpy_blas["num_threads"]


def test_blas_runs_one_thread_inside_fit_and_predict_and_is_given_back():
    before = blas_threads()
    during = []

    class Probe(Callback):
        def on_batch_end(self, batch, logs):
            during.append(blas_threads())

    x, y = pattern_digits(64)
    model = cnn()
    model.fit(x, y, epochs=1, batch_size=32, callbacks=[Probe()])
    softmax = model.layers[-1]
    forward = softmax.forward
    softmax.forward = lambda *args: (during.append(blas_threads()), forward(*args))[1]
    model.predict_proba(x)
    assert during == [1, 1, 1]
    with threads.engine_threads():
        assert blas_threads() == 1
    assert blas_threads() == before
