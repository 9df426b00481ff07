"""Metrics: `confusion_matrix`, `classification_report` (precision, recall, F1, support per
class), `evaluate_model` -> `Evaluation` (probabilities, predictions, accuracy, loss, per-class
report, confusion matrix, the most confident mistakes), `abstain`, and `percent` to write them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..data import NUM_CLASSES, Dataset, load_dataset
from ..errors import DigitlabError


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
    return load_dataset(dataset, "test", data_dir)


def evaluate_model(model, dataset: Dataset) -> Evaluation:
    """Run ``model`` (anything with ``predict_proba``) on ``dataset`` and score it."""
    return Evaluation(dataset, np.asarray(model.predict_proba(dataset.images), dtype=np.float32))


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


def percent(x) -> str:
    """A fraction as a percentage with two decimals ("99.12%"); "—" for None or NaN."""
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2%}"
