"""Real handwriting in, MNIST-like digits out: `to_mnist` for one digit (`find_digit` also says
where it was and how it was found), `segment` for a number, `read` for a model's answer.

A photo, scan or canvas drawing is turned into a 28x28 image the way MNIST itself was made (grey,
ink made white on black, cropped to the ink, fitted into 20x20 keeping the aspect ratio, centred
by the centre of mass), so that a network trained on MNIST sees what it learned from. The image
operations are OpenCV's (the ``vision`` extra: ``pip install 'digitlab[vision]'``).
"""

try:
    import cv2  # noqa: F401
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("digitlab.vision needs OpenCV: pip install 'digitlab[vision]'") from e

from ..errors import ImageError
from .load import MAX_BYTES, MAX_PIXELS, WORK_SIDE, load_grey, open_image
from .preprocess import Found, find_digit, find_ink, fit_mnist, to_mnist
from .reading import Reading, read, read_digits
from .segment import MAX_DIGITS, segment

__all__ = [
    "Found", "ImageError", "MAX_BYTES", "MAX_DIGITS", "MAX_PIXELS", "WORK_SIDE", "find_digit", "find_ink", "fit_mnist", "load_grey",
    "open_image", "Reading", "read", "read_digits", "segment", "to_mnist",
]
