"""Images for the pure-Python engine: a digit as the list of its non-zero pixels.

An MNIST image is 784 numbers of which about 150 are ink and the rest 0. A weight multiplied by a
0 pixel adds nothing to an output and its update (``alpha * error * 0``) changes nothing, so the
engine keeps only the non-zero pixels, as two tuples::

    indices = (152, 153, 154, ...)        # where the ink is, 0..783 (row * 28 + column)
    values  = (0.0118, 0.0706, 0.0706, ...)  # how dark it is, times ``scale``

Sums and updates then touch 150 numbers instead of 784, with exactly the same result.
"""

from __future__ import annotations

from itertools import compress
from typing import Iterable, Sequence

from ..errors import ModelError

SparseImage = tuple[tuple[int, ...], tuple[float, ...]]


def sparse(pixels: Sequence[float], scale: float = 1.0) -> SparseImage:
    """``(indices, values)`` of the non-zero pixels of one flat image (e.g. a list of 784 ints,
    0..255), each value multiplied by ``scale`` (1/255 gives 0..1, 1.0 keeps raw pixels)."""
    scale = float(scale)  # so values are floats even for scale 1
    try:
        indices = tuple(compress(range(len(pixels)), pixels))  # compress runs in C, not pixel by pixel
        values = tuple([v * scale for v in compress(pixels, pixels)])
    except TypeError:
        raise ModelError("an image must be a flat list of pixel values (784 numbers for MNIST), "
                         f"got {type(pixels).__name__} of {type(pixels[0]).__name__}") from None
    if len(indices) < 2:
        # The engine gathers weights with operator.itemgetter(*indices), which needs two or more
        # indices to return a tuple. Pixels 0 and 1 with value 0.0 add nothing and change nothing.
        pairs = dict(zip(indices, values))
        for i in (0, 1):
            pairs.setdefault(i, 0.0)
        indices, values = tuple(sorted(pairs)), tuple(pairs[i] for i in sorted(pairs))
    return indices, values


def sparse_images(images: Iterable[Sequence[float]], scale: float = 1.0) -> list[SparseImage]:
    """`sparse` for every flat image of ``images`` (lists of pixel values)."""
    return [sparse(pixels, scale) for pixels in images]


def dense(image: SparseImage, size: int = 784) -> list[float]:
    """The flat list of ``size`` pixel values of a sparse image (zeros filled in)."""
    pixels = [0.0] * size
    for i, v in zip(*image):
        pixels[i] = v
    return pixels
