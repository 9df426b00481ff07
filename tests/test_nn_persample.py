"""Per-sample SGD taken a block at a time (`digitlab.nn.persample`) gives the same training as
`Sequential.train_step` on batches of one: same weights, same history, same divergence handling."""

import numpy as np
import pytest

import digitlab.nn.model as model_module
from digitlab.errors import ModelError
from digitlab.nn import SGD, Adam, Dense, Dropout, Flatten, ReLU, Rescaling, Sequential, Sigmoid, Softmax, Tanh
from digitlab.nn import Callback, persample
from digitlab.cli._ui import Every
from conftest import pattern_digits


def tutorial_net(seed=0):
    return Sequential([Rescaling(0.99 / 255, 0.01), Flatten(),
                       Dense(20, init="normal_fan_in", use_bias=False), Sigmoid(),
                       Dense(10, init="normal_fan_in", use_bias=False), Sigmoid()],
                      input_shape=(8, 8), seed=seed).compile({"name": "sgd", "lr": 0.1},
                                                             {"name": "mse", "off": 0.01, "on": 0.99})


def deep_net(seed=0):
    return Sequential([Rescaling(1 / 255), Flatten(), Dense(16), Tanh(), Dense(12), ReLU(), Dense(10), Softmax()],
                      input_shape=(8, 8), seed=seed).compile(SGD(0.05), "cross_entropy", schedule="cosine")


def train(make, x, y, monkeypatch, blocked: bool, epochs=2):
    model = make()
    if blocked:
        assert persample.plan(model) is not None
    else:
        monkeypatch.setattr(model_module, "per_sample_plan", lambda m: None)
    history = model.fit(x, y, epochs=epochs, batch_size=1)
    monkeypatch.undo()
    return model, history


@pytest.mark.parametrize("make", [tutorial_net, deep_net], ids=["sigmoid-mse-no-bias", "tanh-relu-softmax-bias"])
def test_blocked_steps_equal_plain_steps(make, monkeypatch):
    # 150 samples: two full blocks of 64 and a partial one, shuffled differently each epoch
    x, y = pattern_digits(150, seed=3)
    plain, h_plain = train(make, x, y, monkeypatch, blocked=False)
    blocked, h_blocked = train(make, x, y, monkeypatch, blocked=True)
    for a, b in zip(plain.get_weights(), blocked.get_weights()):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    for ep, eb in zip(h_plain.epochs, h_blocked.epochs):
        assert ep["accuracy"] == eb["accuracy"]
        assert eb["loss"] == pytest.approx(ep["loss"], rel=1e-4)
        assert eb["lr"] == pytest.approx(ep["lr"])
    # and training did something: the weights moved from their initial values
    assert not np.allclose(blocked.get_weights()[0], make().get_weights()[0])


class Batches(Callback):
    def __init__(self):
        self.seen = []

    def on_batch_end(self, batch, logs):
        self.seen.append((batch, logs["batches"], logs["accuracy"]))


def test_fit_uses_the_blocked_path_only_where_it_applies(monkeypatch):
    x, y = pattern_digits(150, seed=4)
    calls = []
    real_epoch = persample.PerSample.epoch
    monkeypatch.setattr(persample.PerSample, "epoch", lambda self, *a: calls.append(1) or real_epoch(self, *a))
    batches = Batches()
    history = tutorial_net().fit(x, y, epochs=1, batch_size=1, callbacks=[batches])
    assert calls == [1]
    # batch callbacks hear about each block, and the last report is the epoch's
    assert [b for b, _, _ in batches.seen] == [64, 128, 150] and batches.seen[-1][1] == 150
    assert batches.seen[-1][2] == history.epochs[0]["accuracy"]
    tutorial_net().fit(x, y, epochs=1, batch_size=2)  # mini-batches: the ordinary path
    assert calls == [1]


def test_progress_is_redrawn_on_batch_numbers_that_skip():
    due = Every(1000, 10)  # about every 100 batches, always at the last
    assert [b for b in range(1, 1001) if due(b)] == [1, 101, 201, 301, 401, 501, 601, 701, 801, 901, 1000]
    due = Every(150, 100)
    assert [b for b in (64, 128, 150) if due(b)] == [64, 128, 150]


@pytest.mark.parametrize("layers, optimizer, loss", [
    ([Flatten(), Dense(16), ReLU(), Dropout(0.1), Dense(10), Softmax()], SGD(0.1), "cross_entropy"),
    ([Flatten(), Dense(16), ReLU(), Dense(10), Softmax()], Adam(0.01), "cross_entropy"),
    ([Flatten(), Dense(16), ReLU(), Dense(10), Softmax()], SGD(0.1, momentum=0.9), "cross_entropy"),
    ([Flatten(), Dense(16), ReLU(), Dense(10), Softmax()], SGD(0.1), {"name": "cross_entropy", "label_smoothing": 0.1}),
    ([Flatten(), Dense(10), Softmax()], SGD(0.1), "mse"),
    ([Flatten(), Dense(10)], SGD(0.1), "mse"),
], ids=["dropout", "adam", "momentum", "label-smoothing", "softmax-mse", "linear-output"])
def test_no_plan_for_what_it_does_not_cover(layers, optimizer, loss):
    model = Sequential(layers, input_shape=(8, 8)).compile(optimizer, loss)
    assert persample.plan(model) is None


def test_divergence_keeps_the_last_good_weights():
    x, y = pattern_digits(100, seed=5)
    model = Sequential([Rescaling(1.0), Flatten(), Dense(10), Sigmoid()], input_shape=(8, 8)).compile(SGD(1e38), "mse")
    assert persample.plan(model) is not None
    before = [w.copy() for w in model.get_weights()]
    with np.errstate(over="ignore", invalid="ignore"):
        with pytest.raises(ModelError, match="non-finite at epoch 1.*Lower the learning rate"):
            model.fit(x, y, epochs=2, batch_size=1)
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)
