"""Layers: the building blocks of a `Sequential` network.

The protocol every layer follows:

* ``build(input_shape, rng) -> output_shape`` creates the weights once the input shape is known
  (shapes exclude the batch axis);
* ``forward(x, training) -> y`` keeps what ``backward`` will need;
* ``backward(grad_y) -> grad_x`` writes the gradient of each parameter into ``grads`` (same order as
  ``params``) and returns the gradient for the layer below. It may overwrite ``grad_y``. When
  ``need_input_grad`` is false (the network's first layer with weights) it skips computing
  ``grad_x`` and returns None;
* ``params``/``grads`` are lists of float32 arrays; ``state`` holds non-trained arrays that are
  saved with the model (batch-norm statistics). The model may replace these arrays by views of one
  flat buffer, so a layer always reaches its weights through the lists;
* ``get_config()`` returns the constructor arguments: ``type(**config)`` rebuilds the layer.
"""

from __future__ import annotations

import numpy as np

from ..errors import ModelError
from .initializers import get_initializer
from .threads import matmul


class Layer:
    """Base class. Subclasses override `forward`, `backward`, and `build` if they have weights."""

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.state: list[np.ndarray] = []
        self.need_input_grad = True
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        self.input_shape = self.output_shape = tuple(input_shape)
        return self.output_shape

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def get_config(self) -> dict:
        return {}

    def scratch_floats(self) -> int:
        """Floats of work memory, beyond input and output, a forward pass holds per input."""
        return 0

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


_ONES: dict[tuple[int, np.dtype], np.ndarray] = {}


def column_sums(a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Sum over every axis but the last, as ``ones @ a``: BLAS does it several times faster than
    NumPy's reduction along the leading axis, and bias gradients and batch-norm statistics are
    exactly such sums."""
    a = a.reshape(-1, a.shape[-1])
    key = (len(a), a.dtype)
    ones = _ONES.get(key)
    if ones is None:
        ones = _ONES[key] = np.ones(len(a), a.dtype)
    return np.matmul(ones, a, out=out)


# Width of the rows `per_channel` works on: NumPy ran a per-channel operation on a 25088 x 32 array
# in 0.23 ms row by row, 0.14-0.17 ms on rows of 256 to 4096 floats, and 0.10 ms on rows of 8192
# or more, about the speed of adding two whole arrays.
_WIDE_ROW = 8192


def per_channel(op, a: np.ndarray, vector: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``op(a, vector, out=out)`` for an array ``a`` of shape (..., C) and a per-channel vector of C
    values, as batch norm and biases need it. NumPy broadcasts the vector along the rows, one inner
    loop of C elements per row: for 32 channels that is 2-3 times slower than the same work on
    whole arrays. Here the rows are seen 8192 floats wide with the vector tiled to match, so the
    inner loops are long; rows that do not fill a wide row go the usual way."""
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


def _positive_int(layer: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ModelError(f"{layer}: {name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


class Dense(Layer):
    """Fully connected: ``y = x @ W + b``. x: N x in, W: in x units, b: units, y: N x units."""

    def __init__(self, units: int, init: str = "he_normal", bias_init: str = "zeros", use_bias: bool = True):
        super().__init__()
        self.units = _positive_int("Dense", "units", units)
        self.init, self.bias_init, self.use_bias = init, bias_init, use_bias
        get_initializer(init), get_initializer(bias_init)  # fail now on a typo, not at build

    def build(self, input_shape, rng):
        if len(input_shape) != 1:
            raise ModelError(f"Dense expects flat inputs (features,), got {input_shape}: add Flatten() before it")
        (fan_in,) = self.input_shape = tuple(input_shape)
        W = get_initializer(self.init)((fan_in, self.units), fan_in, self.units, rng)
        self.params = [W]
        if self.use_bias:
            self.params.append(get_initializer(self.bias_init)((self.units,), fan_in, self.units, rng))
        self.grads = [np.zeros_like(p) for p in self.params]
        self.output_shape = (self.units,)
        return self.output_shape

    def forward(self, x, training=False):
        self.x = x
        W = self.params[0]
        if len(x) == 1:  # one input (serving, per-sample training): no slices, no extra array
            y = x @ W
        else:
            y = matmul(x, W, np.empty((len(x), self.units), np.result_type(x.dtype, W.dtype)))
        if self.use_bias:
            y += self.params[1]
        return y

    def backward(self, grad):
        x, W, dW = self.x, self.params[0], self.grads[0]
        if len(grad) == 1:  # numpy's matmul takes a slow path for an outer product; dot does not
            np.dot(x.T, grad, out=dW)
        else:
            matmul(x.T, grad, dW)
        if self.use_bias:
            column_sums(grad, out=self.grads[1])
        if not self.need_input_grad:
            return None
        if len(grad) == 1:
            return grad @ W.T
        return matmul(grad, W.T, np.empty((len(grad), len(W)), np.result_type(grad.dtype, W.dtype)))

    def get_config(self):
        return {"units": self.units, "init": self.init, "bias_init": self.bias_init, "use_bias": self.use_bias}


class Dropout(Layer):
    """Zero a fraction ``rate`` of activations while training and scale the rest by 1/(1-rate)
    ("inverted dropout"), so inference needs no change."""

    def __init__(self, rate: float):
        super().__init__()
        if not 0 <= rate < 1:
            raise ModelError(f"Dropout: rate must be in [0, 1). Received: rate={rate!r}")
        self.rate = float(rate)
        self.mask = None

    def build(self, input_shape, rng):
        self.rng = rng  # the model hands each dropout layer its own seeded stream
        return super().build(input_shape, rng)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self.mask = None
            return x
        keep = np.float32(1 - self.rate)
        self.mask = (self.rng.random(x.shape, dtype=np.float32) < keep) * (1 / keep)
        return x * self.mask

    def backward(self, grad):
        return grad if self.mask is None else grad * self.mask

    def get_config(self):
        return {"rate": self.rate}


class Flatten(Layer):
    """N x d1 x d2 ... -> N x (d1*d2*...)."""

    def build(self, input_shape, rng):
        self.input_shape = tuple(input_shape)
        self.output_shape = (int(np.prod(input_shape)),)
        return self.output_shape

    def forward(self, x, training=False):
        return x.reshape(len(x), -1)

    def backward(self, grad):
        return grad.reshape((len(grad), *self.input_shape))


class Reshape(Layer):
    """Reshape each sample to ``shape`` (e.g. 28 x 28 -> 28 x 28 x 1 for convolutions)."""

    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(int(s) for s in shape)

    def build(self, input_shape, rng):
        if int(np.prod(input_shape)) != int(np.prod(self.shape)):
            raise ModelError(f"Reshape: cannot reshape {tuple(input_shape)} to {self.shape}")
        self.input_shape, self.output_shape = tuple(input_shape), self.shape
        return self.output_shape

    def forward(self, x, training=False):
        return x.reshape((len(x), *self.shape))

    def backward(self, grad):
        return grad.reshape((len(grad), *self.input_shape))

    def get_config(self):
        return {"shape": list(self.shape)}


class Rescaling(Layer):
    """Input preprocessing carried inside the model: ``y = float32(x) * scale + offset``.

    A model starts with this layer so ``predict`` takes raw uint8 images (0..255) and applies the
    scaling its recipe was trained with: ``scale=1/255`` gives 0..1, ``scale=0.99/255,
    offset=0.01`` the sigmoid tutorial's 0.01..1.00, ``scale=1`` keeps raw pixel values.
    """

    def __init__(self, scale: float = 1 / 255, offset: float = 0.0):
        super().__init__()
        self.scale, self.offset = float(scale), float(offset)

    def forward(self, x, training=False):
        # float64 input stays float64 (gradient checks); anything else becomes float32.
        y = x.astype(np.float64 if x.dtype == np.float64 else np.float32)
        y *= np.float32(self.scale)
        if self.offset:
            y += np.float32(self.offset)
        return y

    def backward(self, grad):
        return grad * np.float32(self.scale)

    def get_config(self):
        return {"scale": self.scale, "offset": self.offset}
