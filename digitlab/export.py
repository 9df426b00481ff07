"""ONNX export: a trained `Sequential`, or an ensemble of several, as one ONNX file that any ONNX
runtime can run without digitlab.

The graph takes what ``model.predict`` takes and answers what it answers:

    image          uint8   N x H x W   (N dynamic; H x W the model's input shape)
    probabilities  float32 N x 10      (N x k for k classes; an ensemble's is the mean of its
                                        members', as `mean_proba`)
    digit          int64   N           (the most probable class, the first on a tie, as argmax)

The model's own scaling (its `Rescaling` layer) is inside the graph. digitlab computes in NHWC
(channels last); ONNX convolutions and pooling are NCHW. The graph switches to NCHW with a
Transpose at the first convolution or pooling and back only where the layout shows (Flatten,
Reshape, Softmax), so a stack of convolutions runs without a Transpose between them.

``to_onnx`` needs the ``onnx`` extra; `check_onnx` runs the file in onnxruntime against the engine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from . import __version__
from ._files import atomic_write
from .errors import DigitlabError, ModelError
from .nn import (
    BatchNorm,
    Conv2D,
    Dense,
    Dropout,
    Flatten,
    GlobalAveragePooling2D,
    LeakyReLU,
    MaxPool2D,
    ReLU,
    Rescaling,
    Reshape,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)

OPSET = 17
IR_VERSION = 8  # the IR of opset 17: files open in onnxruntime 1.18 and later
_NHWC_TO_NCHW, _NCHW_TO_NHWC = [0, 3, 1, 2], [0, 2, 3, 1]


def _onnx():
    try:
        import onnx
    except ImportError:
        raise DigitlabError("ONNX export needs the onnx package: pip install 'digitlab[onnx]'") from None
    return onnx


@dataclass(frozen=True)
class _Tensor:
    """A value in the graph being built: its name, and whether a 4-D value is held NCHW."""

    name: str
    nchw: bool = False


class _Graph:
    """The nodes and weights of the graph being built; every value gets a unique readable name."""

    def __init__(self, onnx):
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.nodes: list = []
        self.weights: list = []
        self.scope = ""
        self._used: set[str] = set()

    def _fresh(self, name: str) -> str:
        """``name``, or ``name_2``, ``name_3``... if it is taken."""
        unique, i = name, 1
        while unique in self._used:
            i += 1
            unique = f"{name}_{i}"
        self._used.add(unique)
        return unique

    def const(self, name: str, array: np.ndarray) -> str:
        """Add a weight (an initializer); return its name."""
        name = self._fresh(f"{self.scope}{name}")
        self.weights.append(self.numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: list[str], output: str | None = None, **attrs) -> str:
        """Add a node with one output (named after the scope and operator unless given); return it."""
        output = output or self._fresh(f"{self.scope}{op_type}")
        self.nodes.append(self.helper.make_node(op_type, inputs, [output], name=output, **attrs))
        return output

    def nchw(self, x: _Tensor) -> _Tensor:
        """``x`` (4-D) channels first, transposed if it is not already."""
        return x if x.nchw else _Tensor(self.op("Transpose", [x.name], perm=_NHWC_TO_NCHW), True)

    def nhwc(self, x: _Tensor) -> _Tensor:
        """``x`` in digitlab's layout: channels last if 4-D."""
        return _Tensor(self.op("Transpose", [x.name], perm=_NCHW_TO_NHWC)) if x.nchw else x


# ------------------------------------------------------------------ one converter per layer type
# Each takes (graph, layer, input) and returns the layer's output, computing what the layer's
# inference forward computes (see digitlab/nn/layers.py, conv.py, activations.py).


def _rescaling(g: _Graph, layer: Rescaling, x: _Tensor) -> _Tensor:
    y = g.op("Mul", [x.name, g.const("scale", np.float32(layer.scale))])
    if layer.offset:
        y = g.op("Add", [y, g.const("offset", np.float32(layer.offset))])
    return _Tensor(y, x.nchw)


def _reshape(g: _Graph, layer: Reshape, x: _Tensor) -> _Tensor:
    # 0 copies the batch size from the input (ONNX Reshape), so N stays dynamic, even N = 0.
    shape = g.const("shape", np.array([0, *layer.shape], np.int64))
    return _Tensor(g.op("Reshape", [g.nhwc(x).name, shape]))


def _flatten(g: _Graph, layer: Flatten, x: _Tensor) -> _Tensor:
    return _Tensor(g.op("Flatten", [g.nhwc(x).name], axis=1))


def _dense(g: _Graph, layer: Dense, x: _Tensor) -> _Tensor:
    inputs = [x.name, g.const("W", layer.params[0])]
    if layer.use_bias:
        inputs.append(g.const("b", layer.params[1]))
    return _Tensor(g.op("Gemm", inputs))


def _conv2d(g: _Graph, layer: Conv2D, x: _Tensor) -> _Tensor:
    k, s = layer.kernel_size, layer.stride
    inputs = [g.nchw(x).name, g.const("W", layer.params[0].transpose(3, 2, 0, 1))]  # (kh, kw, C, F) -> (F, C, kh, kw)
    if layer.use_bias:
        inputs.append(g.const("b", layer.params[1]))
    # Explicit pads, as the layer computed them: TensorFlow's 'same' puts an odd extra pixel at the
    # bottom and right.
    pads = [layer.shape.top, layer.shape.left, layer.shape.bottom, layer.shape.right]
    return _Tensor(g.op("Conv", inputs, kernel_shape=[k, k], strides=[s, s], pads=pads), True)


def _maxpool2d(g: _Graph, layer: MaxPool2D, x: _Tensor) -> _Tensor:
    p = layer.pool  # stride = pool; the default ceil_mode=0 drops what does not fill a window
    return _Tensor(g.op("MaxPool", [g.nchw(x).name], kernel_shape=[p, p], strides=[p, p]), True)


def _global_average_pooling2d(g: _Graph, layer: GlobalAveragePooling2D, x: _Tensor) -> _Tensor:
    pooled = g.op("GlobalAveragePool", [g.nchw(x).name])  # N x C x 1 x 1
    return _Tensor(g.op("Flatten", [pooled], axis=1))


def _batchnorm(g: _Graph, layer: BatchNorm, x: _Tensor) -> _Tensor:
    # The inference form as the layer computes it, in float32: y = x * scale + shift per channel.
    gamma, beta = layer.params
    running_mean, running_var = layer.state
    scale = gamma * (1 / np.sqrt(running_var + layer.eps))
    shift = beta - running_mean * scale
    if x.nchw:  # channels on axis 1: broadcast as C x 1 x 1
        scale, shift = scale[:, None, None], shift[:, None, None]
    y = g.op("Mul", [x.name, g.const("scale", scale)])
    return _Tensor(g.op("Add", [y, g.const("shift", shift)]), x.nchw)


def _dropout(g: _Graph, layer: Dropout, x: _Tensor) -> _Tensor:
    return x  # inverted dropout: nothing to do at inference


def _elementwise(op_type: str):
    """The converter of an activation ONNX has as one operator of the same name."""

    def convert(g: _Graph, layer, x: _Tensor) -> _Tensor:
        return _Tensor(g.op(op_type, [x.name]), x.nchw)

    return convert


def _leaky_relu(g: _Graph, layer: LeakyReLU, x: _Tensor) -> _Tensor:
    return _Tensor(g.op("LeakyRelu", [x.name], alpha=layer.alpha), x.nchw)


def _softmax(g: _Graph, layer: Softmax, x: _Tensor) -> _Tensor:
    return _Tensor(g.op("Softmax", [g.nhwc(x).name], axis=1))  # the layer normalises along axis 1


CONVERTERS = {
    Rescaling: _rescaling,
    Reshape: _reshape,
    Flatten: _flatten,
    Dense: _dense,
    Conv2D: _conv2d,
    MaxPool2D: _maxpool2d,
    GlobalAveragePooling2D: _global_average_pooling2d,
    BatchNorm: _batchnorm,
    Dropout: _dropout,
    ReLU: _elementwise("Relu"),
    LeakyReLU: _leaky_relu,
    Sigmoid: _elementwise("Sigmoid"),
    Tanh: _elementwise("Tanh"),
    Softmax: _softmax,
}


# ------------------------------------------------------------------------------------ export


def _members(model_or_models) -> list[Sequential]:
    """The models to export, checked: built, exportable, one input shape, one output width."""
    models = [model_or_models] if isinstance(model_or_models, Sequential) else model_or_models
    if not isinstance(models, (list, tuple)) or not models or not all(isinstance(m, Sequential) for m in models):
        raise ModelError(f"to_onnx takes a Sequential or a non-empty list of them; got {model_or_models!r}")
    for i, model in enumerate(models):
        name = f"model {i + 1}" if len(models) > 1 else "the model"
        if not model.built:
            raise ModelError(f"{name} is not built: give it an input_shape or train it first")
        for j, layer in enumerate(model.layers):
            if type(layer) not in CONVERTERS:
                raise ModelError(f"cannot export {name} to ONNX: layer {j + 1} is a {type(layer).__name__}; "
                                 f"exportable layers: {', '.join(c.__name__ for c in CONVERTERS)}")
        if len(model.output_shape) != 1:
            raise ModelError(f"cannot export {name}: it outputs {model.output_shape} per image, not a vector of classes")
        if (model.input_shape, model.output_shape) != (models[0].input_shape, models[0].output_shape):
            raise ModelError(f"ensemble members must take the same inputs and give the same outputs: "
                             f"model 1 is {models[0].input_shape} -> {models[0].output_shape}, "
                             f"{name} is {model.input_shape} -> {model.output_shape}")
    return list(models)


def _metadata(models: list[Sequential], extra: dict | None) -> dict[str, str]:
    """recipe and test_accuracy (one per member, comma-separated, for an ensemble), the digitlab
    version, and the caller's own entries."""
    props = {"digitlab_version": __version__, "members": str(len(models))}
    recipes = [str(m.metadata.get("recipe", "unknown")) for m in models]
    props["recipe"] = ", ".join(recipes)
    accuracies = [(m.metadata.get("metrics") or {}).get("test_accuracy") for m in models]
    if all(a is not None for a in accuracies):
        props["test_accuracy"] = ", ".join(f"{a:g}" for a in accuracies)
    for key, value in (extra or {}).items():
        if not isinstance(key, str):
            raise ModelError(f"metadata keys must be strings; got {key!r}")
        props[key] = str(value)
    return props


def to_onnx(model_or_models: Sequential | Sequence[Sequential], path: str | os.PathLike, *,
            metadata: dict | None = None) -> Path:
    """Write a model, or an ensemble (a list of models with the same input shape), as one ONNX file.

    Args:
        model_or_models: a built `Sequential`, or a list of them averaged as an ensemble.
        path: the .onnx file to write (atomically: nothing is written if the export fails).
        metadata: extra ``key: value`` entries for the file's metadata_props (values become
            strings). The file always records ``recipe``, ``test_accuracy`` (when the models know
            it), ``members`` and ``digitlab_version``.

    Returns:
        The path written. The graph maps ``image`` (uint8 N x H x W) to ``probabilities`` (float32
        N x 10, or N x k) and ``digit`` (int64 N), in opset 17; it passes ``onnx.checker.check_model``.

    Raises:
        ModelError: a layer type with no ONNX form (the message names it), an unbuilt model,
            members that disagree on shapes.
    """
    onnx = _onnx()
    models = _members(model_or_models)
    helper, TensorProto = onnx.helper, onnx.TensorProto
    g = _Graph(onnx)
    pixels = _Tensor(g.op("Cast", ["image"], "pixels", to=TensorProto.FLOAT))
    outputs = []
    for i, model in enumerate(models):
        x, member = pixels, f"m{i + 1}." if len(models) > 1 else ""
        for j, layer in enumerate(model.layers):
            g.scope = f"{member}{j + 1}.{type(layer).__name__}/"  # e.g. m2.3.Conv2D/Conv
            x = CONVERTERS[type(layer)](g, layer, x)
        outputs.append(x.name)
    g.scope = ""
    g.op("Mean" if len(outputs) > 1 else "Identity", outputs, "probabilities")
    g.op("ArgMax", ["probabilities"], "digit", axis=1, keepdims=0)

    classes = models[0].output_shape[0]
    graph = helper.make_graph(
        g.nodes, "digitlab",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", *models[0].input_shape])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", classes]),
         helper.make_tensor_value_info("digit", TensorProto.INT64, ["N"])],
        initializer=g.weights,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="digitlab", producer_version=__version__)
    helper.set_model_props(proto, _metadata(models, metadata))
    onnx.checker.check_model(proto, full_check=True)
    path = Path(path)
    with atomic_write(path) as f:
        f.write(proto.SerializeToString())
    return path


# ------------------------------------------------------------------------------------ check


@dataclass(frozen=True)
class OnnxCheck:
    """How an ONNX file's answers compare with digitlab's on the same images."""

    images: int
    max_difference: float  # the largest |p_onnx - p_digitlab| over every probability
    digits_differ: int  # images whose most probable class differs


def random_images(shape: Sequence[int], n: int = 64, seed: int = 0) -> np.ndarray:
    """``n`` seeded uint8 images of ``shape``: black, with about a quarter of the pixels inked at
    random strengths, so the whole 0..255 range is exercised."""
    rng = np.random.default_rng(seed)
    ink = rng.integers(1, 256, (n, *shape))
    return np.where(rng.random((n, *shape)) < 0.25, ink, 0).astype(np.uint8)


def check_onnx(path: str | os.PathLike, model_or_models: Sequential | Sequence[Sequential],
               images: np.ndarray | None = None) -> OnnxCheck:
    """Run the ONNX file at ``path`` in onnxruntime and the model(s) in digitlab on ``images``
    (uint8 N x H x W; default: 64 `random_images`) and compare their probabilities and digits."""
    try:
        import onnxruntime
    except ImportError:
        raise DigitlabError("checking an export needs onnxruntime: pip install 'digitlab[onnx]'") from None
    from .evaluate import ensemble_proba

    models = _members(model_or_models)
    if images is None:
        images = random_images(models[0].input_shape)
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    probs, digits = session.run(["probabilities", "digit"], {"image": images})
    expected = ensemble_proba(models, images)
    return OnnxCheck(len(images), float(np.abs(probs - expected).max(initial=0.0)),
                     int(np.count_nonzero(digits != expected.argmax(axis=1))))
