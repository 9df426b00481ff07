"""``digitlab evaluate`` (report, corruptions, robustness, abstention) and ``digitlab compare``
through the CLI entry point, on a model trained in the test on a tiny MNIST-shaped folder."""

import re

import pytest
from PIL import Image

from conftest import write_mnist_folder
from digitlab.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(data folder, model A, model B): two one-epoch models on 64 random images, 20 test images."""
    root = tmp_path_factory.mktemp("cli-eval")
    data = write_mnist_folder(root / "mnist", n_train=64, n_test=20)
    models = []
    for seed in (0, 1):
        out = root / f"m{seed}.npz"
        assert main(["train", "-r", "tutorial-keras-dense", "--epochs", "1", "--seed", str(seed),
                     "--out", str(out), "--data-dir", str(data)]) == 0
        models.append(out)
    return data, *models


def test_evaluate_prints_metrics_and_writes_a_report(setup, tmp_path, capsys):
    data, a, b = setup
    capsys.readouterr()
    report = tmp_path / "report"
    assert main(["evaluate", str(a), "--report", str(report), "--threshold", "0.3", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "mnist-test (20 images)" in out and "per class" in out and "macro" in out
    assert "confusion matrix" in out and "coverage (p ≥ 0.3)" in out and "accuracy kept" in out
    assert f"wrote {report / 'report.html'}" in out
    text = (report / "report.html").read_text()
    for link in re.findall(r'(?:src|href)="([^"]+)"', text):
        assert (report / link).is_file(), link
    for name in ("confusion.png", "curves.png", "weights.png"):
        with Image.open(report / name) as im:
            assert im.format == "PNG"


def test_evaluate_two_models_with_robustness(setup, tmp_path, capsys, monkeypatch):
    data, a, b = setup
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert main(["evaluate", str(a), str(b), "--robustness", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "ensemble of 2" in out and "accuracy under corruptions" in out
    for kind in ("noise", "blur", "rotate", "shift", "scale", "thicken", "thin", "invert"):
        assert kind in out
    assert "wrote robustness.png" in out and (tmp_path / "robustness.png").is_file()


def test_evaluate_under_one_corruption(setup, capsys):
    data, a, _ = setup
    capsys.readouterr()
    assert main(["evaluate", str(a), "--corrupt", "blur", "--severity", "2", "--data-dir", str(data)]) == 0
    assert "mnist-test+blur2 (20 images)" in capsys.readouterr().out


def test_compare_writes_the_disagreements(setup, tmp_path, capsys):
    data, a, b = setup
    out = tmp_path / "dis.png"
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--out", str(out), "--data-dir", str(data)]) == 0
    text = capsys.readouterr().out
    assert f"A: {a}" in text and f"B: {b}" in text and "McNemar" in text and "disagree on" in text
    assert "macro F1" in text and "right where the other is wrong" in text
    if "disagree on 0 images" not in text:
        assert out.is_file() and f"wrote {out}" in text


def test_user_errors_exit_2_with_one_line(setup, tmp_path, capsys):
    data, a, b = setup
    args = ["--data-dir", str(data)]
    cases = [
        (["evaluate", str(a), "--corrupt", "fog", *args], "unknown corruption 'fog'"),
        (["evaluate", str(a), "--corrupt", "blur", "--robustness", *args], "not both"),
        (["evaluate", str(a), "--severity", "9", *args], "--severity"),
        (["evaluate", str(a), "--threshold", "1.5", *args], "--threshold"),
        (["compare", str(a), str(tmp_path / "nope.npz"), *args], "no such model file"),
        (["reproduce", "--recipes", "nope"], "unknown recipe 'nope'"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        captured = capsys.readouterr()
        assert message in captured.err + captured.out, (argv, captured)
        assert "Traceback" not in captured.err
