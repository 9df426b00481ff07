"""Figures as PNG files. Needs matplotlib (the ``plots`` extra); drawn off-screen, written atomically."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ._files import atomic_write
from .errors import DigitlabError


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DigitlabError("figures need matplotlib: pip install 'digitlab[plots]'") from None
    return plt


def _save(fig, path: str | os.PathLike) -> Path:
    plt = _pyplot()
    path = Path(path)
    with atomic_write(path) as f:
        fig.savefig(f, format="png", dpi=fig.dpi, bbox_inches="tight")
    plt.close(fig)
    return path


def sample_grid(
    images: np.ndarray,
    labels: np.ndarray,
    path: str | os.PathLike,
    predicted: np.ndarray | None = None,
    title: str | None = None,
    cols: int | None = None,
    captions: list[str] | None = None,
) -> Path:
    """A grid of digits (uint8 N x H x W), each titled with its label (and the prediction, red
    when wrong); ``captions`` (N strings) replace those titles, keeping the colour."""
    plt = _pyplot()
    n = len(images)
    if n == 0:
        raise DigitlabError("nothing to draw: no images")
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    lines = 1 + max((c.count("\n") for c in captions), default=0) if captions is not None else 1
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * (0.9 + 0.15 * lines) + (0.4 if title else 0)), dpi=100)
    axes = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i >= n:
            continue
        ax.imshow(images[i], cmap="gray_r", vmin=0, vmax=255, interpolation="nearest")
        text, colour = str(labels[i]), "black"
        if predicted is not None:
            text = f"{labels[i]}→{predicted[i]}"
            colour = "black" if predicted[i] == labels[i] else "crimson"
        if captions is not None:
            text = captions[i]
        ax.set_title(text, fontsize=10 if "\n" not in text else 8, color=colour, pad=2)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def readings_figure(originals: list, seen: list[np.ndarray], answers: list[str], path: str | os.PathLike,
                    boxes: list | None = None) -> Path:
    """Each input image (top) next to what the network saw (bottom), titled with its answer.

    ``originals``: PIL images or arrays; ``seen``: for each input, uint8 K x 28 x 28 digits;
    ``boxes``: for each input, K x 4 boxes (left, top, right, bottom) in the original's pixels,
    drawn on it: where each digit was found."""
    plt = _pyplot()
    cols = len(originals)
    if cols == 0:
        raise DigitlabError("nothing to draw: no images")
    fig, axes = plt.subplots(2, cols, figsize=(2.4 * cols, 4.6), dpi=100, squeeze=False)
    for c, (original, digits, answer) in enumerate(zip(originals, seen, answers)):
        top, bottom = axes[0, c], axes[1, c]
        top.imshow(np.asarray(original), cmap="gray", interpolation="lanczos")
        for left, up, right, down in (boxes[c] if boxes is not None else []):
            top.add_patch(plt.Rectangle((left - 0.5, up - 0.5), right - left, down - up, fill=False,
                                        edgecolor="#e8710a", linewidth=1.5))
        top.set_title("input", fontsize=10)
        strip = np.concatenate(list(digits), axis=1) if len(digits) else np.zeros((28, 28), np.uint8)
        bottom.imshow(strip, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        bottom.set_title(f"network saw → {answer}", fontsize=11)
        top.axis("off")
        bottom.axis("off")
    fig.tight_layout()
    return _save(fig, path)


def confusion_figure(confusion: np.ndarray, path: str | os.PathLike, title: str | None = None) -> Path:
    """The confusion matrix (k x k counts, rows = true, columns = predicted) as a heat map with
    every count written in its cell. Colours are per true class (row fraction), so rare mistakes
    still show."""
    plt = _pyplot()
    confusion = np.asarray(confusion)
    k = len(confusion)
    rows = confusion.sum(axis=1, keepdims=True)
    fraction = np.divide(confusion, rows, out=np.zeros(confusion.shape), where=rows > 0)
    fig, ax = plt.subplots(figsize=(6.4, 5.6), dpi=100)
    # sqrt: a cell with 1% of its row is still visibly coloured next to the 98% diagonal
    shown = ax.imshow(np.sqrt(fraction), cmap="Blues", vmin=0, vmax=1)
    for t in range(k):
        for p in range(k):
            if confusion[t, p]:
                ax.text(p, t, f"{confusion[t, p]:,}", ha="center", va="center", fontsize=7 if k > 10 else 8,
                        color="white" if fraction[t, p] > 0.5 else ("crimson" if t != p else "black"))
    ax.set_xticks(range(k))
    ax.set_yticks(range(k))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    bar = fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.array([0, 0.01, 0.05, 0.2, 0.5, 1.0])
    bar.set_ticks(np.sqrt(ticks))
    bar.set_ticklabels([f"{t:.0%}" for t in ticks])
    bar.set_label("share of the true class")
    fig.tight_layout()
    return _save(fig, path)


def mistakes_gallery(
    images: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    confidence: np.ndarray,
    path: str | os.PathLike,
    title: str | None = None,
) -> Path:
    """Misclassified digits (uint8 N x H x W), each captioned "true → predicted" and the
    probability the model gave its wrong answer."""
    captions = [f"{t}→{p}\n{c:.0%}" for t, p, c in zip(labels, predicted, confidence)]
    return sample_grid(images, labels, path, predicted=predicted, title=title, cols=min(10, len(images)) or None,
                       captions=captions)


def training_curves(history: list[dict], path: str | os.PathLike, title: str | None = None) -> Path:
    """Loss and accuracy per epoch from a model's history (``model.history.epochs``: dicts with
    ``epoch``, ``loss``, ``accuracy`` and, when there was validation data, ``val_loss`` and
    ``val_accuracy``), training and validation side by side."""
    plt = _pyplot()
    from matplotlib.ticker import MaxNLocator

    if not history:
        raise DigitlabError("no training history to draw (the model file has no epochs recorded)")
    epochs = [e.get("epoch", i + 1) for i, e in enumerate(history)]
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), dpi=100)
    for ax, metric in zip(axes, ("loss", "accuracy")):
        for key, label, style in ((metric, "train", "-o"), (f"val_{metric}", "validation", "-s")):
            values = [e.get(key) for e in history]
            if all(v is not None for v in values):
                ax.plot(epochs, values, style, markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def first_layer_weights(model, path: str | os.PathLike, max_units: int = 64, title: str | None = None) -> Path:
    """What the first layer with weights looks for, one small image per unit (at most
    ``max_units``): for a dense layer on the image (weights H*W x units) each unit's column
    reshaped to H x W; for a convolution (kernels k x k x C x filters) each filter's kernel
    (channel mean). Blue = positive weight, red = negative, each unit on its own symmetric scale."""
    from .nn import Conv2D, Dense

    plt = _pyplot()
    layer = next((l for l in model.layers if isinstance(l, (Dense, Conv2D))), None)
    if layer is None:
        raise DigitlabError("the model has no dense or convolution layer whose weights could be drawn")
    w = layer.params[0]
    if isinstance(layer, Conv2D):
        tiles = w.mean(axis=2).transpose(2, 0, 1)  # filters x k x k
        kind = f"first convolution: {w.shape[-1]} kernels {w.shape[0]}x{w.shape[1]}"
    else:
        shape = tuple(model.input_shape)
        if w.shape[0] != int(np.prod(shape)) or len(shape) != 2:
            raise DigitlabError(f"the first dense layer takes {w.shape[0]} inputs, not the {shape} image: nothing to draw")
        tiles = w.T.reshape(-1, *shape)  # units x H x W
        kind = f"first dense layer: {w.shape[1]} units, each {shape[0]}x{shape[1]}"
    total = len(tiles)
    tiles = tiles[:max_units]
    n = len(tiles)
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.75, rows * 0.75 + 0.5), dpi=100)
    axes = np.atleast_1d(axes).ravel()
    for i, ax in enumerate(axes):
        ax.axis("off")
        if i < n:
            bound = float(np.abs(tiles[i]).max()) or 1.0
            ax.imshow(tiles[i], cmap="RdBu", vmin=-bound, vmax=bound, interpolation="nearest")
    fig.suptitle(title or kind + (f" (the first {n} shown)" if n < total else ""), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def robustness_figure(result, path: str | os.PathLike, title: str | None = None) -> Path:
    """Accuracy against severity, one line per corruption, the clean accuracy dashed
    (``result``: a `digitlab.evaluate.Robustness`)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=100)
    for kind in result.kinds:
        ax.plot(result.severities, [100 * a for a in result.accuracy[kind]], "-o", markersize=4, label=kind)
    ax.axhline(100 * result.clean, color="black", linestyle="--", linewidth=1, label="clean")
    ax.set_xticks(list(result.severities))
    ax.set_xlabel("severity")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)
    ax.set_title(title or "accuracy under corruptions")
    fig.tight_layout()
    return _save(fig, path)
