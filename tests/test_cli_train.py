"""``digitlab train | evaluate | predict`` through the CLI entry point, on a tiny MNIST-shaped folder."""

import pytest

from digitlab.cli import main
from digitlab.modelfile import load_model
from conftest import write_mnist_folder


@pytest.fixture
def tiny(tmp_path):
    return write_mnist_folder(tmp_path / "mnist", n_train=64, n_test=20)


def test_train_evaluate_predict(tiny, tmp_path, capsys):
    out = tmp_path / "m.npz"
    args = ["--data-dir", str(tiny)]
    assert main(["train", "--recipe", "tutorial-keras-dense", "--epochs", "2", "--out", str(out), *args]) == 0
    captured = capsys.readouterr()
    text = captured.out
    assert "test accuracy" in text and "98.11%" in text and f"saved {out}" in text
    # Not a terminal: a plain line as each epoch ends, not a bar drawn once at the end.
    epochs = [line for line in captured.err.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"] and all(" loss " in line for line in epochs)
    assert "━" not in captured.err
    assert len(load_model(out).history) == 2

    assert main(["evaluate", str(out), str(out), *args]) == 0
    text = capsys.readouterr().out
    assert "ensemble of 2" in text and "mnist-test" in text

    assert main(["predict", str(out), "--index", "3", *args]) == 0
    text = capsys.readouterr().out
    assert "test image 3" in text and "probability" in text


def test_user_errors_exit_2_with_one_line(tiny, tmp_path, capsys):
    assert main(["train", "--recipe", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown recipe 'nope'" in err and "mlp" in err and "Traceback" not in err

    assert main(["evaluate", str(tmp_path / "missing.npz")]) == 2
    assert "no such model file" in capsys.readouterr().err

    out = tmp_path / "m.npz"
    assert main(["train", "-r", "tutorial-keras-dense", "--epochs", "1", "--out", str(out), "--data-dir", str(tiny)]) == 0
    capsys.readouterr()
    assert main(["predict", str(out), "--index", "20", "--data-dir", str(tiny)]) == 2
    assert "20 images" in capsys.readouterr().err
    assert main(["train", "--epochs", "0"]) == 2
