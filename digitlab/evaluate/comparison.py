"""Two models on the same images: where they disagree, and whether the difference is chance."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..data import Dataset
from .metrics import Evaluation, evaluate_model


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
