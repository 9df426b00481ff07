"""The ``digitlab data`` commands, driven through the CLI entry point: exit codes and output."""

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import main
from conftest import write_mnist_folder


def test_info_on_a_folder(tmp_path, capsys):
    folder = write_mnist_folder(tmp_path / "m", n_train=30, n_test=10)
    assert main(["data", "info", "--dataset", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "mnist-train" in out and "30" in out and "28x28" in out and "images per class" in out


def test_show_writes_a_readable_grid(tmp_path, capsys):
    folder = write_mnist_folder(tmp_path / "m")
    out_png = tmp_path / "grid.png"
    assert main(["data", "show", "--data-dir", str(folder), "--n", "16", "--out", str(out_png)]) == 0
    assert str(out_png) in capsys.readouterr().out
    with Image.open(out_png) as im:
        assert im.format == "PNG" and im.width > 200 and im.height > 200
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 20  # the digits are drawn, not a blank canvas


def test_show_draws_a_recipes_distortions(tmp_path, capsys):
    folder = write_mnist_folder(tmp_path / "m")
    plain, bent, again = (tmp_path / f"{name}.png" for name in ("plain", "bent", "again"))
    base = ["data", "show", "--data-dir", str(folder), "--n", "9"]
    assert main([*base, "--out", str(plain)]) == 0
    assert main([*base, "--out", str(bent), "--augment", "cnn", "--seed", "3"]) == 0
    assert main([*base, "--out", str(again), "--augment", "cnn", "--seed", "3"]) == 0
    pixels = [np.asarray(Image.open(p).convert("L")) for p in (plain, bent, again)]
    assert not np.array_equal(pixels[0], pixels[1])
    np.testing.assert_array_equal(pixels[1], pixels[2])
    capsys.readouterr()
    assert main([*base, "--out", str(tmp_path / "x.png"), "--augment", "mlp"]) == 2
    assert "undistorted" in capsys.readouterr().err and not (tmp_path / "x.png").exists()


def test_bad_dataset_is_one_line_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "train-images-idx3-ubyte").write_bytes(b"garbage!")
    code = main(["data", "info", "--dataset", str(bad)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error:") and "Traceback" not in err
    assert len(err.strip().splitlines()) <= 2  # one message (rich may wrap it once)


def test_show_start_past_end(tmp_path, capsys):
    folder = write_mnist_folder(tmp_path / "m", n_train=5)
    assert main(["data", "show", "--data-dir", str(folder), "--start", "99"]) == 2
    assert "--start" in capsys.readouterr().err


def test_help_and_usage_errors(capsys):
    assert main(["--help"]) == 0
    assert "data" in capsys.readouterr().out
    assert main(["data", "frobnicate"]) == 2


@pytest.mark.mnist
def test_info_real_mnist(mnist_dir, capsys):
    assert main(["data", "info", "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    assert "60,000" in out and "10,000" in out and "5,923" in out
