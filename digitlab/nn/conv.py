"""Convolutional layers: Conv2D, MaxPool2D, GlobalAveragePooling2D, BatchNorm.

Memory layout: NHWC (batch, height, width, channels), channels last. The convolution is computed
as im2col + one matrix multiply, and NHWC is what makes that cheap here:

* a patch is ``kh`` runs of ``kw * C`` contiguous floats, one per kernel row, each lying whole
  in one row of the (padded) input: the patch matrix is ``kh`` strided copies of such runs, read
  through a sliding-window view. That took 0.17 ms for half of cnn-fast's second layer's batch,
  where one ``np.take`` of the ``kh * kw`` runs of C floats took 0.24 ms and ``kh * kw`` slab
  copies about three times that (a single-channel input is the exception: see `Conv2D.patches`);
* the product ``cols (N*OH*OW, kh*kw*C) @ W (kh*kw*C, F)`` comes out already in NHWC order, so no
  transpose follows; the backward pass is two more products of the same shapes;
* each core's slice of the batch (see `digitlab.nn.threads`) goes through one large GEMM, padded,
  gathered and multiplied by the same thread while its slice is still in that core's cache.
  OpenBLAS runs such products near the CPU's peak (~170 GFLOP/s on this 2-core AVX-512
  machine), where sliding-window einsums or a Python loop over filters stay far below it.
  Winograd would save multiplications for 3x3 kernels but needs transforms whose NumPy cost
  outweighs the gain at MNIST's sizes.

The input gradient is computed tap by tap: for each kernel position (i, j) one GEMM
``grad (N*OH*OW, F) @ W[i, j].T (F, C)`` whose result is added onto the input positions that tap
read. That is the col2im scatter without ever building the big ``(N*OH*OW, k*k*C)`` gradient of
the patch matrix: each addition then moves whole rows of W*C contiguous floats, and the whole
input gradient costs about 40% of a single GEMM-then-scatter. What a tap read from the zero
padding is dropped rather than added onto a padded buffer, so the gradient comes out as one
contiguous array, which the layers below it reshape and slice for free.

Buffers (the patch matrices, the padded inputs, the input gradients) are allocated once per input
shape and reused.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ModelError
from .initializers import get_initializer
from .layers import Layer, _positive_int, column_sums, per_channel
from .threads import row_work, split, split_sum


def _every(start: int, step: int, count: int) -> slice:
    """``count`` indices from ``start``, ``step`` apart: where a strided kernel's taps land."""
    return slice(start, start + step * (count - 1) + 1, step)


def _same_padding(size: int, k: int, s: int) -> tuple[int, int, int]:
    """TensorFlow's 'same': output ceil(size/s), padding split with the extra pixel at the end."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return out, total // 2, total - total // 2


class Conv2D(Layer):
    """2-D convolution. Input N x H x W x C, output N x OH x OW x filters.

    Args:
        filters: number of output channels.
        kernel_size: side of the square kernel.
        stride: step between windows.
        padding: "same" (output ceil(H/stride)) or "valid" (no padding).
        init: initialiser of the kernel (fan-in kh*kw*C).
    """

    def __init__(self, filters: int, kernel_size: int = 3, stride: int = 1, padding: str = "same",
                 init: str = "he_normal", use_bias: bool = True):
        super().__init__()
        self.filters = _positive_int("Conv2D", "filters", filters)
        self.kernel_size = _positive_int("Conv2D", "kernel_size", kernel_size)
        self.stride = _positive_int("Conv2D", "stride", stride)
        if padding not in ("same", "valid"):
            raise ModelError(f"Conv2D: padding must be 'same' or 'valid'. Received: padding={padding!r}")
        self.padding, self.init, self.use_bias = padding, init, use_bias
        get_initializer(init)
        self._buffers: dict = {}

    def build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ModelError(f"Conv2D expects inputs H x W x C, got {tuple(input_shape)}: add Reshape((28, 28, 1)) first")
        h, w, c = self.input_shape = tuple(input_shape)
        k, s = self.kernel_size, self.stride
        if self.padding == "same":
            oh, self.pad_top, self.pad_bottom = _same_padding(h, k, s)
            ow, self.pad_left, self.pad_right = _same_padding(w, k, s)
        else:
            oh, ow = (h - k) // s + 1, (w - k) // s + 1
            self.pad_top = self.pad_bottom = self.pad_left = self.pad_right = 0
            if oh < 1 or ow < 1:
                raise ModelError(f"Conv2D: a {k}x{k} kernel does not fit a {h}x{w} input with 'valid' padding")
        self.padded_hw = (h + self.pad_top + self.pad_bottom, w + self.pad_left + self.pad_right)
        fan_in = k * k * c
        self.params = [get_initializer(self.init)((k, k, c, self.filters), fan_in, k * k * self.filters, rng)]
        if self.use_bias:
            self.params.append(np.zeros(self.filters, np.float32))
        self.grads = [np.zeros_like(p) for p in self.params]
        self.output_shape = (oh, ow, self.filters)
        self._buffers = {}
        return self.output_shape

    def scratch_floats(self) -> int:
        """Floats of work memory a forward pass holds per input: the patch matrix."""
        oh, ow, _ = self.output_shape
        return oh * ow * self.kernel_size ** 2 * self.input_shape[2]

    def _buffer(self, name: str, shape, dtype=np.float32) -> np.ndarray:
        """A named work array reused across batches of the same shape (borders stay zero)."""
        buf = self._buffers.get(name)
        if buf is None or buf.shape != shape or buf.dtype != dtype:
            buf = self._buffers[name] = np.zeros(shape, dtype)
        return buf

    def forward(self, x, training=False):
        n = len(x)
        (h, w, c), (oh, ow, f) = self.input_shape, self.output_shape
        top, left = self.pad_top, self.pad_left
        hp, wp = self.padded_hw
        pad = (hp, wp) != (h, w)
        padded = self._buffer("padded", (n, hp, wp, c), x.dtype) if pad else np.ascontiguousarray(x)
        k, s = self.kernel_size, self.stride
        rows, taps = oh * ow, k * k
        y = np.empty((n * rows, f), np.result_type(x.dtype, self.params[0].dtype))
        kernel = self.params[0].reshape(-1, f)
        if c == 1:  # tap-major patches: `patches` below
            cols = self._buffer("cols", (taps, n * rows), x.dtype)
        else:
            cols = self._buffer("cols", (n * rows, taps * c), x.dtype)
            # Every run of k*C floats along a padded row, one per starting pixel: kernel row i
            # of every patch is one of them.
            runs = sliding_window_view(padded.reshape(n, hp, wp * c), k * c, axis=2)
        self.cols = cols

        def samples(lo, hi):  # pad, gather the patches, multiply: all of it for samples lo..hi
            if pad:  # the border stays zero from the buffer's creation
                padded[lo:hi, top : top + h, left : left + w] = x[lo:hi]
            if c == 1:
                for i in range(k):
                    for j in range(k):
                        cols[i * k + j, lo * rows : hi * rows].reshape(hi - lo, oh, ow, 1)[...] = (
                            padded[lo:hi, _every(i, s, oh), _every(j, s, ow)])
            else:
                patch_rows = cols[lo * rows : hi * rows].reshape(hi - lo, oh, ow, k, k * c)
                for i in range(k):
                    patch_rows[:, :, :, i] = runs[lo:hi, _every(i, s, oh), _every(0, s * c, ow)]
            np.matmul(self.patches(lo, hi), kernel, out=y[lo * rows : hi * rows])
            if self.use_bias:
                per_channel(np.add, y[lo * rows : hi * rows], self.params[1], y[lo * rows : hi * rows])

        split(samples, n, rows * taps * c)
        return y.reshape(n, oh, ow, f)

    def patches(self, lo: int, hi: int) -> np.ndarray:
        """The patch matrix of samples lo..hi of the last forward pass: (hi-lo)*OH*OW rows of
        kh*kw*C values. With one input channel a patch row is kh*kw single floats, and gathering
        single floats is slow (0.76 ms for cnn-fast's first layer), so the matrix is kept
        transposed: one row per kernel tap, each filled by one strided copy of the input (0.33 ms).
        BLAS multiplies the transposed view as it is."""
        rows = self.output_shape[0] * self.output_shape[1]
        if self.input_shape[2] == 1:
            return self.cols[:, lo * rows : hi * rows].T
        return self.cols[lo * rows : hi * rows]

    def backward(self, grad):
        n = len(grad)
        k, (h, w, c) = self.kernel_size, self.input_shape
        oh, ow, f = self.output_shape
        rows = oh * ow
        g = grad.reshape(-1, f)
        need_input = self.need_input_grad
        s, kernel = self.stride, self.params[0]
        top, left = self.pad_top, self.pad_left
        if need_input:
            dx = self._buffer("grad_input", (n, h, w, c), grad.dtype)
            tap_grad = self._buffer("tap_grad", (n * rows, c), grad.dtype)
            spans_y = [self._tap_span(i, top, h, oh) for i in range(k)]
            spans_x = [self._tap_span(j, left, w, ow) for j in range(k)]

        def samples(lo, hi):
            """This slice's share of the kernel and bias gradients, and its inputs' gradient."""
            gs = g[lo * rows : hi * rows]
            parts = (self.patches(lo, hi).T @ gs, *((column_sums(gs),) if self.use_bias else ()))
            if need_input:
                d, t = dx[lo:hi], tap_grad[lo * rows : hi * rows]
                t4 = t.reshape(hi - lo, oh, ow, c)
                d.fill(0)
                for i, (y0, y1, ys) in enumerate(spans_y):
                    for j, (x0, x1, xs) in enumerate(spans_x):
                        if y1 > y0 and x1 > x0:
                            np.matmul(gs, kernel[i, j].T, out=t)
                            d[:, _every(ys, s, y1 - y0), _every(xs, s, x1 - x0)] += t4[:, y0:y1, x0:x1]
            return parts

        for grad_param, total in zip(self.grads, split_sum(samples, n, rows * k * k * max(c, f))):
            grad_param[...] = total.reshape(grad_param.shape)
        return dx if need_input else None

    def _tap_span(self, i: int, pad: int, size: int, out: int) -> tuple[int, int, int]:
        """Along one axis, for kernel offset i: the outputs [lo, hi) whose tap i reads inside the
        input rather than its zero padding, and the input index the first of them reads."""
        s = self.stride
        lo, hi = max(0, -(-(pad - i) // s)), min(out, (size - 1 + pad - i) // s + 1)
        return lo, hi, s * lo + i - pad

    def get_config(self):
        return {"filters": self.filters, "kernel_size": self.kernel_size, "stride": self.stride,
                "padding": self.padding, "init": self.init, "use_bias": self.use_bias}


class MaxPool2D(Layer):
    """Maximum over non-overlapping ``pool x pool`` windows (stride = pool). Rows and columns that do
    not fill a window are dropped, as in Keras' 'valid' pooling.

    The backward pass sends each window's gradient to the position(s) that held its maximum. Exact
    ties in one window would each receive it; with real-valued inputs they do not occur, which is
    one reason to pool before the ReLU (max and ReLU commute, and the ReLU then runs on a quarter of
    the values, with no ties at zero)."""

    def __init__(self, pool: int = 2):
        super().__init__()
        self.pool = _positive_int("MaxPool2D", "pool", pool)

    def build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ModelError(f"MaxPool2D expects inputs H x W x C, got {tuple(input_shape)}")
        h, w, c = self.input_shape = tuple(input_shape)
        if h < self.pool or w < self.pool:
            raise ModelError(f"MaxPool2D: pool {self.pool} is larger than the {h}x{w} input")
        self.output_shape = (h // self.pool, w // self.pool, c)
        return self.output_shape

    def _taps(self, a: np.ndarray) -> list[np.ndarray]:
        """The pool*pool strided views of ``a``, one per position in the window."""
        p = self.pool
        oh, ow, _ = self.output_shape
        return [a[:, i : oh * p : p, j : ow * p : p] for i in range(p) for j in range(p)]

    def forward(self, x, training=False):
        # A running maximum over the pool*pool strided views: several times faster than a
        # reduction over two axes of a 6-D reshape.
        taps = self._taps(x)
        y = taps[0].copy()
        for t in taps[1:]:
            np.maximum(y, t, out=y)
        self.x, self.y = x, y
        return y

    def backward(self, grad):
        # Seen as N x OH x p x OW x p x C, every window's maximum and gradient broadcast over it:
        # one comparison and one product write the whole input gradient contiguously.
        p = self.pool
        n, (h, w, c), (oh, ow, _) = len(grad), self.input_shape, self.output_shape
        windows = self.x[:, : oh * p, : ow * p].reshape(n, oh, p, ow, p, c)
        hit = windows == self.y[:, :, None, :, None, :]
        dx = np.multiply(hit, grad[:, :, None, :, None, :], dtype=grad.dtype).reshape(n, oh * p, ow * p, c)
        if (h, w) != (oh * p, ow * p):
            full = np.zeros((n, h, w, c), grad.dtype)
            full[:, : oh * p, : ow * p] = dx
            dx = full
        return dx

    def get_config(self):
        return {"pool": self.pool}


class GlobalAveragePooling2D(Layer):
    """Mean over height and width: N x H x W x C -> N x C."""

    def build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ModelError(f"GlobalAveragePooling2D expects inputs H x W x C, got {tuple(input_shape)}")
        self.input_shape = tuple(input_shape)
        self.output_shape = (input_shape[2],)
        return self.output_shape

    def forward(self, x, training=False):
        return x.mean(axis=(1, 2))

    def backward(self, grad):
        h, w, c = self.input_shape
        return np.broadcast_to((grad / (h * w))[:, None, None, :], (len(grad), h, w, c)).copy()


class BatchNorm(Layer):
    """Batch normalisation (Ioffe & Szegedy, 2015) over every axis but the last (features or
    channels): ``y = gamma (x - mean) / sqrt(var + eps) + beta``.

    Training uses the batch's statistics and updates running averages
    (``running = momentum * running + (1 - momentum) * batch``, unbiased variance as in PyTorch);
    inference uses the running averages, saved with the model as state.
    """

    def __init__(self, momentum: float = 0.9, eps: float = 1e-5):
        super().__init__()
        if not 0 <= momentum < 1:
            raise ModelError(f"BatchNorm: momentum must be in [0, 1). Received: momentum={momentum!r}")
        self.momentum, self.eps = float(momentum), float(eps)

    def build(self, input_shape, rng):
        self.input_shape = self.output_shape = tuple(input_shape)
        c = input_shape[-1]
        self.params = [np.ones(c, np.float32), np.zeros(c, np.float32)]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.state = [np.zeros(c, np.float32), np.ones(c, np.float32)]  # running mean, running var
        return self.output_shape

    def forward(self, x, training=False):
        gamma, beta = self.params
        running_mean, running_var = self.state
        if not training:
            self.inv_std = 1 / np.sqrt(running_var + self.eps)
            self.centred = None
            self.x = x
            scale = gamma * self.inv_std
            shift = beta - running_mean * scale
            y = np.empty_like(x)

            def affine(lo, hi):
                per_channel(np.multiply, x[lo:hi], scale, y[lo:hi])
                per_channel(np.add, y[lo:hi], shift, y[lo:hi])

            split(affine, len(x), row_work(x, 2))
            return y
        # Two reductions (channel sums by BLAS, `column_sums`) and a pass to normalise, each split
        # over the rows; the per-channel arithmetic goes through `per_channel`.
        x2 = x.reshape(-1, x.shape[-1])
        count, c = x2.shape
        mean = split_sum(lambda lo, hi: column_sums(x2[lo:hi]), count, c) / count
        centred = np.empty_like(x2)

        def centre(lo, hi):
            per_channel(np.subtract, x2[lo:hi], mean, centred[lo:hi])
            return column_sums(np.square(centred[lo:hi]))

        var = split_sum(centre, count, 2 * c) / count
        m = self.momentum
        running_mean *= m
        running_mean += (1 - m) * mean
        running_var *= m
        running_var += (1 - m) * var * (count / max(count - 1, 1))
        self.inv_std = 1 / np.sqrt(var + self.eps)
        self.centred = centred  # xhat = centred * inv_std, never stored separately
        scale = gamma * self.inv_std
        y = np.empty_like(centred)

        def normalise(lo, hi):
            per_channel(np.multiply, centred[lo:hi], scale, y[lo:hi])
            per_channel(np.add, y[lo:hi], beta, y[lo:hi])

        split(normalise, count, c)
        return y.reshape(x.shape)

    def backward(self, grad):
        gamma = self.params[0]
        g = grad.reshape(-1, grad.shape[-1])
        count, c = g.shape
        centred = self.centred if self.centred is not None else self.x.reshape(g.shape) - self.state[0]
        g_centred = np.empty_like(g)

        def sums(lo, hi):  # this slice's sums of g and of g * centred, per channel
            np.multiply(g[lo:hi], centred[lo:hi], out=g_centred[lo:hi])
            return column_sums(g[lo:hi]), column_sums(g_centred[lo:hi])

        sum_g, sum_g_centred = split_sum(sums, count, 2 * c)
        self.grads[1][...] = sum_g
        np.multiply(sum_g_centred, self.inv_std, out=self.grads[0])  # d loss / d gamma = sum g xhat
        if not self.need_input_grad:
            return None
        scale = gamma * self.inv_std
        if self.centred is None:  # inference mode: fixed statistics, an affine map per channel
            return grad * scale
        # d loss / d x = gamma inv_std (g - mean(g) - xhat mean(g xhat)), the means over the batch
        mean_g = self.grads[1] / count
        xhat_coef = scale * self.inv_std * self.grads[0] / count
        dx = np.empty_like(g)

        def input_grad(lo, hi):
            d = dx[lo:hi]
            per_channel(np.subtract, g[lo:hi], mean_g, d)
            per_channel(np.multiply, d, scale, d)
            per_channel(np.multiply, centred[lo:hi], xhat_coef, g_centred[lo:hi])
            d -= g_centred[lo:hi]

        split(input_grad, count, 3 * c)
        return dx.reshape(grad.shape)

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps}
