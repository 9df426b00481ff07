"""Reading real images with a trained model: preprocess like MNIST, predict, abstain when unsure."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ImageError
from .preprocess import BLANK_MESSAGE, find_digit
from .segment import MAX_DIGITS, segment


@dataclass
class Reading:
    """What a model read in one image.

    Attributes:
        digits: uint8 K x 28 x 28, what the network saw (K = 1 for a single digit).
        probabilities: float32 K x 10.
        text: the answer: one character per digit, "?" where the top probability is below the
            threshold.
        boxes: int64 K x 4: where each digit is in the image, (left, top, right, bottom) in its
            pixels, right and bottom exclusive (as `find_digit` and `segment` give them); None for
            digits given as MNIST-like arrays (`read_digits`).
    """

    digits: np.ndarray
    probabilities: np.ndarray
    text: str
    boxes: np.ndarray | None = None

    def top(self, k: int = 3) -> list[list[tuple[int, float]]]:
        """For each digit, its ``k`` most probable classes as (digit, probability)."""
        order = np.argsort(-self.probabilities, axis=1)[:, :k]
        return [[(int(d), float(p[d])) for d in row] for row, p in zip(order, self.probabilities)]


def read(model, image, number: bool = False, threshold: float = 0.0,
         max_digits: int | None = MAX_DIGITS) -> Reading:
    """Read one digit (or, with ``number``, a whole written number) from ``image``.

    ``model``: anything with ``predict_proba(uint8 N x 28 x 28)`` (a `Sequential`). ``image``: what
    `to_mnist` takes. ``max_digits``: with ``number``, refuse an image holding more digits than
    this (as `segment`). A number's touching digits are cut where the model reads the pieces best
    (`segment`'s ``judge``: its top probability). Raises `digitlab.errors.ImageError` for a bad or
    blank image, or one with too many digits.
    """
    if number:
        def judge(pieces: np.ndarray) -> np.ndarray:
            return model.predict_proba(pieces).max(axis=1)

        digits, boxes = segment(image, return_boxes=True, max_digits=max_digits, judge=judge)
        if not len(digits):
            raise ImageError(BLANK_MESSAGE)
    else:
        found = find_digit(image)
        digits, boxes = found.image[None], np.array([found.box], dtype=np.int64)
    return read_digits(model, digits, threshold, boxes)


def read_digits(model, digits: np.ndarray, threshold: float = 0.0, boxes: np.ndarray | None = None) -> Reading:
    """`read` for digits that look like MNIST already (uint8 K x 28 x 28, as `to_mnist` gives
    them): predict, and answer "?" for each digit whose top probability is below ``threshold``."""
    probs = model.predict_proba(digits)
    best = probs.argmax(axis=1)
    text = "".join(str(d) if p[d] >= threshold else "?" for d, p in zip(best, probs))
    return Reading(digits, probs, text, boxes)
