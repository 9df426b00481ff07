"""From what a client sends to what the network takes: uint8 28x28 digits.

Encoded images (an upload, a base64 string, the page's canvas) are checked from their header first
(`MAX_PIXELS`, before any pixel is decoded) and then go through `digitlab.vision`, the same
preprocessing the library and the CLI apply to photos. Pixel arrays are MNIST-style already and go
to the network as they are.
"""

from __future__ import annotations

import base64
import binascii
import io
import logging
import re
import warnings

import numpy as np
from PIL import Image

from .. import vision
from ..errors import DigitlabError, ImageError
from .limits import MAX_PIXELS, HTTPProblem

log = logging.getLogger("digitlab.serve")

_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;[\w=.+-]+)*;base64,", re.IGNORECASE)


def decode_base64(text: str) -> bytes:
    """The bytes of a base64 string or a ``data:...;base64,`` URL; 422 if it is not base64."""
    text = _DATA_URL.sub("", text.strip(), count=1)
    try:
        data = base64.b64decode(re.sub(r"\s+", "", text), validate=True)
    except (binascii.Error, ValueError):
        raise HTTPProblem(422, "'image' is not valid base64 (send the file's bytes in base64, "
                               "optionally as a data: URL)") from None
    if not data:
        raise HTTPProblem(422, "'image' is empty")
    return data


def check_image(data: bytes) -> None:
    """Read only the header: 422 if it is not an image Pillow knows, 413 if it has too many pixels."""
    if not data:
        raise HTTPProblem(422, "the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise HTTPProblem(413, f"the image has too many pixels (over {MAX_PIXELS / 1e6:g} megapixels)") from None
    except Exception:  # Pillow raises many kinds for a bad header; all mean the same to the client
        raise HTTPProblem(422, "not an image: send a PNG, JPEG, BMP, GIF or WebP file") from None
    if width * height > MAX_PIXELS:
        raise HTTPProblem(413, f"the image is {width}x{height} = {width * height / 1e6:.3g} megapixels, "
                               f"over the limit of {MAX_PIXELS / 1e6:g}")
    if width == 0 or height == 0:
        raise HTTPProblem(422, f"the image is {width}x{height}: it has no pixels")


def digit_from_image(data: bytes) -> np.ndarray:
    """One digit, uint8 28x28, from an encoded image."""
    check_image(data)
    return _vision(vision.to_mnist, data)


def digits_from_image(data: bytes) -> list[tuple[np.ndarray, list[int]]]:
    """Each digit of a written number, left to right, with its box [left, top, right, bottom] in
    the image's pixels. ImageError("no digit found") when there is none."""
    check_image(data)
    images, boxes = _vision(lambda d: vision.segment(d, return_boxes=True), data)
    if not len(images):
        raise ImageError("no digit found (the image is blank)")
    return [(image, [int(v) for v in box]) for image, box in zip(images, boxes)]


def _vision(fn, data: bytes):
    """Call a vision function on untrusted bytes. Its `ImageError` is the client's fault and says
    why (422). Anything else is a bug in the preprocessing: logged with its traceback, and the
    client gets a 422 naming it rather than a 500, so one odd image cannot look like an outage.
    At most `DECODE_SLOTS` images are in here at once."""
    try:
        return fn(data)
    except DigitlabError:
        raise
    except Exception as e:
        log.exception("preprocessing failed on a %d-byte image", len(data))
        raise HTTPProblem(422, f"could not read this image ({type(e).__name__}: {e})") from None


def digit_from_pixels(values) -> np.ndarray:
    """784 values 0..255 (already validated) -> uint8 28x28."""
    return np.rint(np.asarray(values, dtype=np.float64)).astype(np.uint8).reshape(28, 28)


def png_data_url(image: np.ndarray) -> str:
    """A uint8 greyscale image as a ``data:image/png;base64,...`` URL (for an <img> on the page)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
