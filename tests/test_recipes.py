"""Recipes: names, architectures as published, and real training on MNIST."""

import numpy as np
import pytest

from digitlab.errors import ModelError
from digitlab.nn import Dense, Dropout, Sigmoid
from digitlab.recipes import RECIPES, get_recipe, train_recipe


def test_unknown_recipe_lists_the_known_ones():
    with pytest.raises(ModelError) as err:
        get_recipe("resnet")
    for name in RECIPES:
        assert name in str(err.value)


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_every_recipe_builds_and_predicts_raw_images(name):
    recipe = get_recipe(name)
    model = recipe.build(seed=0)
    images = np.random.default_rng(0).integers(0, 256, (3, *recipe.input_shape), dtype=np.uint8)
    probs = model.predict_proba(images)
    assert probs.shape == (3, 10) and np.isfinite(probs).all()


def test_tutorial_architectures_are_as_published():
    keras = get_recipe("tutorial-keras-dense").build()
    dense = [l.units for l in keras.layers if isinstance(l, Dense)]
    assert dense == [1024, 128, 64, 10]
    assert [type(l).__name__ for l in keras.layers[2:]] == [
        "Dense", "ReLU", "Dense", "Tanh", "Dropout", "Dense", "ReLU", "Dense", "Softmax"]
    assert next(l for l in keras.layers if isinstance(l, Dropout)).rate == 0.05
    assert keras.num_params == 784 * 1024 + 1024 + 1024 * 128 + 128 + 128 * 64 + 64 + 64 * 10 + 10

    sigmoid = get_recipe("tutorial-sigmoid200")
    model = sigmoid.build()
    assert model.num_params == 784 * 200 + 200 * 10  # no biases in the tutorial's network
    assert isinstance(model.layers[-1], Sigmoid) and sigmoid.batch_size == 1 and sigmoid.epochs == 5
    x = model.layers[0].forward(np.array([[0, 255]], np.uint8))
    np.testing.assert_allclose(x, [[0.01, 1.0]], rtol=1e-6)

    relu = get_recipe("tutorial-relu512")
    model = relu.build()
    assert [l.units for l in model.layers if isinstance(l, Dense)] == [512, 10]
    w = model.layers[2].params[0]
    assert w.min() >= 0 and w.max() < np.sqrt(1 / 784)  # U[0,1) * sqrt(1/n), all positive
    assert relu.batch_size == 128 and relu.optimizer == {"name": "sgd", "lr": 0.15}


def test_cnn_m5_is_an_et_al_m5_trained_as_cnn_is():
    from digitlab.nn import BatchNorm, Conv2D, Rescaling

    recipe = get_recipe("cnn-m5")
    model = recipe.build()
    convs = [l for l in model.layers if isinstance(l, Conv2D)]
    assert [c.filters for c in convs] == [32, 64, 96, 128, 160]
    assert {(c.kernel_size, c.stride, c.padding, c.use_bias) for c in convs} == {(5, 1, "valid", False)}
    assert [c.output_shape[:2] for c in convs] == [(24, 24), (20, 20), (16, 16), (12, 12), (8, 8)]
    dense = next(l for l in model.layers if isinstance(l, Dense))
    assert dense.units == 10 and not dense.use_bias
    assert [type(l).__name__ for l in model.layers[-3:]] == ["Dense", "BatchNorm", "Softmax"]
    assert sum(isinstance(l, BatchNorm) for l in model.layers) == 6
    rescale = model.layers[0]
    assert isinstance(rescale, Rescaling) and (rescale.scale, rescale.offset) == (pytest.approx(2 / 255), -1.0)  # pixels to [-1, 1]
    weights = 25 * (1 * 32 + 32 * 64 + 64 * 96 + 96 * 128 + 128 * 160) + 8 * 8 * 160 * 10
    assert model.num_params == weights + 2 * (32 + 64 + 96 + 128 + 160 + 10)  # + batch norm's scale and shift
    cnn = get_recipe("cnn")
    assert (recipe.optimizer, recipe.schedule, recipe.batch_size, recipe.augment) == (
        cnn.optimizer, cnn.schedule, cnn.batch_size, cnn.augment)
    assert recipe.epochs == 12


def test_train_recipe_records_how_the_model_was_made(tmp_path):
    from conftest import pattern_digits
    from digitlab.data import Dataset

    x, y = pattern_digits(200, size=28)
    data = (Dataset(x, y), Dataset(x[:50], y[:50]))
    result = train_recipe("tutorial-keras-dense", epochs=1, data=data, seed=3)
    meta = result.model.metadata
    assert meta["recipe"] == "tutorial-keras-dense" and meta["published_accuracy"] == 0.9811
    assert meta["training"]["seed"] == 3 and meta["training"]["epochs"] == 1
    assert meta["metrics"]["test_accuracy"] == result.test["accuracy"]


@pytest.mark.mnist
@pytest.mark.slow
def test_mlp_one_epoch_on_real_mnist(mnist):
    result = train_recipe("mlp", epochs=1, data=mnist)
    assert result.test["accuracy"] >= 0.96
