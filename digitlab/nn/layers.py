"""Layers: the building blocks of a `Sequential` network.

The protocol every layer follows:

* ``build(input_shape, rng) -> output_shape`` creates the weights once the input shape is known
  (shapes exclude the batch axis); ``weight_shapes(input_shape)`` says what it will create, without
  creating it (a model file is checked against it before anything is allocated);
* ``forward(x, training) -> y`` keeps what ``backward`` will need in ``saved``, which is per
  thread: several threads may run one model's forward passes at once;
* ``backward(grad_y) -> grad_x`` writes the gradient of each parameter into ``grads`` (same order as
  ``params``) and returns the gradient for the layer below. It may overwrite ``grad_y``. When
  ``need_input_grad`` is false (the network's first layer with weights) it skips computing
  ``grad_x`` and returns None;
* ``params``/``grads`` are lists of float32 arrays; ``state`` holds non-trained arrays that are
  saved with the model (batch-norm statistics). The model may replace these arrays by views of one
  flat buffer, so a layer always reaches its weights through the lists;
* the heavy arithmetic goes through `digitlab.nn.kernels`, named for what it computes;
* ``get_config()`` returns the constructor arguments: ``type(**config)`` rebuilds the layer.
"""

from __future__ import annotations

import threading

import numpy as np

from ..errors import ModelError
from . import kernels
from .initializers import get_initializer


class Saved(threading.local):
    """What a layer's forward pass keeps for its backward pass, one set per thread. Copies and
    pickles start empty."""

    def clear(self) -> None:
        """Forget what this thread's forward pass kept."""
        self.__dict__.clear()

    def __reduce__(self):
        return type(self), ()


class Layer:
    """Base class. Subclasses override `forward`, `backward`, and `build` if they have weights."""

    def __init__(self) -> None:
        self.params: list[np.ndarray] = []
        self.grads: list[np.ndarray] = []
        self.state: list[np.ndarray] = []
        self.need_input_grad = True
        self.input_shape: tuple[int, ...] | None = None
        self.output_shape: tuple[int, ...] | None = None
        self.saved = Saved()

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator) -> tuple[int, ...]:
        self.input_shape = self.output_shape = tuple(input_shape)
        return self.output_shape

    def weight_shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The shapes of the arrays ``build(input_shape)`` creates: parameters, then state."""
        return []

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


def positive_int(name: str, value, owner: str = "") -> int:
    """``value`` as an int, or a `ModelError` in Keras's words: "Dense: units must be a positive
    integer. Received: units=0"."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ModelError(f"{owner + ': ' if owner else ''}{name} must be a positive integer. Received: {name}={value!r}")
    return int(value)


class Dense(Layer):
    """Fully connected: ``y = x @ W + b``. x: N x in, W: in x units, b: units, y: N x units."""

    def __init__(self, units: int, init: str = "he_normal", bias_init: str = "zeros", use_bias: bool = True):
        super().__init__()
        self.units = positive_int("units", units, "Dense")
        self.init, self.bias_init, self.use_bias = init, bias_init, use_bias
        get_initializer(init), get_initializer(bias_init)  # fail now on a typo, not at build

    def weight_shapes(self, input_shape):
        return [(input_shape[-1], self.units)] + [(self.units,)] * self.use_bias

    def build(self, input_shape, rng):
        if len(input_shape) != 1:
            raise ModelError(f"Dense expects flat inputs (features,), got {input_shape}: add Flatten() before it")
        (fan_in,) = self.input_shape = tuple(input_shape)
        inits = (get_initializer(self.init), get_initializer(self.bias_init))
        self.params = [init(shape, fan_in, self.units, rng) for init, shape in zip(inits, self.weight_shapes(input_shape))]
        self.grads = [np.zeros_like(p) for p in self.params]
        self.output_shape = (self.units,)
        return self.output_shape

    def forward(self, x, training=False):
        self.saved.x = x
        y = kernels.matmul(x, self.params[0])
        if self.use_bias:
            y += self.params[1]
        return y

    def backward(self, grad):
        W, dW = self.params[0], self.grads[0]
        kernels.matmul(self.saved.x.T, grad, out=dW)
        if self.use_bias:
            kernels.column_sums(grad, out=self.grads[1])
        return kernels.matmul(grad, W.T) if self.need_input_grad else None

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

    def build(self, input_shape, rng):
        self.rng = rng  # the model hands each dropout layer its own seeded stream
        return super().build(input_shape, rng)

    def forward(self, x, training=False):
        if not training or self.rate == 0:
            self.saved.mask = None
            return x
        keep = np.float32(1 - self.rate)
        mask = self.saved.mask = (self.rng.random(x.shape, dtype=np.float32) < keep) * (1 / keep)
        return x * mask

    def backward(self, grad):
        mask = self.saved.mask
        return grad if mask is None else grad * mask

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
