"""From what a client sends to what the network takes.

A request body is JSON (`ImageInput`, `BatchInput`), a multipart form or an image itself;
`read_one` and `read_batch` turn it into sources: the bytes of an encoded image, or a uint8 28x28
array for 784 pixels (MNIST-style already: they go to the network as they are).

Encoded images (an upload, a base64 string, the page's canvas) pass through `with_image`, the one
gate to `digitlab.vision`: their header is checked first (`MAX_PIXELS`, before any pixel is
decoded), then they get the same preprocessing the library and the CLI apply to photos.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import re
import warnings

import numpy as np
from fastapi import Request
from PIL import Image
from pydantic import ValidationError

from .. import vision
from ..data import IMAGE_FORMATS
from ..errors import DigitlabError
from .limits import MAX_BATCH, MAX_PIXELS
from .problems import HTTPProblem, validation_reason
from .schemas import BatchInput, ImageInput

log = logging.getLogger("digitlab.serve")

IMAGE_TYPES = ("image/png", "image/jpeg", "image/bmp", "image/gif", "image/webp", "application/octet-stream")
_ACCEPTED = "application/json, multipart/form-data (field 'file'), or an image body (" + ", ".join(IMAGE_TYPES) + ")"
_DATA_URL = re.compile(r"^data:[\w.+-]+/[\w.+-]+(;[\w=.+-]+)*;base64,", re.IGNORECASE)


# ------------------------------------------------------------------------------- request bodies
async def read_one(request: Request) -> bytes | np.ndarray:
    """The image of a ``/api/predict`` request: encoded bytes, or a uint8 28x28 array of pixels."""
    media = _media_type(request)
    if media == "application/json":
        return _source(_parse_json(await request.body(), ImageInput))
    if media == "multipart/form-data":
        form = await _form(request, max_files=1)
        upload = form.get("file")
        if upload is None or isinstance(upload, str):
            raise HTTPProblem(422, "multipart body needs the image in a file field named 'file'")
        return await upload.read()
    if media in IMAGE_TYPES or media.startswith("image/"):
        return await request.body()
    raise HTTPProblem(415, f"unsupported content type {media or '(none)'!r}; send {_ACCEPTED}")


async def read_batch(request: Request) -> list:
    """The images of a batch request, as `read_one` gives them; an item that cannot be read is
    the `HTTPProblem` saying why, so that it gets its own error and the others are still read."""
    media = _media_type(request)
    if media == "application/json":
        batch = _parse_json(await request.body(), BatchInput)
        sources = []
        for item in batch.items:
            try:
                sources.append(_source(item))
            except HTTPProblem as e:
                sources.append(e)
        return sources
    if media == "multipart/form-data":
        form = await _form(request, max_files=MAX_BATCH)
        files = [f for f in form.getlist("files") if not isinstance(f, str)]
        if not files:
            raise HTTPProblem(422, "multipart body needs the images in file fields named 'files'")
        return [await f.read() for f in files]
    raise HTTPProblem(415, f"unsupported content type {media or '(none)'!r}; send application/json or "
                           "multipart/form-data")


def _media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _parse_json(body: bytes, model):
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise HTTPProblem(422, f"malformed JSON: {e}") from None
    try:
        return model.model_validate(obj)
    except ValidationError as e:
        raise HTTPProblem(422, validation_reason(e.errors())) from None


async def _form(request: Request, max_files: int):
    try:
        return await request.form(max_files=max_files, max_fields=16)
    except Exception as e:  # python-multipart / starlette: boundary missing, body cut short, too many parts
        detail = getattr(e, "detail", None) or str(e) or type(e).__name__
        raise HTTPProblem(422, f"malformed multipart body: {detail}") from None


def _source(item: ImageInput) -> bytes | np.ndarray:
    return decode_base64(item.image) if item.image is not None else digit_from_pixels(item.pixels)


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


def digit_from_pixels(values) -> np.ndarray:
    """784 values 0..255 (already validated) -> uint8 28x28."""
    return np.rint(np.asarray(values, dtype=np.float64)).astype(np.uint8).reshape(28, 28)


# ------------------------------------------------------------------------------- encoded images
def with_image(data: bytes, fn):
    """``fn(data)``: a `digitlab.vision` call (`to_mnist`, `read`) on an image a client sent.

    The header is checked first (`check_image`: 413 or 422 before any pixel is decoded). An
    `ImageError` from ``fn`` is the client's fault and says why (422). Anything else is a bug in
    the preprocessing: logged with its traceback, and the client gets a 422 naming it rather than
    a 500, so one odd image cannot look like an outage.
    """
    check_image(data)
    try:
        return fn(data)
    except DigitlabError:
        raise
    except Exception as e:
        log.exception("preprocessing failed on a %d-byte image", len(data))
        raise HTTPProblem(422, f"could not read this image ({type(e).__name__}: {e})") from None


def digit_from_image(data: bytes) -> np.ndarray:
    """One digit, uint8 28x28, from an encoded image (`with_image` over `digitlab.vision.to_mnist`):
    for the routes that predict many images at once."""
    return with_image(data, vision.to_mnist)


def check_image(data: bytes) -> None:
    """Read only the header: 422 if it is not an image in one of `IMAGE_FORMATS` (Pillow tries no
    other plugin on it), 413 if it has too many pixels."""
    if not data:
        raise HTTPProblem(422, "the image is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as im:
                width, height = im.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise HTTPProblem(413, f"the image has too many pixels (over {MAX_PIXELS / 1e6:g} megapixels)") from None
    except Exception:  # Pillow raises many kinds for a bad header; all mean the same to the client
        raise HTTPProblem(422, f"not an image in a format digitlab reads ({', '.join(IMAGE_FORMATS)})") from None
    if width * height > MAX_PIXELS:
        raise HTTPProblem(413, f"the image is {width}x{height} = {width * height / 1e6:.3g} megapixels, "
                               f"over the limit of {MAX_PIXELS / 1e6:g}")
    if width == 0 or height == 0:
        raise HTTPProblem(422, f"the image is {width}x{height}: it has no pixels")


def png_data_url(image: np.ndarray) -> str:
    """A uint8 greyscale image as a ``data:image/png;base64,...`` URL (for an <img> on the page)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
