"""Figures are real PNGs of a sensible size with something drawn on them; report.html links only
files that exist and nothing on the network."""

import json
import re

import numpy as np
import pytest
from PIL import Image

from conftest import pattern_digits
from digitlab import plots
from digitlab.data import Dataset
from digitlab.errors import DigitlabError
from digitlab.evaluate import Ensemble, evaluate_model, robustness
from digitlab.recipes import get_recipe
from digitlab.report import ModelEntry, write_report


@pytest.fixture(scope="module")
def trained():
    """A dense model trained for 2 epochs on a learnable but noisy toy problem (28 x 28), with
    validation: it makes some mistakes."""
    x, y = pattern_digits(300, size=28, noise=250)
    train, test = Dataset(x[:240], y[:240], "toy-train"), Dataset(x[240:], y[240:], "toy-test")
    model = get_recipe("tutorial-keras-dense").build(seed=0)
    model.fit(train, epochs=2, batch_size=32, validation_data=test)
    return model, test


def check_png(path, min_size=(200, 150), max_size=(2000, 2000)):
    """Opens as a PNG, size within bounds, and not blank."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        w, h = im.size
        assert min_size[0] <= w <= max_size[0] and min_size[1] <= h <= max_size[1], im.size
        grey = np.asarray(im.convert("L"), dtype=float)
    assert grey.std() > 20, f"{path} looks blank (pixel std {grey.std():.1f})"
    return w, h


def test_confusion_figure(tmp_path):
    confusion = np.diag(np.arange(90, 100)) + np.eye(10, k=1, dtype=int) * 3
    w, h = check_png(plots.confusion_figure(confusion, tmp_path / "c.png"), (450, 400), (800, 700))


def test_mistakes_gallery_and_captions(tmp_path):
    x, y = pattern_digits(12, size=28)
    path = plots.mistakes_gallery(x, y, (y + 1) % 10, np.linspace(0.99, 0.5, 12), tmp_path / "m.png", title="mistakes")
    w, h = check_png(path, (600, 150))
    assert w > h  # ten to a row


def test_training_curves_with_and_without_validation(trained, tmp_path):
    model, _ = trained
    check_png(plots.training_curves(model.history.epochs, tmp_path / "t.png"), (600, 200), (1200, 500))
    check_png(plots.training_curves([{"epoch": 1, "loss": 2.0, "accuracy": 0.3}, {"epoch": 2, "loss": 1.0, "accuracy": 0.6}],
                                    tmp_path / "t2.png"), (600, 200), (1200, 500))
    with pytest.raises(DigitlabError, match="no training history"):
        plots.training_curves([], tmp_path / "t3.png")


def test_first_layer_weights_dense_and_conv(trained, tmp_path):
    model, _ = trained
    check_png(plots.first_layer_weights(model, tmp_path / "w.png", max_units=16), (200, 200), (900, 900))
    check_png(plots.first_layer_weights(get_recipe("cnn-fast").build(), tmp_path / "k.png"), (200, 200), (900, 900))
    from digitlab.nn import Sequential, Softmax

    with pytest.raises(DigitlabError, match="no dense or convolution"):
        plots.first_layer_weights(Sequential([Softmax()], input_shape=(10,)), tmp_path / "none.png")


def test_robustness_figure(trained, tmp_path):
    model, test = trained
    result = robustness(model, test[:20], kinds=("blur", "shift"), severities=(1, 2, 3))
    check_png(plots.robustness_figure(result, tmp_path / "r.png"), (500, 300), (1200, 700))


def test_report_links_only_files_that_exist(trained, tmp_path):
    model, test = trained
    model.metadata.update(recipe="tutorial-keras-dense", published_accuracy=0.9811,
                          training={"epochs": 2, "batch_size": 32, "dataset": "mnist"})
    other = get_recipe("tutorial-keras-dense").build(seed=1)  # untrained, no history: noted, not linked
    entries = [ModelEntry("a.npz", model, evaluate_model(model, test)), ModelEntry("b.npz", other, evaluate_model(other, test))]
    subject = evaluate_model(Ensemble([model, other]), test)
    rob = robustness(model, test, kinds=("noise", "thin"), severities=(1, 5))
    page = write_report(tmp_path / "report", subject, entries, robustness=rob, threshold=0.8)
    assert 0 < subject.errors < len(test)
    assert page == tmp_path / "report" / "report.html"
    text = page.read_text()
    links = re.findall(r'(?:src|href)="([^"]+)"', text)
    assert links, "the report links its figures"
    for link in links:
        assert "://" not in link and not link.startswith("/"), link
        assert (page.parent / link).is_file(), f"report.html links {link}, which does not exist"
    for name in ("confusion.png", "mistakes.png", "robustness.png", "curves-1.png", "weights-1.png", "weights-2.png"):
        assert f'src="{name}"' in text
        check_png(page.parent / name, (100, 100))
    assert "curves-2.png" not in text and "No training curves" in text
    assert "<script" not in text.lower()
    assert "ensemble of 2" in text and "98.11%" in text and "0.8" in text
    data = json.loads((page.parent / "evaluation.json").read_text())
    assert data["images"] == len(test) and len(data["per_class"]) == 10 and len(data["confusion"]) == 10
    assert data["robustness"]["accuracy"]["noise"][0] <= 1


def test_report_refuses_a_file_as_folder(trained, tmp_path):
    model, test = trained
    (tmp_path / "f").write_text("x")
    with pytest.raises(DigitlabError, match="not a folder"):
        write_report(tmp_path / "f", evaluate_model(model, test))
