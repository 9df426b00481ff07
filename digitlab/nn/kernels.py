"""The engine's kernels: the few operations where speed needs more than the textbook's NumPy line.

Layers and optimizers say what they compute (``y = x @ W + b``) and call these by name; every
device that makes it fast lives here, and each kernel's docstring says what it computes:

* slicing over the cores: each kernel cuts its batch into one contiguous slice per core and runs
  the slices at once (`digitlab.nn.threads`), since NumPy runs element-wise work on one core;
* `column_sums`: sums over the batch as a product with a ones-vector, which BLAS runs faster than
  NumPy's reduction along the leading axis;
* `channel_op`: per-channel arithmetic on rows seen wide, so NumPy's inner loops are long;
* `conv2d`/`conv2d_backward`: the patch matrix gathered by strided copies, multiplied while the
  slice is still in its core's cache, and the input gradient scattered tap by tap;
* `Workspace`: work arrays reused from one batch to the next, one set per thread.

Results do not depend on the number of threads except for the order of floating-point sums in the
reductions that add per-slice partial results (bias, weight and batch-norm sums). BENCHMARKS.md
has the measurements behind each choice.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .threads import GEMM_WORK, split, split_sum


class Workspace(threading.local):
    """Named work arrays reused across calls while their shape stays the same, one set per
    thread, so a model can predict from several threads at once. A fresh array is zero, so
    borders written nowhere else stay zero. Copies and pickles start empty."""

    def get(self, name: str, shape, dtype=np.float32) -> np.ndarray:
        buffers = self.__dict__.setdefault("buffers", {})
        buf = buffers.get(name)
        if buf is None or buf.shape != tuple(shape) or buf.dtype != dtype:
            buf = buffers[name] = np.zeros(shape, dtype)
        return buf

    def nbytes(self) -> int:
        return sum(a.nbytes for a in self.__dict__.get("buffers", {}).values())

    def __reduce__(self):
        return type(self), ()


def _array(workspace: Workspace | None, name: str, shape, dtype, zero: bool = False) -> np.ndarray:
    """A work array: reused from ``workspace``, or, without one, a new array that is freed with
    the call (zeroed when ``zero``)."""
    if workspace is not None:
        return workspace.get(name, shape, dtype)
    return np.zeros(shape, dtype) if zero else np.empty(shape, dtype)


def rows(x: np.ndarray, passes: int = 1) -> int:
    """Work per item along the first axis of ``x`` for ``passes`` passes over it (for `split`)."""
    return passes * (x.size // max(len(x), 1))


def elementwise(update: Callable[..., None], *arrays: np.ndarray, passes: int = 1) -> None:
    """``update(*arrays)`` for an update that works element by element in place, run on slices
    of the arrays (along their first axis) on every core."""
    split(lambda lo, hi: update(*(a[lo:hi] for a in arrays)), len(arrays[0]), rows(arrays[0], passes))


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` for 2-D arrays (into ``out`` when given), sliced over the cores along the larger
    operand: by rows of ``a``, or by columns of ``b``, as a multi-threaded BLAS would. A single
    row (serving one image) and an outer product (training on one image) go straight to NumPy,
    whose ``dot`` has a fast path for the outer product that ``matmul`` lacks."""
    (m, k), n = a.shape, b.shape[1]
    if out is None:
        out = np.empty((m, n), np.result_type(a.dtype, b.dtype))
    if m == 1 or k == 1:
        return np.dot(a, b, out=out)
    if a.size >= b.size:
        split(lambda lo, hi: np.matmul(a[lo:hi], b, out=out[lo:hi]), m, k * n / GEMM_WORK)
    else:
        split(lambda lo, hi: np.matmul(a, b[:, lo:hi], out=out[:, lo:hi]), n, m * k / GEMM_WORK)
    return out


_ONES: dict[tuple[int, np.dtype], np.ndarray] = {}


def _ones_sum(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    a = a.reshape(-1, a.shape[-1])
    key = (len(a), a.dtype)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = np.ones(len(a), a.dtype)
    return np.matmul(ones, a, out=out)


def column_sums(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The sum over every axis but the last (the batch, and height and width): a vector of
    ``a.shape[-1]`` values, into ``out`` when given. Computed as ``ones @ a`` by BLAS, sliced over
    the cores, the slices' partial sums added."""
    a = a.reshape(-1, a.shape[-1])
    total = split_sum(lambda lo, hi: _ones_sum(a[lo:hi]), len(a), a.shape[-1])
    if out is None:
        return total
    out[...] = total
    return out


# Width of the rows `channel_op` works on: NumPy's per-row broadcasting overhead is amortised once
# rows are this long.
_WIDE_ROW = 8192


def channel_op(op, a: np.ndarray, vector: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``op(a, vector, out=out)`` for ``a`` of shape (..., C) and a per-channel vector of C values.
    NumPy broadcasts the vector one row of C elements at a time, which is slow for few channels;
    here the rows are seen `_WIDE_ROW` floats wide with the vector tiled to match. Runs on the
    calling thread (the callers slice)."""
    c = a.shape[-1]
    if not (a.flags.c_contiguous and out.flags.c_contiguous) or c >= _WIDE_ROW:
        return op(a, vector, out=out)
    a2, out2 = a.reshape(-1, c), out.reshape(-1, c)
    k = _WIDE_ROW // c
    whole = len(a2) // k * k
    if whole:
        op(a2[:whole].reshape(-1, k * c), np.tile(vector, k), out=out2[:whole].reshape(-1, k * c))
    if whole < len(a2):
        op(a2[whole:], vector, out=out2[whole:])
    return out


def scale_shift(x: np.ndarray, scale: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``x * scale + shift`` per channel (the last axis), a new array, sliced over the cores."""
    y = np.empty(x.shape, np.result_type(x.dtype, scale.dtype))
    x2, y2 = x.reshape(-1, x.shape[-1]), y.reshape(-1, x.shape[-1])

    def part(lo, hi):
        channel_op(np.multiply, x2[lo:hi], scale, y2[lo:hi])
        channel_op(np.add, y2[lo:hi], shift, y2[lo:hi])

    split(part, len(x2), 2 * x2.shape[1])
    return y


def moments(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per channel (the last axis) over every other axis: (mean, biased variance, x - mean as a
    2-D array of rows). Two passes, each sliced over the cores: the sums, then the centring with
    the sums of squares."""
    x2 = x.reshape(-1, x.shape[-1])
    count, c = x2.shape
    mean = column_sums(x2) / count
    centred = np.empty_like(x2)

    def centre(lo, hi):
        channel_op(np.subtract, x2[lo:hi], mean, centred[lo:hi])
        return _ones_sum(np.square(centred[lo:hi]))

    var = split_sum(centre, count, 2 * c) / count
    return mean, var, centred


def sums_with_product(g: np.ndarray, c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(sum of g, sum of g * c) per channel over every row, for 2-D ``g`` and ``c`` of one shape:
    one pass, sliced over the cores."""
    product = np.empty_like(g)

    def part(lo, hi):
        np.multiply(g[lo:hi], c[lo:hi], out=product[lo:hi])
        return _ones_sum(g[lo:hi]), _ones_sum(product[lo:hi])

    return split_sum(part, len(g), 2 * g.shape[1])


def batchnorm_input_grad(g: np.ndarray, centred: np.ndarray, mean_g: np.ndarray, scale: np.ndarray,
                         coef: np.ndarray) -> np.ndarray:
    """``(g - mean_g) * scale - centred * coef``, per channel vectors over 2-D rows: batch norm's
    input gradient. One pass, sliced over the cores."""
    dx, tmp = np.empty_like(g), np.empty_like(g)

    def part(lo, hi):
        d = dx[lo:hi]
        channel_op(np.subtract, g[lo:hi], mean_g, d)
        channel_op(np.multiply, d, scale, d)
        channel_op(np.multiply, centred[lo:hi], coef, tmp[lo:hi])
        d -= tmp[lo:hi]

    split(part, len(g), 3 * g.shape[1])
    return dx


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)``, a new array, sliced over the cores. Taken against a row of zeros: NumPy's
    loop for two arrays is faster than its loop for an array and a scalar."""
    y = np.empty_like(x)
    zeros = np.zeros(x.shape[-1], x.dtype)
    split(lambda lo, hi: channel_op(np.maximum, x[lo:hi], zeros, y[lo:hi]), len(x), rows(x))
    return y


def mask_by_positive(grad: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``grad * (y > 0)``, written into ``grad``, sliced over the cores."""

    def part(lo, hi):
        grad[lo:hi] *= y[lo:hi] > 0

    split(part, len(grad), rows(grad, 2))
    return grad


# ------------------------------------------------------------------------------------- convolution
@dataclass(frozen=True)
class ConvShape:
    """A convolution's geometry: input h x w x c, a k x k kernel moved ``stride`` pixels at a
    time over the input padded with zeros (top, bottom, left, right), output oh x ow."""

    h: int
    w: int
    c: int
    k: int
    stride: int
    top: int
    bottom: int
    left: int
    right: int
    oh: int
    ow: int

    @property
    def padded(self) -> tuple[int, int]:
        return self.h + self.top + self.bottom, self.w + self.left + self.right

    @property
    def patch_floats(self) -> int:
        """Size of the patch matrix per input image: oh * ow rows of k * k * c values."""
        return self.oh * self.ow * self.k * self.k * self.c


def _every(start: int, step: int, count: int) -> slice:
    """``count`` indices from ``start``, ``step`` apart: where a strided kernel's taps land."""
    return slice(start, start + step * (count - 1) + 1, step)


def _patch_rows(cols: np.ndarray, shape: ConvShape, lo: int, hi: int) -> np.ndarray:
    """Images lo..hi's rows of the patch matrix: (hi-lo)*oh*ow rows of k*k*c values. With one
    input channel a patch row is k*k single floats, slow to gather, so `conv2d` keeps that matrix
    transposed (one row per kernel tap, each filled by one strided copy); BLAS multiplies the
    transposed view as it is."""
    n_rows = shape.oh * shape.ow
    if shape.c == 1:
        return cols[:, lo * n_rows : hi * n_rows].T
    return cols[lo * n_rows : hi * n_rows]


def conv2d(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None, shape: ConvShape,
           workspace: Workspace | None) -> tuple[np.ndarray, np.ndarray]:
    """The convolution ``y = patches(x) @ kernel + bias`` of NHWC images ``x`` (N x h x w x c)
    with ``kernel`` (k x k x c x F): every output pixel's k x k x c input patch as a row of the
    patch matrix, times the kernel as a (k*k*c) x F matrix. Returns y (N x oh x ow x F) and the
    patch matrix, which `conv2d_backward` needs. The padded input and the patch matrix live in
    ``workspace`` (training, batch after batch), or in arrays of their own (None).

    In NHWC a patch is k runs of k*c contiguous floats, one per kernel row, so the patch matrix is
    k strided copies through a sliding-window view, and the product comes out in NHWC order. Each
    core pads, gathers and multiplies its own slice of the batch, while the slice is in its cache.
    """
    n, (h, w, c), (oh, ow), k, s = len(x), (shape.h, shape.w, shape.c), (shape.oh, shape.ow), shape.k, shape.stride
    hp, wp = shape.padded
    pad = (hp, wp) != (h, w)
    padded = _array(workspace, "padded", (n, hp, wp, c), x.dtype, zero=True) if pad else np.ascontiguousarray(x)
    n_rows, taps = oh * ow, k * k
    f = kernel.shape[-1]
    y = np.empty((n * n_rows, f), np.result_type(x.dtype, kernel.dtype))
    matrix = kernel.reshape(-1, f)
    if c == 1:
        cols = _array(workspace, "cols", (taps, n * n_rows), x.dtype)
    else:
        cols = _array(workspace, "cols", (n * n_rows, taps * c), x.dtype)
        # Every run of k*c floats along a padded row, one per starting pixel: kernel row i of
        # every patch is one of them.
        runs = sliding_window_view(padded.reshape(n, hp, wp * c), k * c, axis=2)

    def part(lo, hi):
        if pad:  # the border stays zero from the buffer's creation
            padded[lo:hi, shape.top : shape.top + h, shape.left : shape.left + w] = x[lo:hi]
        if c == 1:
            for i in range(k):
                for j in range(k):
                    cols[i * k + j, lo * n_rows : hi * n_rows].reshape(hi - lo, oh, ow, 1)[...] = (
                        padded[lo:hi, _every(i, s, oh), _every(j, s, ow)])
        else:
            patch_rows = cols[lo * n_rows : hi * n_rows].reshape(hi - lo, oh, ow, k, k * c)
            for i in range(k):
                patch_rows[:, :, :, i] = runs[lo:hi, _every(i, s, oh), _every(0, s * c, ow)]
        out = y[lo * n_rows : hi * n_rows]
        np.matmul(_patch_rows(cols, shape, lo, hi), matrix, out=out)
        if bias is not None:
            channel_op(np.add, out, bias, out)

    split(part, n, n_rows * taps * c)
    return y.reshape(n, oh, ow, f), cols


def _tap_span(i: int, pad: int, size: int, out: int, s: int) -> tuple[int, int, int]:
    """Along one axis, for kernel offset i: the outputs [lo, hi) whose tap i reads inside the
    input rather than its zero padding, and the input index the first of them reads."""
    lo, hi = max(0, -(-(pad - i) // s)), min(out, (size - 1 + pad - i) // s + 1)
    return lo, hi, s * lo + i - pad


def conv2d_backward(grad: np.ndarray, cols: np.ndarray, kernel: np.ndarray, shape: ConvShape,
                    workspace: Workspace, bias: bool, input_grad: bool):
    """The gradients of `conv2d` for ``grad`` = d loss / d y (N x oh x ow x F): returns
    (d kernel = patches.T @ grad, d bias = column sums of grad or None, d x or None).

    d x is the patch-matrix gradient ``grad @ kernel.T`` added back onto the input positions each
    patch read (col2im), computed tap by tap: for kernel position (i, j) one product
    ``grad @ kernel[i, j].T`` added onto the pixels that tap read, whole rows at a time, without
    building the large patch-matrix gradient. What a tap read from the padding is dropped."""
    n, (h, w, c), (oh, ow), k, s = len(grad), (shape.h, shape.w, shape.c), (shape.oh, shape.ow), shape.k, shape.stride
    f = kernel.shape[-1]
    n_rows = oh * ow
    g = grad.reshape(-1, f)
    if input_grad:
        dx = workspace.get("grad_input", (n, h, w, c), grad.dtype)
        tap_grad = workspace.get("tap_grad", (n * n_rows, c), grad.dtype)
        spans_y = [_tap_span(i, shape.top, h, oh, s) for i in range(k)]
        spans_x = [_tap_span(j, shape.left, w, ow, s) for j in range(k)]

    def part(lo, hi):
        """This slice's share of the kernel and bias gradients, and its inputs' gradient."""
        gs = g[lo * n_rows : hi * n_rows]
        sums = (_patch_rows(cols, shape, lo, hi).T @ gs, *((_ones_sum(gs),) if bias else ()))
        if input_grad:
            d, t = dx[lo:hi], tap_grad[lo * n_rows : hi * n_rows]
            t4 = t.reshape(hi - lo, oh, ow, c)
            d.fill(0)
            for i, (y0, y1, ys) in enumerate(spans_y):
                for j, (x0, x1, xs) in enumerate(spans_x):
                    if y1 > y0 and x1 > x0:
                        np.matmul(gs, kernel[i, j].T, out=t)
                        d[:, _every(ys, s, y1 - y0), _every(xs, s, x1 - x0)] += t4[:, y0:y1, x0:x1]
        return sums

    totals = split_sum(part, n, n_rows * k * k * max(c, f))
    return totals[0].reshape(kernel.shape), totals[1] if bias else None, dx if input_grad else None
