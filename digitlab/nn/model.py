"""`Sequential`: a stack of layers with Keras-like ``compile``/``fit``/``evaluate``/``predict``."""

from __future__ import annotations

import math
from typing import Callable, Iterable, Sequence

import numpy as np

from ..errors import ModelError, lookup
from . import activations, conv, layers
from .callbacks import Callback, History
from .losses import LOSSES, get_loss
from .optimizers import OPTIMIZERS, Optimizer, get_optimizer
from .persample import plan as per_sample_plan
from .registry import spec_of
from .schedules import SCHEDULES, get_schedule
from .threads import using_engine_threads
from .training import run_epochs

# Every layer type a model file may name, by class name.
LAYERS: dict[str, type[layers.Layer]] = {
    cls.__name__: cls
    for module in (layers, activations, conv)
    for cls in vars(module).values()
    if isinstance(cls, type) and issubclass(cls, layers.Layer) and cls is not layers.Layer
}


def layer_from_config(config: dict) -> layers.Layer:
    """A layer from ``{"type": class name, "config": its get_config()}``."""
    return lookup(LAYERS, config.get("type"), "layer type")(**config.get("config", {}))


# Work memory the layers may keep for a prediction batch (see `Sequential.inference_batch`).
INFERENCE_BYTES = 256 << 20


class Sequential:
    """A network: layers applied in order. Takes images as `load_mnist` returns them when its first
    layer is `Rescaling` (every recipe's models are), so a model carries its own preprocessing.

    Args:
        layers: the layers, first to last. A classifier ends with `Softmax`.
        input_shape: the shape of one input without the batch axis, e.g. (28, 28). If None, the
            model is built from the first data it sees.
        seed: fixes the initial weights, the shuffling and the dropout masks.
    """

    def __init__(self, layers: Sequence[layers.Layer], input_shape: Sequence[int] | None = None, seed: int = 0):
        if not layers:
            raise ModelError("Sequential needs at least one layer")
        self.layers = list(layers)
        self.seed = int(seed)
        self.input_shape: tuple[int, ...] | None = None
        self.loss = self.optimizer = self.schedule = None
        self.history = History()
        self.stop_training = False
        self.metadata: dict = {}
        init_seq, train_seq = np.random.SeedSequence(self.seed).spawn(2)
        self._init_rng = np.random.default_rng(init_seq)
        self._train_rng = np.random.default_rng(train_seq)
        if input_shape is not None:
            self.build(input_shape)

    # ----------------------------------------------------------------------------- structure
    @property
    def built(self) -> bool:
        return self.input_shape is not None

    def build(self, input_shape: Sequence[int]) -> "Sequential":
        """Create every layer's weights for inputs of ``input_shape`` and pack them in one buffer."""
        shape = tuple(int(s) for s in input_shape)
        self.input_shape = shape
        for layer in self.layers:
            shape = layer.build(shape, self._init_rng)
        self.output_shape = shape
        self._scratch_bytes = 4 * sum(layer.scratch_floats() for layer in self.layers)  # per input
        # Layers below the first one with weights need no input gradient: skip computing it.
        first = next((i for i, layer in enumerate(self.layers) if layer.params), len(self.layers))
        for i, layer in enumerate(self.layers):
            layer.need_input_grad = i > first
        self._pack()
        return self

    def _pack(self) -> None:
        """Move all parameters (and gradients) into one contiguous float32 buffer each, leaving the
        layers with views, so optimizers update everything with a few whole-buffer operations."""
        arrays = [p for layer in self.layers for p in layer.params]
        total = sum(p.size for p in arrays)
        self._flat_params = np.empty(total, dtype=np.float32)
        self._flat_grads = np.zeros(total, dtype=np.float32)
        offset = 0
        for layer in self.layers:
            for i, p in enumerate(layer.params):
                view = self._flat_params[offset : offset + p.size].reshape(p.shape)
                view[...] = p
                layer.params[i] = view
                layer.grads[i] = self._flat_grads[offset : offset + p.size].reshape(p.shape)
                offset += p.size
        if self.optimizer is not None:
            self._bind_optimizer()

    # Optimizers walk the flat buffers in blocks of this many elements (512 KB of float32): each
    # block of parameters, gradients and moments stays in the core's cache across the dozen
    # whole-array operations of an Adam step.
    BLOCK = 1 << 17

    def _bind_optimizer(self) -> None:
        blocks = range(0, self._flat_params.size, self.BLOCK)
        self.optimizer.bind([self._flat_params[i : i + self.BLOCK] for i in blocks],
                            [self._flat_grads[i : i + self.BLOCK] for i in blocks])

    @property
    def num_params(self) -> int:
        return int(self._flat_params.size) if self.built else 0

    def summary(self) -> list[tuple[str, tuple[int, ...], int]]:
        """One row per layer: (description, output shape, number of parameters)."""
        self._require_built()
        return [(repr(layer), layer.output_shape, sum(p.size for p in layer.params)) for layer in self.layers]

    def get_weights(self) -> list[np.ndarray]:
        """Copies of every parameter and state array, in layer order."""
        self._require_built()
        return [a.copy() for layer in self.layers for a in (*layer.params, *layer.state)]

    def set_weights(self, weights: Sequence[np.ndarray]) -> None:
        self._require_built()
        targets = [a for layer in self.layers for a in (*layer.params, *layer.state)]
        if len(weights) != len(targets):
            raise ModelError(f"expected {len(targets)} weight arrays, got {len(weights)}")
        for target, w in zip(targets, weights):
            if target.shape != np.shape(w):
                raise ModelError(f"weight shape mismatch: model has {target.shape}, given {np.shape(w)}")
            target[...] = w

    def get_config(self) -> dict:
        """The architecture: enough to rebuild the model with `from_config` (weights not included)."""
        return {
            "input_shape": list(self.input_shape) if self.built else None,
            "seed": self.seed,
            "layers": [{"type": type(layer).__name__, "config": layer.get_config()} for layer in self.layers],
        }

    @classmethod
    def from_config(cls, config: dict) -> "Sequential":
        return cls([layer_from_config(c) for c in config["layers"]], config.get("input_shape"), config.get("seed", 0))

    def training_config(self) -> dict:
        """Loss, optimizer and schedule as given to `compile`, for the model file."""
        if self.loss is None:
            return {}
        return {
            "loss": spec_of(LOSSES, self.loss, "loss"),
            "optimizer": spec_of(OPTIMIZERS, self.optimizer, "optimizer"),
            "schedule": spec_of(SCHEDULES, self.schedule, "schedule"),
        }

    # ----------------------------------------------------------------------------- training
    def compile(self, optimizer: str | dict | Optimizer = "adam", loss="cross_entropy", schedule=None) -> "Sequential":
        """Choose how to train: an optimizer, a loss and a learning-rate schedule (names or objects)."""
        self.optimizer, self.loss, self.schedule = get_optimizer(optimizer), get_loss(loss), get_schedule(schedule)
        self._fused = self.loss.fuses_softmax and isinstance(self.layers[-1], activations.Softmax)
        if self.loss.fuses_softmax and not self._fused:
            raise ModelError("cross-entropy needs a final Softmax layer (it works on probabilities)")
        if self.built:
            self._bind_optimizer()
        return self

    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x, training)
        return x

    def backward(self, grad: np.ndarray, skip_last: bool = False) -> None:
        """Back-propagate ``grad`` (d loss / d output); with ``skip_last`` it is d loss / d the last
        layer's input (the fused softmax + cross-entropy gradient)."""
        stack = self.layers[:-1] if skip_last else self.layers
        for layer in reversed(stack):
            grad = layer.backward(grad)
            if grad is None:
                break

    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
        """One gradient step on a batch; returns (loss, number of correct predictions)."""
        out = self.forward(x, training=True)
        loss, grad = self.loss.value_and_grad(out, y)
        if not math.isfinite(loss):
            raise FloatingPointError(loss)
        scale = self.optimizer.gradient_scale()  # see digitlab.nn.optimizers: saves a pass for SGD
        if scale != 1.0:
            grad *= np.float32(scale)
        self.backward(grad, skip_last=self._fused)
        self.optimizer.step(scaled=scale != 1.0)
        return loss, int(np.count_nonzero(out.argmax(axis=1) == y))

    @using_engine_threads
    def fit(
        self,
        x,
        y: np.ndarray | None = None,
        epochs: int = 1,
        batch_size: int = 32,
        validation_data=None,
        validation_split: float = 0.0,
        shuffle: bool = True,
        callbacks: Iterable[Callback] = (),
        augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None,
    ) -> History:
        """Train for ``epochs`` passes over ``(x, y)`` in mini-batches; returns the History.

        ``x`` is an array of inputs (N x input_shape) or a `Dataset` (then ``y`` is None).
        ``validation_data`` is ``(x_val, y_val)`` or a Dataset; ``validation_split`` instead holds
        out a seeded random fraction of ``x``. ``augment(batch, rng)`` may transform each training
        batch (after gathering, before the forward pass). Stops with a `ModelError` (and the
        weights of the last good epoch) if the loss stops being finite.
        """
        x, y = self._xy(x, y)
        if self.optimizer is None:
            raise ModelError("call compile(optimizer, loss) before fit")
        epochs, batch_size = layers.positive_int("epochs", epochs), layers.positive_int("batch_size", batch_size)
        (x, y), validation_data = self._validation(x, y, validation_data, validation_split)
        n, steps = len(x), math.ceil(len(x) / batch_size)
        # Batches of one on a plain dense network: the same steps, taken a block at a time.
        per_sample = per_sample_plan(self) if batch_size == 1 and augment is None else None

        def epoch(e, report):
            order = self._train_rng.permutation(n) if shuffle else np.arange(n)

            def lr_at(step):
                return self.schedule(self.optimizer.base_lr, e + step / steps, epochs)

            if per_sample is not None:
                loss_sum, correct = per_sample.epoch(x, y, order, lr_at, report)
                self.optimizer.lr = lr_at(steps - 1)
                return loss_sum / n, correct / n, self.optimizer.lr
            loss_sum, correct, seen = 0.0, 0, 0
            for b in range(steps):
                idx = order[b * batch_size : (b + 1) * batch_size]
                xb = x[idx] if augment is None else augment(x[idx], self._train_rng)
                self.optimizer.lr = lr_at(b)
                loss, right = self.train_step(xb, y[idx])
                loss_sum, correct, seen = loss_sum + loss * len(idx), correct + right, seen + len(idx)
                if report:
                    report(b + 1, loss_sum / seen, correct / seen, self.optimizer.lr)
            return loss_sum / n, correct / n, self.optimizer.lr

        def validate():
            return {f"val_{k}": v for k, v in self.evaluate(*validation_data).items()}

        return run_epochs(self, epochs, steps, n, epoch, callbacks, None if validation_data is None else validate)

    def _validation(self, x, y, data, split: float):
        """(training inputs and labels, validation inputs and labels or None)."""
        if data is not None and split:
            raise ModelError("give validation_data or validation_split, not both")
        if split:
            if not 0 < split < 1:
                raise ModelError(f"validation_split must be in (0, 1). Received: {split!r}")
            order = self._train_rng.permutation(len(x))
            n_val = max(1, int(round(len(x) * split)))
            val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
            return (x[train_idx], y[train_idx]), (x[val_idx], y[val_idx])
        if data is not None:
            data = self._xy(*data) if isinstance(data, tuple) else self._xy(data)
        return (x, y), data

    # ----------------------------------------------------------------------------- inference
    def inference_batch(self) -> int:
        """The batch size `predict_proba` uses by default: 2048 inputs, fewer where the layers' work
        memory (each convolution keeps its patch matrix) would pass INFERENCE_BYTES."""
        self._require_built()
        return min(max(INFERENCE_BYTES // max(self._scratch_bytes, 1), 32), 2048)

    @using_engine_threads
    def predict_proba(self, x, batch_size: int | None = None) -> np.ndarray:
        """Class probabilities, N x 10 float32, for inputs N x input_shape (e.g. uint8 N x 28 x 28),
        computed ``batch_size`` inputs at a time (default: `inference_batch`)."""
        x = self._check_x(x)
        batch_size = batch_size or self.inference_batch()
        try:
            if len(x) <= batch_size:
                return self.forward(x)
            return np.concatenate([self.forward(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])
        finally:  # no backward pass follows: let go of what the layers kept for one (in this thread)
            for layer in self.layers:
                layer.saved.clear()

    def predict(self, x, batch_size: int | None = None) -> np.ndarray:
        """Most probable class of each input, int64 N."""
        return self.predict_proba(x, batch_size).argmax(axis=1)

    def evaluate(self, x, y: np.ndarray | None = None, batch_size: int | None = None) -> dict:
        """``{"loss": ..., "accuracy": ...}`` on ``(x, y)`` or a Dataset (loss needs `compile`; a
        loaded model knows its loss)."""
        x, y = self._xy(x, y)
        probs = self.predict_proba(x, batch_size)
        loss = get_loss("cross_entropy") if self.loss is None else self.loss
        return {"loss": loss.value(probs, y), "accuracy": float(np.mean(probs.argmax(axis=1) == y))}

    def __call__(self, x) -> np.ndarray:
        return self.predict_proba(x)

    # ----------------------------------------------------------------------------- checks
    def _require_built(self):
        if not self.built:
            raise ModelError("the model is not built yet: give input_shape or call fit/build first")

    def _check_x(self, x) -> np.ndarray:
        x = np.asarray(x)
        if not self.built:
            self.build(x.shape[1:])
        if x.ndim == len(self.input_shape) and x.shape == self.input_shape:
            raise ModelError(f"expected a batch of inputs N x {self._shape_str()}; got one input {x.shape}: use x[None]")
        if x.shape[1:] != self.input_shape:
            raise ModelError(f"expected inputs of shape N x {self._shape_str()}, got {x.shape}")
        if x.dtype.kind not in "uif":
            raise ModelError(f"expected numeric inputs, got dtype {x.dtype}")
        return x

    def _shape_str(self) -> str:
        return " x ".join(map(str, self.input_shape))

    def _xy(self, x, y=None) -> tuple[np.ndarray, np.ndarray]:
        if y is None:
            if not hasattr(x, "images"):
                raise ModelError("give labels y, or a Dataset as x")
            x, y = x.images, x.labels
        x = self._check_x(x)
        y = np.asarray(y)
        if y.ndim != 1 or len(y) != len(x):
            raise ModelError(f"expected {len(x)} integer labels, got shape {y.shape}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ModelError(f"labels must be integers, got {y.dtype}")
        classes = self.output_shape[-1]
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise ModelError(f"labels must be in 0..{classes - 1} (the model has {classes} outputs); "
                             f"got {y.min()}..{y.max()}")
        return x, y.astype(np.int64, copy=False)
