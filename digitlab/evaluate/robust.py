"""Accuracy under corruptions (in the manner of MNIST-C): every corruption of
`digitlab.data.corrupt` at every severity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from ..data import Dataset
from ..data.corruptions import KINDS, SEVERITIES, check_corruption, corrupt


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
            check_corruption(kind, s)

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
