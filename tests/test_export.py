"""ONNX export: every recipe's network, the layers no recipe uses, ensembles, refusals, metadata
and ``digitlab export``, each run in onnxruntime against the engine on generated images."""

import importlib.util
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx", reason="ONNX export needs the 'onnx' extra")
ort = pytest.importorskip("onnxruntime", reason="checking exports needs the 'onnx' extra")

import digitlab  # noqa: E402
from conftest import pattern_digits  # noqa: E402
from digitlab.cli import main  # noqa: E402
from digitlab.errors import DigitlabError, ModelError  # noqa: E402
from digitlab.evaluate import ensemble_proba  # noqa: E402
from digitlab.export import to_onnx  # noqa: E402
from digitlab.nn import (  # noqa: E402
    BatchNorm, Conv2D, Dense, Flatten, GlobalAveragePooling2D, Layer, LeakyReLU, MaxPool2D,
    Rescaling, Reshape, Sequential, Sigmoid, Softmax, Tanh,
)
from digitlab.recipes import RECIPES  # noqa: E402


def one_recipe_per_network() -> list[str]:
    """Recipe names, leaving out those that train another's network (cnn-fast-aug, cnn-elastic)."""
    first: dict[str, str] = {}
    for name, recipe in RECIPES.items():
        first.setdefault(repr(recipe.layers()) + repr(recipe.input_shape), name)
    return list(first.values())


# The heavy convolutional networks run on fewer images, to keep the file to a few seconds.
IMAGES = {"cnn": 200, "cnn-deep": 200, "cnn-m5": 50}


def with_statistics(model: Sequential, seed: int = 1) -> Sequential:
    """Give every BatchNorm running statistics and an affine map far from the identity."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, BatchNorm):
            (gamma, beta), (mean, var) = layer.params, layer.state
            gamma[...], beta[...] = rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.2, beta.shape)
            mean[...], var[...] = rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2.0, var.shape)
    return model


def run(path, images):
    """(probabilities, digits) from onnxruntime on one thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(["probabilities", "digit"], {"image": images})


def assert_same_answers(path, expected, images):
    probs, digits = run(path, images)
    assert probs.dtype == np.float32 and digits.dtype == np.int64
    assert probs.shape == expected.shape and digits.shape == (len(images),)
    assert np.abs(probs - expected).max() <= 1e-5
    assert np.array_equal(digits, expected.argmax(axis=1))
    assert np.array_equal(probs.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.parametrize("name", one_recipe_per_network())
def test_every_recipe_network_exports_exactly(name, tmp_path):
    recipe = RECIPES[name]
    model = with_statistics(Sequential(recipe.layers(), input_shape=recipe.input_shape, seed=0))
    if name == "tutorial-pure-linear":
        # Rescaling(1) feeds raw pixels 0..255. Initial weights meant for inputs near 1 give logits
        # in the hundreds, where float32 rounding alone (BLAS and onnxruntime sum in different
        # orders) moves the probabilities by 4e-5; trained, the tutorial's weights are far smaller.
        model.layers[2].params[0][...] /= 255
    images, _ = pattern_digits(IMAGES.get(name, 1000), size=recipe.input_shape[0])
    path = to_onnx(model, tmp_path / f"{name}.onnx")
    assert_same_answers(path, model.predict_proba(images), images)


def test_layers_no_recipe_uses(tmp_path):
    # 'same' padding with the extra pixel at the bottom/right (14 -> 7 with a 3x3 stride 2, and a
    # 4x4 kernel), batch norm on channels-last input before any convolution and on a convolution's
    # output, pooling that drops a row (7 -> 3), global average pooling, the other activations.
    layers = [Rescaling(2 / 255, -1.0), Reshape((14, 14, 1)), BatchNorm(),
              Conv2D(4, 3, stride=2), LeakyReLU(0.1),
              Conv2D(6, 4), BatchNorm(), Tanh(), MaxPool2D(2),
              Conv2D(8, 2, padding="valid"), Sigmoid(), GlobalAveragePooling2D(),
              Dense(10), Softmax()]
    model = with_statistics(Sequential(layers, input_shape=(14, 14), seed=0))
    assert (model.layers[3].shape.top, model.layers[3].shape.bottom) == (0, 1)
    assert (model.layers[5].shape.top, model.layers[5].shape.bottom) == (1, 2)
    images, _ = pattern_digits(1000, size=14)
    path = to_onnx(model, tmp_path / "layers.onnx")
    assert_same_answers(path, model.predict_proba(images), images)


def test_an_ensemble_is_the_mean_of_its_members(tmp_path):
    models = [with_statistics(Sequential(RECIPES[name].layers(), input_shape=(28, 28), seed=seed))
              for name, seed in (("mlp", 0), ("cnn-fast", 1), ("cnn-fast", 2))]
    models[0].metadata["recipe"] = "mlp"
    images, _ = pattern_digits(500, size=28)
    path = to_onnx(models, tmp_path / "ensemble.onnx")
    assert_same_answers(path, ensemble_proba(models, images), images)
    props = {p.key: p.value for p in onnx.load(path).metadata_props}
    assert props["members"] == "3" and props["recipe"] == "mlp, unknown, unknown" and "test_accuracy" not in props

    digits_model = Sequential(RECIPES["digits-cnn"].layers(), input_shape=(8, 8))
    with pytest.raises(ModelError, match="same inputs"):
        to_onnx([models[0], digits_model], tmp_path / "mixed.onnx")
    assert not (tmp_path / "mixed.onnx").exists()


def test_a_digit_classifiers_network_exports(tmp_path):
    pytest.importorskip("sklearn", reason="the estimator needs the 'sklearn' extra")
    from digitlab.sklearn import DigitClassifier

    images, labels = pattern_digits(300, size=8)
    X = images.reshape(len(images), -1).astype(np.float64)  # as scikit-learn users send it
    clf = DigitClassifier("digits-cnn", epochs=1).fit(X, np.where(labels % 2, "odd", "even"))
    path = to_onnx(clf.model_, tmp_path / "clf.onnx")
    assert_same_answers(path, clf.predict_proba(X), images)  # two classes: N x 2


class Square(Layer):
    """A layer with no ONNX form."""

    def forward(self, x, training=False):
        return x * x


def test_a_layer_without_onnx_form_is_refused_and_nothing_written(tmp_path):
    model = Sequential([Rescaling(), Flatten(), Square(), Dense(10), Softmax()], input_shape=(4, 4))
    path = tmp_path / "square.onnx"
    path.write_bytes(b"the old file")
    with pytest.raises(ModelError, match=r"^cannot export the model to ONNX: layer 3 is a Square; exportable layers: Rescaling"):
        to_onnx(model, path)
    assert path.read_bytes() == b"the old file"
    assert [p.name for p in tmp_path.iterdir()] == ["square.onnx"]  # no temporary file left behind

    with pytest.raises(ModelError, match="not built"):
        to_onnx(Sequential([Rescaling(), Flatten(), Dense(10)]), path)
    with pytest.raises(ModelError, match="a Sequential or a non-empty list"):
        to_onnx([], path)


def test_the_file_passes_the_checker_and_carries_metadata(tmp_path):
    model = with_statistics(Sequential(RECIPES["cnn-fast"].layers(), input_shape=(28, 28), seed=0))
    model.metadata.update(recipe="cnn-fast", metrics={"test_accuracy": 0.99291})
    path = to_onnx(model, tmp_path / "m.onnx", metadata={"trained_by": "test"})
    proto = onnx.load(path)
    onnx.checker.check_model(proto, full_check=True)
    assert proto.opset_import[0].version == 17
    props = {p.key: p.value for p in proto.metadata_props}
    assert props == {"recipe": "cnn-fast", "test_accuracy": "0.99291", "digitlab_version": digitlab.__version__,
                     "members": "1", "trained_by": "test"}

    def signature(values):
        return [(v.name, v.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim])
                for v in values]

    T = onnx.TensorProto
    assert signature(proto.graph.input) == [("image", T.UINT8, ["N", 28, 28])]
    assert signature(proto.graph.output) == [("probabilities", T.FLOAT, ["N", 10]), ("digit", T.INT64, ["N"])]
    one = pattern_digits(1, size=28)[0]  # the batch axis is dynamic: one image works as well
    assert_same_answers(path, model.predict_proba(one), one)


def test_without_onnx_the_error_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx", None)  # import onnx now raises ImportError
    model = Sequential([Rescaling(), Flatten(), Dense(10), Softmax()], input_shape=(4, 4))
    with pytest.raises(DigitlabError, match=r"pip install 'digitlab\[onnx\]'"):
        to_onnx(model, tmp_path / "m.onnx")


def test_cli_export(tmp_path, capsys, monkeypatch):
    saved = []
    for seed in (0, 1):
        model = Sequential(RECIPES["pure"].layers(), input_shape=(28, 28), seed=seed)
        saved.append(str(digitlab.save_model(model, tmp_path / f"m{seed}.npz", recipe="pure")))
    out = tmp_path / "one.onnx"
    assert main(["export", saved[0], "--onnx", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"wrote {out} (m0.npz" in text and "opset 17" in text
    assert "onnxruntime on 64 generated images: the same digits, largest probability difference" in text
    assert {p.key: p.value for p in onnx.load(out).metadata_props}["recipe"] == "pure"

    assert main(["export", *saved, "--onnx", str(tmp_path / "two.onnx")]) == 0
    assert "an ensemble of 2 models" in capsys.readouterr().out

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else find_spec(name, *a))
    assert main(["export", saved[0], "--onnx", str(out)]) == 0
    assert "onnxruntime is not installed: the export was not run" in capsys.readouterr().out
    monkeypatch.undo()

    digits = digitlab.save_model(Sequential(RECIPES["digits-cnn"].layers(), input_shape=(8, 8)), tmp_path / "digits.npz")
    assert main(["export", saved[0], str(digits), "--onnx", str(tmp_path / "bad.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ensemble members must take the same inputs") and "Traceback" not in err
    assert not (tmp_path / "bad.onnx").exists()
    assert main(["export", str(tmp_path / "missing.npz"), "--onnx", str(out)]) == 2
    assert "no such model file" in capsys.readouterr().err
