"""Real handwriting in, MNIST-like digits out: `to_mnist` for one digit, `segment` for a number.

A photo, scan or canvas drawing is turned into a 28x28 image the way MNIST itself was made (grey,
ink made white on black, cropped to the ink, fitted into 20x20 keeping the aspect ratio, centred
by the centre of mass), so that a network trained on MNIST sees what it learned from.
"""

from ..errors import ImageError
from .load import MAX_BYTES, MAX_PIXELS, WORK_SIDE, load_grey, open_image
from .preprocess import find_ink, fit_mnist, to_mnist
from .reading import Reading, read, read_digits
from .segment import segment

__all__ = [
    "ImageError", "MAX_BYTES", "MAX_PIXELS", "WORK_SIDE", "find_ink", "fit_mnist", "load_grey",
    "open_image", "Reading", "read", "read_digits", "segment", "to_mnist",
]
