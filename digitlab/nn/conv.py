"""Convolutional layers: Conv2D, MaxPool2D, GlobalAveragePooling2D, BatchNorm.

Memory layout: NHWC (batch, height, width, channels), channels last. A convolution is computed as
a matrix product: every output pixel's k x k x C input patch is a row of the patch matrix
(im2col), and ``patches @ kernel`` gives the output already in NHWC order. NHWC makes the patches
cheap to gather (see `digitlab.nn.kernels.conv2d`).
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from . import kernels
from .initializers import get_initializer
from .layers import Layer, positive_int


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
        self.filters = positive_int("filters", filters, "Conv2D")
        self.kernel_size = positive_int("kernel_size", kernel_size, "Conv2D")
        self.stride = positive_int("stride", stride, "Conv2D")
        if padding not in ("same", "valid"):
            raise ModelError(f"Conv2D: padding must be 'same' or 'valid'. Received: padding={padding!r}")
        self.padding, self.init, self.use_bias = padding, init, use_bias
        get_initializer(init)
        self.workspace = kernels.Workspace()

    def build(self, input_shape, rng):
        if len(input_shape) != 3:
            raise ModelError(f"Conv2D expects inputs H x W x C, got {tuple(input_shape)}: add Reshape((28, 28, 1)) first")
        h, w, c = self.input_shape = tuple(input_shape)
        k, s = self.kernel_size, self.stride
        if self.padding == "same":
            oh, top, bottom = _same_padding(h, k, s)
            ow, left, right = _same_padding(w, k, s)
        else:
            oh, ow = (h - k) // s + 1, (w - k) // s + 1
            top = bottom = left = right = 0
            if oh < 1 or ow < 1:
                raise ModelError(f"Conv2D: a {k}x{k} kernel does not fit a {h}x{w} input with 'valid' padding")
        self.shape = kernels.ConvShape(h, w, c, k, s, top, bottom, left, right, oh, ow)
        kernel_shape, *bias_shape = self.weight_shapes(input_shape)
        self.params = [get_initializer(self.init)(kernel_shape, k * k * c, k * k * self.filters, rng)]
        self.params += [np.zeros(shape, np.float32) for shape in bias_shape]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.output_shape = (oh, ow, self.filters)
        return self.output_shape

    def weight_shapes(self, input_shape):
        k = self.kernel_size
        return [(k, k, input_shape[-1], self.filters)] + [(self.filters,)] * self.use_bias

    def scratch_floats(self) -> int:
        """Floats of work memory a forward pass holds per input: the patch matrix."""
        return self.shape.patch_floats

    def forward(self, x, training=False):
        # y = patches(x) @ K + b, K seen as a (k*k*C) x filters matrix. Training reuses its work
        # arrays batch after batch; inference frees them when the call ends.
        bias = self.params[1] if self.use_bias else None
        workspace = self.workspace if training else None
        y, self.saved.patches = kernels.conv2d(x, self.params[0], bias, self.shape, workspace)
        return y

    def backward(self, grad):
        # dK = patches.T @ grad, db = sum of grad, dx = col2im(grad @ K.T)
        d_kernel, d_bias, dx = kernels.conv2d_backward(grad, self.saved.patches, self.params[0], self.shape,
                                                       self.workspace, self.use_bias, self.need_input_grad)
        self.grads[0][...] = d_kernel
        if self.use_bias:
            self.grads[1][...] = d_bias
        return dx

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
        self.pool = positive_int("pool", pool, "MaxPool2D")

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
        # A running maximum over the pool*pool strided views: faster than a reduction over two
        # axes of a 6-D reshape.
        taps = self._taps(x)
        y = taps[0].copy()
        for t in taps[1:]:
            np.maximum(y, t, out=y)
        self.saved.x, self.saved.y = x, y
        return y

    def backward(self, grad):
        # Seen as N x OH x p x OW x p x C, every window's maximum and gradient broadcast over it:
        # one comparison and one product write the whole input gradient contiguously.
        p = self.pool
        n, (h, w, c), (oh, ow, _) = len(grad), self.input_shape, self.output_shape
        windows = self.saved.x[:, : oh * p, : ow * p].reshape(n, oh, p, ow, p, c)
        hit = windows == self.saved.y[:, :, None, :, None, :]
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

    def weight_shapes(self, input_shape):
        return [(input_shape[-1],)] * 4  # gamma, beta; running mean, running variance

    def build(self, input_shape, rng):
        self.input_shape = self.output_shape = tuple(input_shape)
        gamma, beta, mean, var = self.weight_shapes(input_shape)
        self.params = [np.ones(gamma, np.float32), np.zeros(beta, np.float32)]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.state = [np.zeros(mean, np.float32), np.ones(var, np.float32)]
        return self.output_shape

    def forward(self, x, training=False):
        gamma, beta = self.params
        running_mean, running_var = self.state
        if not training:  # fixed statistics: an affine map per channel
            inv_std = self.saved.inv_std = 1 / np.sqrt(running_var + self.eps)
            self.saved.centred, self.saved.x = None, x
            scale = gamma * inv_std
            return kernels.scale_shift(x, scale, beta - running_mean * scale)
        mean, var, centred = kernels.moments(x)
        count = len(centred)
        m = self.momentum
        running_mean *= m
        running_mean += (1 - m) * mean
        running_var *= m
        running_var += (1 - m) * var * (count / max(count - 1, 1))
        inv_std = self.saved.inv_std = 1 / np.sqrt(var + self.eps)
        self.saved.centred = centred  # xhat = centred * inv_std, never stored separately
        return kernels.scale_shift(centred, gamma * inv_std, beta).reshape(x.shape)

    def backward(self, grad):
        gamma, inv_std, centred = self.params[0], self.saved.inv_std, self.saved.centred
        g = grad.reshape(-1, grad.shape[-1])
        training = centred is not None
        if not training:
            centred = self.saved.x.reshape(g.shape) - self.state[0]
        sum_g, sum_g_centred = kernels.sums_with_product(g, centred)
        self.grads[1][...] = sum_g  # d loss / d beta = sum g
        np.multiply(sum_g_centred, inv_std, out=self.grads[0])  # d loss / d gamma = sum g xhat
        if not self.need_input_grad:
            return None
        scale = gamma * inv_std
        if not training:
            return grad * scale
        # d loss / d x = gamma inv_std (g - mean(g) - xhat mean(g xhat)), the means over the batch
        count = len(g)
        coef = scale * inv_std * self.grads[0] / count
        return kernels.batchnorm_input_grad(g, centred, sum_g / count, scale, coef).reshape(grad.shape)

    def get_config(self):
        return {"momentum": self.momentum, "eps": self.eps}
