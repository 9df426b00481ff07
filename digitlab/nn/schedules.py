"""Learning-rate schedules: ``schedule(base_lr, t, total) -> lr`` where ``t`` is the position in
training measured in epochs (fractional, updated every batch) and ``total`` the number of epochs."""

from __future__ import annotations

import math

from ..errors import ModelError
from .registry import from_spec


class Constant:
    def __call__(self, base_lr: float, t: float, total: float) -> float:
        return base_lr

    def get_config(self):
        return {}


class StepDecay:
    """Multiply the rate by ``factor`` every ``every`` epochs."""

    def __init__(self, every: float = 10, factor: float = 0.1):
        if every <= 0 or not 0 < factor <= 1:
            raise ModelError(f"StepDecay: needs every > 0 and factor in (0, 1]. Received: every={every}, factor={factor}")
        self.every, self.factor = float(every), float(factor)

    def __call__(self, base_lr, t, total):
        return base_lr * self.factor ** math.floor(t / self.every)

    def get_config(self):
        return {"every": self.every, "factor": self.factor}


class Cosine:
    """Half a cosine from ``base_lr`` down to ``base_lr * final`` at the end of training."""

    def __init__(self, final: float = 0.0):
        self.final = float(final)

    def __call__(self, base_lr, t, total):
        low = base_lr * self.final
        return low + (base_lr - low) * 0.5 * (1 + math.cos(math.pi * min(t / total, 1.0)))

    def get_config(self):
        return {"final": self.final}


class OneCycle:
    """Smith's one-cycle policy as PyTorch's OneCycleLR draws it: a cosine warm-up from
    ``base_lr/div`` to ``base_lr`` over the first ``warmup`` fraction, then a cosine down to
    ``base_lr/(div*final_div)``."""

    def __init__(self, warmup: float = 0.25, div: float = 25.0, final_div: float = 1e4):
        if not 0 < warmup < 1:
            raise ModelError(f"OneCycle: warmup must be in (0, 1). Received: warmup={warmup!r}")
        self.warmup, self.div, self.final_div = float(warmup), float(div), float(final_div)

    def __call__(self, base_lr, t, total):
        x = min(t / total, 1.0)
        start, end = base_lr / self.div, base_lr / (self.div * self.final_div)
        if x < self.warmup:
            a, b, frac = start, base_lr, x / self.warmup
        else:
            a, b, frac = base_lr, end, (x - self.warmup) / (1 - self.warmup)
        return b + (a - b) * 0.5 * (1 + math.cos(math.pi * frac))

    def get_config(self):
        return {"warmup": self.warmup, "div": self.div, "final_div": self.final_div}


SCHEDULES = {"constant": Constant, "step": StepDecay, "cosine": Cosine, "onecycle": OneCycle}


def get_schedule(spec):
    """A schedule from its name, a ``{"name": ..., **config}`` dict, an instance, or None (constant)."""
    return Constant() if spec is None else from_spec(SCHEDULES, spec, "schedule")
