"""Several models answering together: the mean of their probabilities."""

from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

from ..errors import DigitlabError


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
