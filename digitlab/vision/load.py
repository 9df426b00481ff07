"""Reading an untrusted image: every input kind, every limit, and one clear `ImageError` per fault.

The limits live here and nowhere else, so the web app and the CLI refuse the same things:

| limit | value | why |
|---|---|---|
| `MAX_PIXELS` | 40 megapixels | checked from the header, before decoding (decompression bombs) |
| `MAX_BYTES` | 50 MiB | the encoded file, for paths, bytes and file objects |
| `WORK_SIDE` | 512 px | larger images are shrunk (by an integer factor, area-averaged) before any processing; a digit then still spans dozens of pixels, and JPEG decodes at 1/2..1/8 directly |

Only the formats in `IMAGE_FORMATS` (PNG, JPEG, GIF, BMP, TIFF, WebP, PNM) are opened: Pillow is
never asked to try its other plugins (EPS through Ghostscript, ...) on a file.
"""

from __future__ import annotations

import io
import math
import os
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from ..data.formats import IMAGE_FORMATS
from ..errors import ImageError

MAX_PIXELS = 40_000_000
MAX_BYTES = 50 * 2**20
WORK_SIDE = 512

def check_size(width: int, height: int) -> None:
    """Raise `ImageError` if an image of ``width`` x ``height`` is empty or over `MAX_PIXELS`."""
    if width <= 0 or height <= 0:
        raise ImageError(f"image is {width}x{height}: it has no pixels")
    if width * height > MAX_PIXELS:
        raise ImageError(
            f"image is {width}x{height} = {width * height / 1e6:.3g} megapixels, "
            f"over the limit of {MAX_PIXELS / 1e6:g}"
        )


def load_grey(source, max_side: int = WORK_SIDE) -> np.ndarray:
    """Read any supported input as a grey image, float32 H x W in 0..1 (0 = black, 1 = white).

    ``source``: a path (str or PathLike), ``bytes``, a binary file object, a ``PIL.Image.Image``,
    or a numpy array (uint8 or integers 0..255, or floats 0..1; H x W, H x W x 3 or H x W x 4).
    Transparent pixels are composited on white, or on black when the ink is light (a white stroke
    on a transparent canvas). Animated images give their first frame; EXIF rotation is applied.
    Images with a side over ``max_side`` are shrunk (by an integer factor, area-averaged) to at most
    that side. Raises `ImageError` for anything that is not a usable image.
    """
    return read_grey(source, max_side)[0].astype(np.float32) / np.float32(255)


def read_grey(source, max_side: int = WORK_SIDE) -> tuple[np.ndarray, float]:
    """`load_grey` as uint8 (0 = black, 255 = white), and the scale: input pixels per returned
    pixel (1.0 unless shrunk)."""
    if isinstance(source, np.ndarray):
        grey = _array_to_grey(source)
        longest = max(grey.shape)
        grey = _shrink(grey, max_side)
    else:
        im, size = _open(source, max_side)
        longest = max(size)
        grey = _image_to_grey(im, max_side)
    return grey, longest / max(grey.shape)


def open_image(source, max_side: int | None = None) -> Image.Image:
    """Open, validate and decode ``source`` (path, bytes, file object or PIL image) with Pillow.

    The size is checked from the header before any pixel is decoded. With ``max_side``, a large JPEG
    is decoded directly at a reduced scale (still at least ``max_side`` on its longer side).
    """
    return _open(source, max_side)[0]


def _open(source, max_side: int | None) -> tuple[Image.Image, tuple[int, int]]:
    """`open_image`, also returning the size the header declared (before any reduced decode)."""
    if isinstance(source, Image.Image):
        check_size(*source.size)
        return source, source.size
    data = _read_source(source)
    try:
        with warnings.catch_warnings():
            # Our own limit is far below Pillow's bomb warning; make any such warning an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        check_size(*_header_size(data))  # over Pillow's own limit, hence over ours: say by how much
        raise ImageError("not an image (Pillow refused it as a decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageError(f"not an image in a format digitlab reads ({', '.join(IMAGE_FORMATS)})") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise ImageError(f"not an image ({e})") from None
    check_size(*im.size)
    size = im.size
    if max_side and im.format == "JPEG" and max(im.size) >= 2 * max_side:
        k = max(im.size) // max_side  # draft picks a scale 1/2..1/8 keeping at least size // k
        im.draft(im.mode, (im.size[0] // k, im.size[1] // k))
    try:
        im.load()
    except Exception as e:  # Pillow raises OSError, SyntaxError, ValueError... for damaged data
        reason = str(e) or type(e).__name__
        if "truncated" in reason.lower():
            raise ImageError("truncated image file") from None
        raise ImageError(f"truncated or corrupt image file ({reason})") from None
    try:
        im = ImageOps.exif_transpose(im)
    except Exception:  # a broken EXIF block is not worth refusing the picture for
        pass
    return im, size


def _header_size(data: bytes) -> tuple[int, int]:
    """Width and height from the header of an image Pillow refused as a bomb, read by the format's
    own plugin (which, unlike `Image.open`, applies no pixel limit and decodes nothing)."""
    Image.init()
    for fmt in IMAGE_FORMATS:
        factory, accept = Image.OPEN[fmt]
        if accept is not None and accept(data[:16]) is not True:
            continue
        try:
            return factory(io.BytesIO(data), "").size
        except Exception:
            continue
    return (1, 1)


def _read_source(source) -> bytes:
    """The encoded bytes of a path, bytes-like object or binary file object, at most `MAX_BYTES`."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source).expanduser()
        try:
            size = path.stat().st_size
            if path.is_dir():
                raise ImageError(f"{path}: is a directory, not an image")
            if size > MAX_BYTES:
                raise ImageError(_too_many_bytes(size))
            return path.read_bytes()
        except FileNotFoundError:
            raise ImageError(f"{path}: no such file") from None
        except PermissionError:
            raise ImageError(f"{path}: permission denied") from None
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif hasattr(source, "read"):
        data = source.read(MAX_BYTES + 1)
        if not isinstance(data, bytes):
            raise ImageError("the file object must be opened in binary mode ('rb')")
    else:
        raise ImageError(
            "expected an image: a path, bytes, a binary file object, a PIL image or a numpy array; "
            f"got {type(source).__name__}"
        )
    if len(data) > MAX_BYTES:
        raise ImageError(_too_many_bytes(len(data)))
    if not data:
        raise ImageError("not an image (0 bytes)")
    return data


def _too_many_bytes(n: int) -> str:
    return f"image file is over the limit of {MAX_BYTES // 2**20} MiB ({n / 2**20:.1f} MiB)"


def _image_to_grey(im: Image.Image, max_side: int) -> np.ndarray:
    """A decoded PIL image -> uint8 grey, alpha composited, shrunk to ``max_side``."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):  # 16-bit or float: stretch range
        return _shrink(_stretch(np.asarray(im, dtype=np.float32)), max_side)
    has_alpha = im.mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in im.info
    target = "RGBA" if has_alpha else ("L" if im.mode in ("1", "L") else "RGB")
    if im.mode != target:
        im = im.convert(target)
    k = math.ceil(max(im.size) / max_side)
    if k > 1:
        im = im.reduce(k)
    return _array_to_grey(np.asarray(im))


def _stretch(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    scaled = (arr - lo) * (255.0 / (hi - lo)) if hi > lo else np.full(arr.shape, 255.0, np.float32)
    return np.rint(scaled).astype(np.uint8)


def _array_to_grey(arr: np.ndarray) -> np.ndarray:
    """A numpy image (H x W, H x W x 1/3/4; uint8/ints 0..255 or floats 0..1) -> uint8 grey."""
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[2] in (1, 3, 4):
        height, width = arr.shape[:2]
    elif arr.ndim == 2:
        height, width = arr.shape
    else:
        raise ImageError(f"an image array must be H x W, H x W x 3 or H x W x 4; got shape {arr.shape}")
    check_size(width, height)
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.integer):
        if arr.dtype != np.uint8 and (arr.min() < 0 or arr.max() > 255):
            raise ImageError(
                f"integer image values must be in 0..255; got {arr.min()}..{arr.max()} ({arr.dtype})"
            )
        arr = arr.astype(np.uint8, copy=False)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageError("image array holds NaN or infinite values")
        if arr.min() < 0 or arr.max() > 1:
            raise ImageError(
                f"float image values must be in 0..1; got {arr.min():g}..{arr.max():g} "
                "(divide by 255 or pass uint8)"
            )
        arr = np.rint(arr * 255).astype(np.uint8)
    else:
        raise ImageError(f"image array must hold numbers; got {arr.dtype}")
    if arr.ndim == 2:
        return np.ascontiguousarray(arr)
    if arr.shape[2] == 1:
        return np.ascontiguousarray(arr[:, :, 0])
    arr = np.ascontiguousarray(arr)
    if arr.shape[2] == 3:
        return cv2.cvtColor(arr, cv2.COLOR_RGB2GRAY)
    return _composite(cv2.cvtColor(arr, cv2.COLOR_RGBA2GRAY), cv2.extractChannel(arr, 3))


def _composite(grey: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Flatten uint8 grey + alpha onto white, or onto black when that shows more contrast.

    A canvas drawing often is black strokes on transparent pixels (fine on white), but it may be
    white strokes on transparent, or a digit that exists only in the alpha channel.
    """
    on_black = cv2.multiply(grey, alpha, scale=1 / 255)
    on_white = cv2.add(on_black, cv2.bitwise_not(alpha))  # grey a + 255 (1 - a)
    opaque = cv2.compare(alpha, 127, cv2.CMP_GT)
    if not cv2.countNonZero(opaque) or cv2.countNonZero(opaque) == opaque.size:
        return on_white
    clear = cv2.bitwise_not(opaque)

    def contrast(image):
        return abs(cv2.mean(image, mask=opaque)[0] - cv2.mean(image, mask=clear)[0])

    return on_black if contrast(on_black) > contrast(on_white) else on_white


def _shrink(grey: np.ndarray, max_side: int) -> np.ndarray:
    """Area-average a uint8 grey array by an integer factor so that no side exceeds ``max_side``."""
    k = math.ceil(max(grey.shape) / max_side)
    if k <= 1:
        return np.ascontiguousarray(grey)
    h, w = grey.shape
    return cv2.resize(grey, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
