"""Per-sample SGD (batch of one) for dense networks, computed exactly but a block at a time.

This module is the engine's one deliberate exception to its rule of no Python loop over samples.
Per-sample SGD is sequential by definition: each sample's step must see the weights the sample
before it left, so no batch of samples can be computed at once. What can be vectorised is moved
out of the loop (below); the loop over samples stays, and says so here.

Training one sample at a time, the tutorial way, spends almost all of its time on the first
layer: for 784-200-10 every sample reads the 784 x 200 weight matrix for its forward pass, then
reads and writes all of it again to add the rank-one update ``-lr x_k delta_k``. Those 157,000
weights are memory traffic, not arithmetic, and that traffic bounds the plain loop.

The update of sample ``i`` changes what sample ``k > i`` sees in the first layer only through
the dot product of their inputs::

    x_k @ (W + sum_i x_i^T d_i) = x_k @ W + sum_i (x_k . x_i) d_i,      d_i = -lr delta_i

So for a block of K samples this module computes ``X @ W`` (K x 784 times 784 x 200) and the
Gram matrix ``X X^T`` once, with matrix multiplies; each sample then adds the updates of the
samples before it in the block (``G[k, :k] @ D[:k]``, a 200 x k product) and stores its own
``d_k``; at the end of the block ``W += X^T D`` applies all K updates in one multiply. Every
sample sees exactly the weights the plain loop would give it (the same numbers up to float32
rounding: a test checks it against `Sequential.train_step` with batches of one). The later layers
are small and are updated directly, sample by sample.

`Sequential.fit` uses this whenever the model and its training allow (`plan` says when).
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from . import activations, layers
from .losses import CrossEntropy, MeanSquaredError
from .optimizers import SGD

BLOCK = 64  # samples per block: large enough for the matrix multiplies, small enough for G[k, :k] @ D[:k]

_ACTIVATIONS = (activations.Sigmoid, activations.Tanh, activations.ReLU)


def plan(model) -> "PerSample | None":
    """A `PerSample` trainer for ``model`` when it can take exact per-sample SGD steps block-wise:
    an optional `Rescaling` and `Flatten`, then `Dense` layers each followed by Sigmoid, Tanh or
    ReLU, the last by Sigmoid (mean squared error) or Softmax (cross-entropy); plain SGD without
    momentum or weight decay. Anything else (dropout, batch norm, Adam, ...) returns None."""
    opt, loss = model.optimizer, model.loss
    if not isinstance(opt, SGD) or opt.momentum or opt.weight_decay:
        return None
    stack = list(model.layers)
    rescaling = None
    if stack and isinstance(stack[0], layers.Rescaling):
        rescaling, stack = stack[0], stack[1:]
    if stack and isinstance(stack[0], layers.Flatten):
        stack = stack[1:]
    if len(stack) < 2 or len(stack) % 2:
        return None
    dense, acts = stack[0::2], stack[1::2]
    if not all(type(d) is layers.Dense for d in dense):
        return None
    last = acts[-1]
    if isinstance(loss, CrossEntropy):
        if not isinstance(last, activations.Softmax) or loss.label_smoothing:
            return None
    elif not (isinstance(loss, MeanSquaredError) and type(last) is activations.Sigmoid):
        return None
    if not all(type(a) in _ACTIVATIONS for a in acts[:-1]):
        return None
    return PerSample(dense, acts, loss, rescaling)


class PerSample:
    """Exact per-sample SGD over a dense network's layers (see the module docstring)."""

    def __init__(self, dense, acts, loss, rescaling: layers.Rescaling | None):
        self.dense, self.acts, self.loss, self.rescaling = dense, acts, loss, rescaling

    def epoch(self, x: np.ndarray, y: np.ndarray, order: np.ndarray, lr_at: Callable[[int], float],
              report: Callable[[int, float, float, float], None] | None = None) -> tuple[float, int]:
        """One pass over ``x[order]``, one SGD step per sample with learning rate ``lr_at(i)`` for
        the i-th step. Returns (summed loss, number of correct predictions before each step).
        After each block, ``report(samples done, mean loss, accuracy, lr)``. Raises
        FloatingPointError when the loss stops being finite."""
        W0 = self.dense[0].params[0]
        b0 = self.dense[0].params[1] if self.dense[0].use_bias else None
        rest = [(d.params[0], d.params[1] if d.use_bias else None) for d in self.dense[1:]]
        acts = self.acts
        mse = isinstance(self.loss, MeanSquaredError)
        if mse:
            off, on = np.float32(self.loss.off), np.float32(self.loss.on - self.loss.off)
        total_loss, correct = 0.0, 0
        n = len(order)
        for start in range(0, n, BLOCK):
            idx = order[start : start + BLOCK]
            xb = x[idx].reshape(len(idx), -1)
            xb = self.rescaling.forward(xb) if self.rescaling else xb.astype(np.float32)
            a0 = xb @ W0  # first-layer inputs under the weights at the start of the block
            gram = xb @ xb.T
            updates = np.zeros_like(a0)  # row k: -lr delta of sample k for the first layer
            block_loss = 0.0
            for k, label in enumerate(y[idx].tolist()):
                lr = np.float32(lr_at(start + k))
                a = a0[k] + gram[k, :k] @ updates[:k] if k else a0[k].copy()
                if b0 is not None:
                    a += b0
                # The activation layers themselves, on a batch of one (they keep their output for
                # their backward pass).
                outs = [acts[0].forward(a[None])]
                for (W, b), act in zip(rest, acts[1:]):
                    a = outs[-1] @ W
                    if b is not None:
                        a += b
                    outs.append(act.forward(a))
                out = outs[-1][0]
                correct += int(out.argmax()) == label
                # The losses' own value_and_grad cost more time than the arithmetic itself here: it
                # is written out inline.
                if mse:  # (out - t) * sigmoid'(a); loss 1/2 |out - t|^2
                    delta = out - off
                    delta[label] -= on
                    block_loss += 0.5 * float(delta @ delta)
                    delta *= out * (1 - out)
                else:  # softmax + cross-entropy: p - onehot
                    block_loss -= math.log(max(float(out[label]), 1e-12))
                    delta = out.copy()
                    delta[label] -= 1
                delta *= lr
                for j in range(len(rest) - 1, -1, -1):  # later layers: backward, then update
                    W, b = rest[j]
                    back = acts[j].backward((W @ delta)[None])[0]
                    W -= outs[j][0][:, None] * delta
                    if b is not None:
                        b -= delta
                    delta = back
                updates[k] = -delta  # the first layer's update, applied at the end of the block
                if b0 is not None:
                    b0 -= delta
            W0 += xb.T @ updates
            if not math.isfinite(block_loss):
                raise FloatingPointError(block_loss)
            total_loss += block_loss
            if report is not None:
                done = start + len(idx)
                report(done, total_loss / done, correct / done, lr_at(done - 1))
        return total_loss, correct
