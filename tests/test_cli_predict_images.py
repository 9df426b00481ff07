"""``digitlab predict MODEL IMAGE...``: rendered handwriting read end to end through the CLI."""

import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from digitlab.cli import main
from digitlab.modelfile import load_model
from digitlab.vision import read
from synth import make_handwriting_set, render_number

pytestmark = [pytest.mark.mnist, pytest.mark.slow]


def test_predict_rendered_digits(mnist_model, tmp_path, capsys):
    samples = [s for s in make_handwriting_set(2, seed=11, kinds=("pen-on-paper", "large-canvas"))]
    paths = []
    for i, (image, label, kind) in enumerate(samples):
        paths.append(tmp_path / f"{i}-{label}.png")
        image.save(paths[-1])
    show = tmp_path / "seen.png"
    assert main(["predict", str(mnist_model), *map(str, paths), "--show", str(show)]) == 0
    out = capsys.readouterr().out
    answers = dict(re.findall(r"(\d+-\d)\.png\s*│\s*(\S)", out))
    right = sum(answers[p.stem] == p.stem[-1] for p in paths)
    assert right >= len(paths) - 2, out  # a one-epoch CNN reads clean rendered digits
    with Image.open(show) as im:
        assert im.width > 300 and np.asarray(im.convert("L")).std() > 10


def test_predict_a_number_and_abstain(mnist_model, tmp_path, capsys):
    model = load_model(mnist_model)
    image = render_number("2026", touching=False, seed=3)
    reading = read(model, image, number=True)
    assert len(reading.text) == 4 and reading.probabilities.shape == (4, 10)
    path = tmp_path / "year.png"
    image.save(path)
    assert main(["predict", str(mnist_model), str(path), "--number", "--threshold", "1.0"]) == 0
    assert "????" in capsys.readouterr().out  # nothing is certain to probability 1


def test_bad_images_are_rows_with_their_reason(mnist_model, tmp_path, capsys, monkeypatch):
    """An image that cannot be read gets its row and its reason; the others are still read, and
    the exit status is 1 with a one-line count."""
    monkeypatch.chdir(tmp_path)  # short names: each row on one line
    Path("notes.png").write_text("not an image")
    Image.new("L", (200, 200), 255).save("blank.png")
    render_number("7", touching=False, seed=1).save("seven.png")
    assert main(["predict", str(mnist_model), "notes.png", "blank.png", "missing.png", "seven.png"]) == 1
    captured = capsys.readouterr()
    out = " ".join(captured.out.replace("│", " ").split())
    for message in ("not an image", "no digit found (the image is blank)", "no such file or folder"):
        assert message in out
    assert re.search(r"seven\.png\s*│\s*7", captured.out) and "Traceback" not in captured.err
    assert captured.err.strip() == "3 of 4 images could not be read: the error column says why"
