"""Evaluation: what a trained network gets right and wrong, and how it holds up when the input
changes.

* metrics: `confusion_matrix`, `classification_report` (precision, recall, F1, support per class),
  `evaluate_model` -> `Evaluation` (probabilities, predictions, accuracy, loss, per-class report,
  confusion matrix, the most confident mistakes);
* several models: `ensemble_proba` / `Ensemble` (the mean of their probabilities, `mean_proba`), `compare`;
* abstention: `abstain` (answer only when the top probability reaches a threshold);
* robustness in the manner of MNIST-C: `corrupt` (eight corruptions at five severities, generated on
  the fly from a seed), `robustness` (accuracy for every corruption and severity).

Models here are anything with ``predict_proba(images) -> N x 10`` (a `Sequential`, an `Ensemble`).
Images are uint8 N x H x W, 0 = background, 255 = ink.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np

from .data import NUM_CLASSES, Dataset, load_mnist, load_sklearn_digits
from .data.transforms import warp
from .errors import DigitlabError

# ----------------------------------------------------------------------------------- metrics


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, k: int = NUM_CLASSES) -> np.ndarray:
    """Counts of (true class, predicted class): int64 k x k, rows = true labels, columns =
    predictions. ``labels`` and ``predicted`` are integer arrays of N class indices in 0..k-1."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    if labels.shape != predicted.shape or labels.ndim != 1:
        raise DigitlabError(f"labels and predictions must be two arrays of N; got shapes {labels.shape} and {predicted.shape}")
    for name, a in (("labels", labels), ("predictions", predicted)):
        if a.size and (a.min() < 0 or a.max() >= k):
            raise DigitlabError(f"{name} must be in 0..{k - 1}; got {a.min()}..{a.max()}")
    return np.bincount(labels.astype(np.int64) * k + predicted, minlength=k * k).reshape(k, k)


@dataclass(frozen=True)
class ClassReport:
    """Per-class scores, each an array of k (index = class).

    A score whose denominator is zero is NaN, never a warning: the precision of a class that is
    never predicted, the recall of a class absent from the labels, and the F1 of a class that is in
    neither. F1 is ``2 TP / (2 TP + FP + FN)``, so a class that occurs but is never predicted has
    precision NaN and F1 0. Macro averages are over the classes present in the labels (support > 0),
    a NaN precision counting as 0 there: a class that occurs and is never predicted is a miss.
    """

    precision: np.ndarray  # float64 k
    recall: np.ndarray  # float64 k
    f1: np.ndarray  # float64 k
    support: np.ndarray  # int64 k: how many labels of each class
    predicted: np.ndarray  # int64 k: how many predictions of each class

    @property
    def macro(self) -> dict:
        """``{"precision", "recall", "f1"}`` averaged over the classes present in the labels."""
        present = self.support > 0
        if not present.any():
            return {"precision": math.nan, "recall": math.nan, "f1": math.nan}
        return {name: float(np.nan_to_num(getattr(self, name)[present], nan=0.0).mean())
                for name in ("precision", "recall", "f1")}

    def rows(self) -> list[dict]:
        """One dict per class: class, precision, recall, f1, support."""
        return [{"class": c, "precision": float(self.precision[c]), "recall": float(self.recall[c]),
                 "f1": float(self.f1[c]), "support": int(self.support[c])} for c in range(len(self.support))]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, NaN where den == 0 (no warning)."""
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def classification_report(labels: np.ndarray, predicted: np.ndarray, k: int = NUM_CLASSES) -> ClassReport:
    """Precision, recall, F1 and support of each of ``k`` classes (see `ClassReport` for the
    conventions when a class is absent)."""
    return report_from_confusion(confusion_matrix(labels, predicted, k))


def report_from_confusion(confusion: np.ndarray) -> ClassReport:
    """`ClassReport` of a k x k confusion matrix (rows = true, columns = predicted)."""
    tp = np.diag(confusion).astype(np.float64)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    return ClassReport(
        precision=_ratio(tp, predicted.astype(np.float64)),
        recall=_ratio(tp, support.astype(np.float64)),
        f1=_ratio(2 * tp, (support + predicted).astype(np.float64)),  # 2TP + FP + FN = support + predicted
        support=support,
        predicted=predicted,
    )


def log_loss(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean cross-entropy ``-mean log p[label]`` of probabilities N x k (clipped at 1e-12)."""
    rows = np.arange(len(labels))
    return float(-np.log(np.clip(probs[rows, labels], 1e-12, 1.0)).mean()) if len(labels) else math.nan


@dataclass
class Evaluation:
    """A model's answers on a dataset and what they add up to.

    Attributes:
        dataset: the images and labels evaluated (N).
        probs: float32 N x 10 class probabilities.
        predicted: int64 N, the most probable class.
        confidence: float32 N, the probability of the predicted class.
        accuracy, loss: fraction correct, mean cross-entropy.
        confusion: int64 10 x 10, rows = true, columns = predicted.
        report: per-class precision, recall, F1, support.
        mistakes: int64 indices of the wrong answers, most confident first.
    """

    dataset: Dataset
    probs: np.ndarray
    predicted: np.ndarray = field(init=False)
    confidence: np.ndarray = field(init=False)
    accuracy: float = field(init=False)
    loss: float = field(init=False)
    confusion: np.ndarray = field(init=False)
    report: ClassReport = field(init=False)
    mistakes: np.ndarray = field(init=False)

    def __post_init__(self):
        labels = self.dataset.labels
        if self.probs.shape != (len(labels), NUM_CLASSES):
            raise DigitlabError(f"expected probabilities {len(labels)} x {NUM_CLASSES}, got {self.probs.shape}")
        self.predicted = self.probs.argmax(axis=1)
        self.confidence = self.probs[np.arange(len(labels)), self.predicted]
        correct = self.predicted == labels
        self.accuracy = float(correct.mean()) if len(labels) else math.nan
        self.loss = log_loss(self.probs, labels)
        self.confusion = confusion_matrix(labels, self.predicted)
        self.report = report_from_confusion(self.confusion)
        wrong = np.flatnonzero(~correct)
        self.mistakes = wrong[np.argsort(-self.confidence[wrong], kind="stable")]

    @property
    def errors(self) -> int:
        return len(self.mistakes)

    def abstain(self, threshold: float) -> tuple[float, float]:
        """(coverage, accuracy of the kept answers) at ``threshold``: see `abstain`."""
        return abstain(self.probs, self.dataset.labels, threshold)


def test_set_for(model, data_dir=None) -> Dataset:
    """The test split of the dataset a model was trained on: scikit-learn's 8x8 digits (the 797
    after the first 1,000) when its metadata says ``training.dataset == "digits"``, else MNIST's
    10,000 (looked up in ``data_dir``, then as `load_mnist` does)."""
    dataset = (getattr(model, "metadata", None) or {}).get("training", {}).get("dataset", "mnist")
    return load_sklearn_digits("test") if dataset == "digits" else load_mnist("test", data_dir)


def evaluate_model(model, dataset: Dataset) -> Evaluation:
    """Run ``model`` (anything with ``predict_proba``) on ``dataset`` and score it."""
    return Evaluation(dataset, np.asarray(model.predict_proba(dataset.images), dtype=np.float32))


def mean_proba(probas: Iterable[np.ndarray]) -> np.ndarray:
    """The ensemble rule: the mean of several models' probabilities (each N x 10), float32. Given
    probabilities computed once, it scores any subset of the models without running them again;
    given a generator, it holds one model's probabilities at a time."""
    total, count = None, 0
    for p in probas:
        total = p.astype(np.float32) if total is None else total + p
        count += 1
    if not count:
        raise DigitlabError("an ensemble needs at least one model")
    return total / np.float32(count)


def ensemble_proba(models: Sequence, images: np.ndarray) -> np.ndarray:
    """The mean of several models' probabilities on ``images``, float32 N x 10 (`mean_proba`)."""
    return mean_proba(model.predict_proba(images) for model in models)


class Ensemble:
    """Several models answering together: ``predict_proba`` is the mean of theirs."""

    def __init__(self, models: Sequence):
        if not models:
            raise DigitlabError("an ensemble needs at least one model")
        self.models = list(models)

    def predict_proba(self, images: np.ndarray) -> np.ndarray:
        return ensemble_proba(self.models, images)


def abstain(probs: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[float, float]:
    """Answer only when the top probability is at least ``threshold`` (0..1).

    Returns (coverage, accuracy): the fraction of the N images answered, and the fraction of those
    answers that are right (NaN when none is answered).
    """
    if not 0 <= threshold <= 1:
        raise DigitlabError(f"the threshold is a probability in [0, 1]; got {threshold}")
    kept = probs.max(axis=1) >= threshold
    coverage = float(kept.mean()) if len(kept) else math.nan
    accuracy = float((probs[kept].argmax(axis=1) == labels[kept]).mean()) if kept.any() else math.nan
    return coverage, accuracy


# ----------------------------------------------------------------------------------- comparison


@dataclass
class Comparison:
    """Two models on the same dataset.

    Attributes:
        a, b: each model's `Evaluation`.
        disagree: int64 indices where their predictions differ.
        only_a, only_b: how many images only A (only B) gets right.
        p_value: exact two-sided McNemar test on (only_a, only_b): the chance of a split at least
            this uneven if both models were equally accurate. 1.0 when they never differ in
            correctness.
    """

    a: Evaluation
    b: Evaluation
    disagree: np.ndarray = field(init=False)
    only_a: int = field(init=False)
    only_b: int = field(init=False)
    p_value: float = field(init=False)

    def __post_init__(self):
        labels = self.a.dataset.labels
        right_a, right_b = self.a.predicted == labels, self.b.predicted == labels
        self.disagree = np.flatnonzero(self.a.predicted != self.b.predicted)
        self.only_a = int(np.count_nonzero(right_a & ~right_b))
        self.only_b = int(np.count_nonzero(right_b & ~right_a))
        self.p_value = mcnemar_exact(self.only_a, self.only_b)


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value: P(a split at least this uneven) under Binomial(n, 1/2)."""
    n, low = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(low + 1))
    return min(1.0, 2 * tail / 2**n)  # exact integers: no underflow for large n


def compare(model_a, model_b, dataset: Dataset) -> Comparison:
    """Evaluate two models on ``dataset`` and find where they disagree."""
    return Comparison(evaluate_model(model_a, dataset), evaluate_model(model_b, dataset))


# ----------------------------------------------------------------------------------- corruptions

# Severity 1..5 -> the strength of each corruption (MNIST-C style: one dial per corruption).
# Pixel and distance units are those of a 28 x 28 image; shift scales with the image size.
SEVERITIES = range(1, 6)
_NOISE_SIGMA = (20.0, 40.0, 60.0, 80.0, 100.0)  # gaussian noise, grey levels (0..255)
_BLUR_SIGMA = (0.5, 0.75, 1.0, 1.25, 1.5)  # gaussian blur, pixels
_ROTATE_DEG = (10.0, 20.0, 30.0, 40.0, 50.0)  # rotation, degrees, random sign per image
_SHIFT_PX = (2.0, 3.0, 4.0, 5.0, 6.0)  # translation, pixels, random direction per image
_SCALE = (0.15, 0.3, 0.45, 0.6, 0.75)  # zoom by (1 + s) or 1 / (1 + s), random per image
_INVERT = (0.6, 0.7, 0.8, 0.9, 1.0)  # weight of the inverted image in the blend
# thicken / thin: grey dilation / erosion by 3 x 3 elements, step after step; a step of weight t
# moves each pixel a fraction t of the way to its dilated (eroded) value. Erosion is the harsher
# (MNIST strokes are 2-3 pixels wide), so thin has gentler steps.
_CROSS = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)
_SQUARE = np.ones((3, 3), bool)
_THICKEN = (((_CROSS, 0.5),), ((_CROSS, 1.0),), ((_SQUARE, 1.0),), ((_SQUARE, 1.0), (_CROSS, 0.5)),
            ((_SQUARE, 1.0), (_CROSS, 1.0)))
_THIN = (((_CROSS, 0.2),), ((_CROSS, 0.4),), ((_CROSS, 0.6),), ((_CROSS, 0.8),), ((_CROSS, 1.0),))


def _noise(images, severity, rng):
    return images + rng.normal(0.0, _NOISE_SIGMA[severity - 1], images.shape).astype(np.float32)


def _gaussian_kernel(sigma: float) -> np.ndarray:
    radius = max(1, math.ceil(3 * sigma))
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _blur(images, severity, rng):
    """Separable gaussian blur, zero (background) beyond the border."""
    k = _gaussian_kernel(_BLUR_SIGMA[severity - 1]).astype(np.float32)
    r = len(k) // 2
    n, h, w = images.shape
    padded = np.pad(images.astype(np.float32), ((0, 0), (r, r), (r, r)))
    rows = sum(wt * padded[:, i : i + h, :] for i, wt in enumerate(k))  # N x H x (W + 2r)
    return sum(wt * rows[:, :, i : i + w] for i, wt in enumerate(k))


def _rotate(images, severity, rng):
    n = len(images)
    angle = np.deg2rad(_ROTATE_DEG[severity - 1]) * rng.choice([-1.0, 1.0], n)
    return warp(images, angle, np.ones(n), np.zeros((n, 2)))


def _shift(images, severity, rng):
    n, h, _ = images.shape
    direction = rng.uniform(0, 2 * np.pi, n)
    distance = _SHIFT_PX[severity - 1] * h / 28
    shift = distance * np.stack([np.sin(direction), np.cos(direction)], 1)
    return warp(images, np.zeros(n), np.ones(n), shift)


def _scale(images, severity, rng):
    n = len(images)
    zoom = (1 + _SCALE[severity - 1]) ** rng.choice([-1.0, 1.0], n)
    return warp(images, np.zeros(n), zoom, np.zeros((n, 2)))


def _morph(images, steps, reduce):
    """Grey dilation (``np.maximum``) or erosion (``np.minimum``), step after step; the border
    reads as background."""
    out = images.astype(np.float32)
    n, h, w = images.shape
    for element, weight in steps:
        padded = np.pad(out, ((0, 0), (1, 1), (1, 1)))
        morphed = reduce.reduce([padded[:, dy : dy + h, dx : dx + w] for dy, dx in zip(*np.nonzero(element))])
        out = out + np.float32(weight) * (morphed - out)
    return out


def _thicken(images, severity, rng):
    return _morph(images, _THICKEN[severity - 1], np.maximum)


def _thin(images, severity, rng):
    return _morph(images, _THIN[severity - 1], np.minimum)


def _invert(images, severity, rng):
    a = np.float32(_INVERT[severity - 1])
    x = images.astype(np.float32)
    return (1 - a) * x + a * (255 - x)


CORRUPTIONS = {
    "noise": _noise, "blur": _blur, "rotate": _rotate, "shift": _shift,
    "scale": _scale, "thicken": _thicken, "thin": _thin, "invert": _invert,
}
KINDS = tuple(CORRUPTIONS)


def _check_corruption(kind: str, severity) -> None:
    if kind not in CORRUPTIONS:
        raise DigitlabError(f"unknown corruption {kind!r}; known: {', '.join(KINDS)}")
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or severity not in SEVERITIES:
        raise DigitlabError(f"severity must be an integer 1..5; got {severity!r}")


def corrupt(images: np.ndarray, kind: str, severity: int = 3, seed: int = 0) -> np.ndarray:
    """A corrupted copy of uint8 images N x H x W (same shape, uint8, 0..255).

    kinds (severity 1..5 sets the strength; the shift is in 28 x 28 pixels and scales with the size,
    blur and thicken/thin work in pixels of the image itself):
        noise    add gaussian noise, sigma 20, 40, 60, 80, 100 grey levels, clipped to 0..255;
        blur     gaussian blur, sigma 0.5 .. 1.5 pixels (separable kernel);
        rotate   rotate by 10, 20, 30, 40, 50 degrees, clockwise or anticlockwise at random;
        shift    move by 2 .. 6 pixels in a random direction;
        scale    zoom by 1.15 .. 1.75, in or out at random, about the centre;
        thicken  grey dilation: half a 3x3 cross, a cross, a square, square + half cross,
                 square + cross;
        thin     grey erosion by a 3x3 cross at weight 0.2 .. 1.0 (stroke edges fade);
        invert   blend towards 255 - x with weight 0.6 .. 1.0 (severity 5 is exactly 255 - x).

    Randomness (noise, directions) comes from ``np.random.default_rng(seed)``: the same seed gives
    the same images.
    """
    _check_corruption(kind, severity)
    images = np.asarray(images)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DigitlabError(f"corrupt takes uint8 images N x H x W; got {images.dtype} {images.shape}")
    out = CORRUPTIONS[kind](images, int(severity), np.random.default_rng(seed))
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def corrupt_dataset(dataset: Dataset, kind: str, severity: int = 3, seed: int = 0) -> Dataset:
    """``dataset`` with `corrupt` applied to its images, named e.g. "mnist-test+blur3"."""
    return Dataset(corrupt(dataset.images, kind, severity, seed), dataset.labels,
                   f"{dataset.name}+{kind}{severity}", dataset.source)


@dataclass
class Robustness:
    """Accuracy under corruptions: ``accuracy[kind]`` is a list over ``severities``."""

    clean: float
    kinds: tuple[str, ...]
    severities: tuple[int, ...]
    accuracy: dict[str, list[float]]

    @property
    def mean(self) -> float:
        """Mean accuracy over every corruption and severity."""
        return float(np.mean([a for row in self.accuracy.values() for a in row]))


def robustness(model, dataset: Dataset, kinds: Iterable[str] = KINDS,
               severities: Iterable[int] = SEVERITIES, seed: int = 0,
               on_step: Callable[[str, int], None] | None = None) -> Robustness:
    """Accuracy of ``model`` on ``dataset`` under each corruption at each severity (one seeded
    corrupted copy per pair; the seed is shared so severities differ only in strength).
    ``on_step(kind, severity)`` is called after each pair (for a progress bar)."""
    kinds, severities = tuple(kinds), tuple(severities)
    for kind in kinds:
        for s in severities:
            _check_corruption(kind, s)

    def accuracy(images):
        return float(np.mean(model.predict_proba(images).argmax(axis=1) == dataset.labels))

    table = {}
    for kind in kinds:
        table[kind] = []
        for s in severities:
            table[kind].append(accuracy(corrupt(dataset.images, kind, s, seed)))
            if on_step:
                on_step(kind, s)
    return Robustness(accuracy(dataset.images), kinds, severities, table)
