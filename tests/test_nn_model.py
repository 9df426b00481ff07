"""Sequential: training works, is reproducible, saves and loads exactly, and refuses misuse clearly."""

import io
import json
import zipfile

import numpy as np
import pytest

import digitlab
from digitlab.data import Dataset
from digitlab.errors import ModelError
from digitlab.modelfile import ModelCheckpoint, load_model, read_header, save_model
from digitlab.nn import (
    Adam,
    Callback,
    Dense,
    Dropout,
    EarlyStopping,
    Flatten,
    ReLU,
    Rescaling,
    Sequential,
    Sigmoid,
    Softmax,
)
from digitlab.cli._ui import ProgressBar
from digitlab.nn.initializers import get_initializer
from conftest import pattern_digits


def small_model(seed=0, hidden=32, dropout=0.1):
    return Sequential([Rescaling(1 / 255), Flatten(), Dense(hidden), ReLU(), Dropout(dropout), Dense(10), Softmax()],
                      input_shape=(8, 8), seed=seed).compile(Adam(0.01))


@pytest.fixture(scope="module")
def toy():
    return pattern_digits(400, seed=0), pattern_digits(200, seed=1)


def test_fit_learns_and_history_records(toy):
    (x, y), (xt, yt) = toy
    model = small_model()
    history = model.fit(x, y, epochs=5, batch_size=32, validation_data=(xt, yt))
    assert len(history) == 5 and history["epoch"] == [1, 2, 3, 4, 5]
    assert history["loss"][-1] < history["loss"][0]
    assert model.evaluate(xt, yt)["accuracy"] > 0.9
    assert set(history.epochs[0]) >= {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "seconds"}
    probs = model.predict_proba(xt)
    assert probs.dtype == np.float32 and probs.shape == (200, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(model.predict(xt), probs.argmax(axis=1))


def test_fit_accepts_a_dataset_and_validation_split(toy):
    (x, y), _ = toy
    model = small_model()
    history = model.fit(Dataset(x, y), epochs=1, validation_split=0.25)
    assert "val_accuracy" in history.epochs[0]


def test_same_seed_same_result_different_seed_different(toy):
    (x, y), _ = toy
    runs = []
    for seed in (7, 7, 8):
        model = small_model(seed)
        history = model.fit(x, y, epochs=2, batch_size=16)
        runs.append((model.get_weights(), history["loss"]))
    for a, b in zip(runs[0][0], runs[1][0]):
        np.testing.assert_array_equal(a, b)
    assert runs[0][1] == runs[1][1]
    assert not np.array_equal(runs[0][0][0], runs[2][0][0])


def test_save_load_identical_predictions(toy, tmp_path):
    (x, y), (xt, yt) = toy
    model = small_model()
    model.fit(x, y, epochs=2)
    path = save_model(model, tmp_path / "m.npz", recipe="toy", metrics={"test_accuracy": 0.5})
    loaded = digitlab.load_model(path)
    np.testing.assert_array_equal(loaded.predict_proba(xt), model.predict_proba(xt))
    assert loaded.history.epochs == json.loads(json.dumps(model.history.epochs))
    assert loaded.metadata["recipe"] == "toy" and loaded.metadata["metrics"]["test_accuracy"] == 0.5
    header = read_header(path)
    assert header["format"] == "digitlab-model" and header["digitlab_version"] == digitlab.__version__
    assert header["compile"]["optimizer"]["name"] == "adam"
    # a loaded model keeps training where it left off
    loaded.fit(x, y, epochs=1)
    assert len(loaded.history) == 3


def test_save_leaves_no_temporary_files(toy, tmp_path):
    model = small_model()
    save_model(model, tmp_path / "m.npz")
    save_model(model, tmp_path / "m.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["m.npz"]


def _rewrite(path, mutate):
    """Rewrite a model file's members through ``mutate(dict_of_arrays)``."""
    with np.load(path, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    mutate(members)
    np.savez(path, **members)


def test_newer_format_is_refused(tmp_path):
    path = save_model(small_model(), tmp_path / "m.npz")

    def newer(members):
        header = json.loads(members["header"].tobytes())
        header["format_version"] = 99
        members["header"] = np.frombuffer(json.dumps(header).encode(), np.uint8)

    _rewrite(path, newer)
    with pytest.raises(ModelError, match="format 99.*upgrade digitlab"):
        load_model(path)


def test_tampered_weights_are_refused(tmp_path):
    path = save_model(small_model(), tmp_path / "m.npz")

    def tamper(members):
        members["w000"] = members["w000"] + 1

    _rewrite(path, tamper)
    with pytest.raises(ModelError, match="checksum"):
        load_model(path)


def test_truncated_and_foreign_files_are_refused(tmp_path):
    path = save_model(small_model(), tmp_path / "m.npz")
    data = path.read_bytes()
    cut = tmp_path / "cut.npz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="truncated or corrupt"):
        load_model(cut)
    other = tmp_path / "other.npz"
    np.savez(other, a=np.zeros(3))
    with pytest.raises(ModelError, match="not a digitlab model file"):
        load_model(other)
    with pytest.raises(ModelError, match="no such model file"):
        load_model(tmp_path / "missing.npz")
    with pytest.raises(ModelError, match="end in .npz"):
        save_model(small_model(), tmp_path / "model.pkl")


def test_pickled_arrays_are_never_loaded(tmp_path):
    path = save_model(small_model(), tmp_path / "m.npz")

    def inject(members):
        members["w000"] = np.array([object()], dtype=object)

    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    assert "header.npy" in names
    with np.load(path, allow_pickle=False) as npz:
        members = {k: npz[k] for k in npz.files}
    members["w000"] = np.array([{"x": 1}], dtype=object)
    buffer = io.BytesIO()
    np.savez(buffer, **members)
    (tmp_path / "evil.npz").write_bytes(buffer.getvalue())
    with pytest.raises(ModelError, match="truncated or corrupt|not a readable"):
        load_model(tmp_path / "evil.npz")


def test_misuse_is_explained(toy):
    (x, y), _ = toy
    model = small_model()
    with pytest.raises(ModelError, match=r"expected inputs of shape N x 8 x 8, got \(5, 9, 9\)"):
        model.predict(np.zeros((5, 9, 9), np.uint8))
    with pytest.raises(ModelError, match="got one input"):
        model.predict(np.zeros((8, 8), np.uint8))
    with pytest.raises(ModelError, match=r"labels must be in 0..9 .*got 0..10"):
        model.fit(x[:3], np.array([0, 1, 10]))
    with pytest.raises(ModelError, match="5 integer labels"):
        model.fit(x[:5], y[:4])
    with pytest.raises(ModelError, match="epochs must be a positive integer"):
        model.fit(x, y, epochs=0)
    with pytest.raises(ModelError, match="compile"):
        Sequential([Flatten(), Dense(10), Softmax()], input_shape=(8, 8)).fit(x, y)
    with pytest.raises(ModelError, match="needs a final Softmax"):
        Sequential([Flatten(), Dense(10), Sigmoid()], input_shape=(8, 8)).compile("sgd", "cross_entropy")
    with pytest.raises(ModelError, match="Received: units=0"):
        Dense(0)
    with pytest.raises(ModelError, match="unknown initializer"):
        Dense(3, init="hee")


def test_nan_loss_stops_training_and_keeps_finite_weights(toy):
    (x, y), _ = toy
    # a linear model on raw 0..255 pixels with squared error and lr 1 blows up within a few steps
    model = Sequential([Rescaling(1.0), Flatten(), Dense(10)], input_shape=(8, 8)).compile({"name": "sgd", "lr": 1.0}, "mse")
    with pytest.raises(ModelError, match="non-finite at epoch 1.*Lower the learning rate"):
        model.fit(x, y, epochs=3)
    assert all(np.isfinite(w).all() for w in model.get_weights())


def test_early_stopping_restores_best(toy):
    (x, y), _ = toy
    scores = [0.9, 0.5, 0.6, 0.7, 0.4]  # best at epoch 2; patience 1 stops after epoch 4

    class Scripted(Callback):
        """Stands in for validation: a scripted val_loss, and a copy of the weights each epoch."""

        weights = {}

        def on_epoch_end(self, epoch, logs):
            logs["val_loss"] = scores[epoch - 1]
            self.weights[epoch] = self.model.get_weights()

    scripted, stop = Scripted(), EarlyStopping(monitor="val_loss", patience=1)
    model = small_model()
    history = model.fit(x, y, epochs=5, callbacks=[scripted, stop])
    assert stop.stopped_epoch == 4 and len(history) == 4
    for a, b in zip(model.get_weights(), scripted.weights[2]):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ModelError, match="give validation data"):
        small_model().fit(x, y, epochs=1, callbacks=[EarlyStopping()])


def test_checkpoint_and_progress_bar(toy, tmp_path):
    (x, y), _ = toy
    stream = io.StringIO()
    model = small_model()
    model.fit(x, y, epochs=2, callbacks=[ModelCheckpoint(str(tmp_path / "ck-{epoch}.npz")), ProgressBar(stream)])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck-1.npz", "ck-2.npz"]
    assert len(load_model(tmp_path / "ck-1.npz").history) == 1
    assert "epoch 2/2" in stream.getvalue()


def test_summary_and_config_round_trip():
    model = small_model(hidden=16)
    rows = model.summary()
    assert [r[2] for r in rows] == [0, 0, 64 * 16 + 16, 0, 0, 16 * 10 + 10, 0]
    assert model.num_params == 64 * 16 + 16 + 170
    clone = Sequential.from_config(model.get_config())
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize("name, variance, uniform", [
    ("he_normal", lambda fi, fo: 2 / fi, False),
    ("he_uniform", lambda fi, fo: 2 / fi, True),
    ("glorot_uniform", lambda fi, fo: 2 / (fi + fo), True),
    ("glorot_normal", lambda fi, fo: 2 / (fi + fo), False),
    ("lecun_normal", lambda fi, fo: 1 / fi, False),
    ("lecun_uniform", lambda fi, fo: 1 / fi, True),
    ("pytorch_default", lambda fi, fo: 1 / (3 * fi), True),
])
def test_initializers_draw_their_documented_spread(name, variance, uniform):
    fan_in, fan_out = 288, 64
    w = get_initializer(name)((fan_in, 40 * fan_out), fan_in, fan_out, np.random.default_rng(0))
    std = np.sqrt(variance(fan_in, fan_out))
    assert w.dtype == np.float32
    assert abs(w.mean()) < 0.01 * std
    assert w.std() == pytest.approx(std, rel=0.01)
    if uniform:  # U(-a, a) has standard deviation a / sqrt(3), and nothing beyond a
        assert np.abs(w).max() <= np.float32(std * np.sqrt(3))
        assert np.abs(w).max() > 0.999 * std * np.sqrt(3)
