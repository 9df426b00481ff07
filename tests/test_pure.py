"""The pure-Python engine: its maths by hand, against the tutorial's loop and the NumPy engine,
its recipes on real MNIST, and the promise that it imports no NumPy."""

import ast
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import digitlab
from conftest import pattern_digits, write_mnist_folder
from digitlab.data import Dataset
from digitlab.errors import ModelError
from digitlab.nn import Callback, EarlyStopping
from digitlab.pure import PureNetwork, dense, softmax, sparse, sparse_images
from pure_tutorial import tutorial_train, tutorial_weights
from digitlab.recipes.pure import from_sequential, to_sequential
from digitlab.recipes import get_recipe, train_recipe
from digitlab import save_model

PURE_DIR = Path(digitlab.__file__).parent / "pure"


def _lists(images: np.ndarray) -> list[list[int]]:
    return images.reshape(len(images), -1).tolist()


# ---------------------------------------------------------------------------------- no NumPy
def test_importing_the_pure_engine_loads_no_numpy():
    code = ("import sys, digitlab.pure, digitlab.pure.network, digitlab.pure.images; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'numpy')[:3])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_no_file_of_the_pure_engine_imports_numpy():
    """Also catches an import hidden inside a function, which the subprocess check would miss."""
    for path in PURE_DIR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "numpy" for n in names), f"{path.name} imports {names}"


# ---------------------------------------------------------------------------------- images
def test_sparse_images_keep_only_the_ink():
    assert sparse([0, 0, 255, 0, 51], scale=1 / 255) == ((2, 4), (1.0, 0.2))
    assert dense(sparse([0, 3, 0, 7]), size=4) == [0.0, 3.0, 0.0, 7.0]
    # fewer than two non-zero pixels: padded with zero-valued pixels, still the same image
    assert sparse([0, 0, 9]) == ((0, 1, 2), (0.0, 0.0, 9.0))
    assert sparse([5, 0, 0]) == ((0, 1), (5.0, 0.0))
    assert sparse([0, 0, 0]) == ((0, 1), (0.0, 0.0))
    with pytest.raises(ModelError, match="flat list"):
        sparse([[0, 1], [2, 3]], scale=0.5)


# ---------------------------------------------------------------------------------- maths by hand
def test_one_delta_rule_step_by_hand():
    net = PureNetwork.from_weights([[[0.1, 0.2, 0.3], [0.0, -0.1, 0.5]]])
    x = [1, 0, 2]
    # outputs: 0.1 + 0.6 = 0.7 and 0 + 1.0 = 1.0; label 1 -> errors 0.7 and 0.0
    assert net.outputs(sparse(x)) == pytest.approx([0.7, 1.0])
    loss, acc = net.train_epoch([sparse(x)], [1], lr=0.5, rule="delta")
    assert loss == pytest.approx(0.5 * 0.7**2) and acc == 1.0
    # w[k][j] -= 0.5 * error[k] * x[j]: row 0 moves by -0.35 * x, row 1 not at all
    assert net.weights[0][0] == pytest.approx([0.1 - 0.35, 0.2, 0.3 - 0.7])
    assert net.weights[0][1] == pytest.approx([0.0, -0.1, 0.5])


def test_one_softmax_step_by_hand():
    net = PureNetwork.from_weights([[[1.0, 0.0], [0.0, 1.0]]], biases=[[0.0, 0.5]])
    x = sparse([2, 1])
    z = [2.0, 1.5]
    p = softmax(z)
    assert p == pytest.approx([1 / (1 + math.exp(-0.5)), 1 / (1 + math.exp(0.5))])
    loss, _ = net.train_epoch([x], [0], lr=0.1)
    assert loss == pytest.approx(-math.log(p[0]))
    e = [p[0] - 1, p[1]]
    assert net.weights[0][0] == pytest.approx([1.0 - 0.1 * e[0] * 2, 0.0 - 0.1 * e[0] * 1])
    assert net.weights[0][1] == pytest.approx([0.0 - 0.1 * e[1] * 2, 1.0 - 0.1 * e[1] * 1])
    assert net.biases[0] == pytest.approx([-0.1 * e[0], 0.5 - 0.1 * e[1]])


def test_hidden_layer_step_follows_the_gradient():
    """One SGD step moves every weight by -lr * d loss / d weight; central differences check it."""
    rng = random.Random(1)
    net = PureNetwork([6, 4, 3], seed=2)
    net.biases = [[rng.uniform(-0.5, 0.5) for _ in b] for b in net.biases]  # all ReLUs on or off by margin
    image, label = sparse([0.5, 0.0, 1.0, 0.25, 0.0, 0.75]), 2

    def loss() -> float:
        return -math.log(net.predict_proba(image)[label])

    grads = []
    for params in [*net.weights, net.biases]:  # the biases: a matrix with one row per layer
        for row in params:
            for j in range(len(row)):
                keep = row[j]
                row[j] = keep + 1e-6
                up = loss()
                row[j] = keep - 1e-6
                down = loss()
                row[j] = keep
                grads.append((up - down) / 2e-6)
    before = [*[w for W in net.weights for row in W for w in row], *net.biases[0], *net.biases[1]]
    net.train_epoch([image], [label], lr=0.01)
    after = [*[w for W in net.weights for row in W for w in row], *net.biases[0], *net.biases[1]]
    step = [(b - a) / 0.01 for b, a in zip(before, after)]
    np.testing.assert_allclose(step, grads, rtol=1e-5, atol=1e-7)


def test_fast_delta_rule_is_the_tutorials_loop():
    """The sparse engine with the tutorial's settings does the tutorial's arithmetic."""
    x, y = pattern_digits(40, size=28, seed=3)
    pixels, labels = _lists(x), y.tolist()
    reference = tutorial_train(tutorial_weights(), pixels, labels, alpha=1e-7, epochs=2)
    net = PureNetwork.tutorial()
    images = sparse_images(pixels)
    for _ in range(2):
        net.train_epoch(images, labels, lr=1e-7, rule="delta")
    np.testing.assert_allclose(net.weights[0], reference, rtol=1e-12, atol=1e-15)


# ---------------------------------------------------------------------------------- vs NumPy
@pytest.mark.parametrize("sizes, bias, scale", [([784, 10], False, 1.0), ([784, 32, 10], True, 1 / 255)])
def test_pure_and_numpy_engines_agree(sizes, bias, scale):
    net = PureNetwork(sizes, bias=bias, seed=4)
    if bias:
        rng = random.Random(5)
        net.biases = [[rng.uniform(-0.2, 0.2) for _ in b] for b in net.biases]
    if scale == 1.0:  # raw pixels: small weights, like the tutorial's
        net.weights = [[[w * 1e-3 for w in row] for row in W] for W in net.weights]
    x, _ = pattern_digits(50, size=28, seed=6)
    model = to_sequential(net, scale)
    numpy_probs = model.predict_proba(x)
    pure_probs = [net.predict_proba(image) for image in sparse_images(_lists(x), scale)]
    np.testing.assert_allclose(numpy_probs, pure_probs, atol=1e-6)
    assert model.predict(x).tolist() == [net.predict(i) for i in sparse_images(_lists(x), scale)]

    back, back_scale = from_sequential(model)
    assert back.sizes == sizes and back.bias == bias and back_scale == scale
    np.testing.assert_allclose(back.weights[0], net.weights[0], rtol=1e-6, atol=1e-9)  # float32 round trip


def test_numpy_model_turned_pure_agrees():
    model = get_recipe("pure").build(seed=7)
    net, scale = from_sequential(model)
    x, _ = pattern_digits(30, size=28, seed=8)
    pure_probs = [net.predict_proba(image) for image in sparse_images(_lists(x), scale)]
    np.testing.assert_allclose(model.predict_proba(x), pure_probs, atol=1e-6)


def test_a_pure_model_file_loads_into_the_numpy_engine(tmp_path):
    x, y = pattern_digits(300, size=28, seed=9)
    result = train_recipe("pure", epochs=2, data=(Dataset(x[:250], y[:250]), Dataset(x[250:], y[250:])))
    path = save_model(result.model, tmp_path / "pure.npz")
    loaded = digitlab.load_model(path)
    net, scale = from_sequential(result.model)
    pure_digits = [net.predict(image) for image in sparse_images(_lists(x[250:]), scale)]
    assert loaded.predict(x[250:]).tolist() == pure_digits
    assert loaded.metadata["recipe"] == "pure" and len(loaded.history) == 2
    assert result.test["accuracy"] > 0.9  # a learnable toy problem


# ---------------------------------------------------------------------------------- the trainer
class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs):
        self.calls.append(("train_begin", dict(logs)))

    def on_epoch_begin(self, epoch, logs):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_end(self, batch, logs):
        self.calls.append(("batch_end", dict(logs)))

    def on_epoch_end(self, epoch, logs):
        self.calls.append(("epoch_end", dict(logs)))

    def on_train_end(self, logs):
        self.calls.append(("train_end", dict(logs)))


def test_trainer_reports_like_fit():
    x, y = pattern_digits(400, size=28, seed=10)
    rec = Recorder()
    result = train_recipe("pure", epochs=2, data=(Dataset(x, y), Dataset(x[:10], y[:10])), callbacks=[rec])
    kinds = [c[0] for c in rec.calls]
    assert rec.calls[0] == ("train_begin", {"epochs": 2, "samples": 400, "batches": 400})
    assert kinds.count("epoch_begin") == 2 and kinds.count("epoch_end") == 2 and kinds[-1] == "train_end"
    batches = [c[1] for c in rec.calls if c[0] == "batch_end"]
    assert len(batches) == 2 * 200  # every 0.5% of the images, not after each one
    assert batches[-1]["batch"] == 400 and set(batches[-1]) == {"batch", "batches", "loss", "accuracy", "lr"}
    epochs = result.model.history.epochs
    assert [e["epoch"] for e in epochs] == [1, 2] and set(epochs[0]) == {"epoch", "loss", "accuracy", "lr", "seconds"}
    assert epochs[1]["loss"] < epochs[0]["loss"] and epochs[1]["lr"] == 0.0  # decayed to 0 at the end
    assert rec.calls[-1][1]["epoch"] == 2


def test_trainer_is_seeded_and_stops_early():
    x, y = pattern_digits(100, size=28, seed=11)
    data = (Dataset(x, y), Dataset(x[:20], y[:20]))
    a = train_recipe("pure", epochs=1, data=data, seed=1).model.get_weights()
    b = train_recipe("pure", epochs=1, data=data, seed=1).model.get_weights()
    c = train_recipe("pure", epochs=1, data=data, seed=2).model.get_weights()
    assert all(np.array_equal(u, v) for u, v in zip(a, b)) and not np.array_equal(a[0], c[0])
    stopper = EarlyStopping(monitor="loss", patience=0, min_delta=10.0)  # never improves enough
    result = train_recipe("pure", epochs=5, data=data, callbacks=[stopper])
    assert len(result.model.history) == 2


def test_divergence_and_misuse_are_clear_errors():
    x, y = pattern_digits(100, size=28, seed=12)
    data = (Dataset(x, y), Dataset(x[:10], y[:10]))
    with pytest.raises(ModelError, match="diverged.*Lower the learning rate"):
        train_recipe("tutorial-pure-linear", lr=1e-3, data=data)
    with pytest.raises(ModelError, match="one image at a time"):
        train_recipe("pure", batch_size=32, data=data)
    with pytest.raises(ModelError, match="delta rule"):
        PureNetwork([4, 3, 2]).train_epoch([sparse([1, 2, 0, 1])], [0], lr=0.1, rule="delta")
    with pytest.raises(ModelError, match="labels must be ints in 0..1"):
        PureNetwork([4, 2]).train_epoch([sparse([1, 2, 0, 1])], [2], lr=0.1)
    with pytest.raises(ModelError, match="sizes"):
        PureNetwork([784])


# ---------------------------------------------------------------------------------- real MNIST
@pytest.mark.mnist
def test_tutorial_recipe_reproduces_its_published_figure(mnist):
    train, test = mnist
    recipe = get_recipe("tutorial-pure-linear")
    result = train_recipe(recipe, data=(train[: recipe.train_limit], test))
    assert abs(result.test["accuracy"] - 0.7447) <= 0.005
    assert result.model.metadata["published_accuracy"] == 0.7447


@pytest.mark.mnist
def test_pure_recipe_learns_on_a_short_run(mnist):
    train, test = mnist
    result = train_recipe("pure", epochs=1, data=(train[:10_000], test))
    assert result.test["accuracy"] >= 0.90


# ---------------------------------------------------------------------------------- CLI
@pytest.mark.parametrize("recipe", ["pure", "tutorial-pure-linear"])
def test_cli_trains_a_pure_recipe(recipe, tmp_path, capsys):
    from digitlab.cli import main

    folder = write_mnist_folder(tmp_path / "mnist", n_train=64, n_test=20)
    out = tmp_path / f"{recipe}.npz"
    assert main(["train", "--recipe", recipe, "--epochs", "1", "--out", str(out), "--data-dir", str(folder)]) == 0
    text = capsys.readouterr().out
    assert "test accuracy" in text and f"saved {out}" in text
    model = digitlab.load_model(out)
    assert model.metadata["recipe"] == recipe and len(model.history) == 1
    assert main(["train", "--recipe", recipe, "--batch-size", "8", "--data-dir", str(folder)]) == 2
    assert "one image at a time" in capsys.readouterr().err
