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
) -> Path:
    """A grid of digits, each titled with its label (and the prediction, red when wrong)."""
    plt = _pyplot()
    n = len(images)
    if n == 0:
        raise DigitlabError("nothing to draw: no images")
    cols = cols or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.05 + (0.4 if title else 0)), dpi=100)
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
        ax.set_title(text, fontsize=10, color=colour, pad=2)
    if title:
        fig.suptitle(title, fontsize=12)
    fig.tight_layout()
    return _save(fig, path)


def readings_figure(originals: list, seen: list[np.ndarray], answers: list[str], path: str | os.PathLike) -> Path:
    """Each input image (top) next to what the network saw (bottom), titled with its answer.

    ``originals``: PIL images or arrays; ``seen``: for each input, uint8 K x 28 x 28 digits."""
    plt = _pyplot()
    cols = len(originals)
    if cols == 0:
        raise DigitlabError("nothing to draw: no images")
    fig, axes = plt.subplots(2, cols, figsize=(2.4 * cols, 4.6), dpi=100, squeeze=False)
    for c, (original, digits, answer) in enumerate(zip(originals, seen, answers)):
        top, bottom = axes[0, c], axes[1, c]
        top.imshow(np.asarray(original), cmap="gray", interpolation="lanczos")
        top.set_title("input", fontsize=10)
        strip = np.concatenate(list(digits), axis=1) if len(digits) else np.zeros((28, 28), np.uint8)
        bottom.imshow(strip, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        bottom.set_title(f"network saw → {answer}", fontsize=11)
        top.axis("off")
        bottom.axis("off")
    fig.tight_layout()
    return _save(fig, path)
