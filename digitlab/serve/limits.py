"""What the server accepts, in one place. Each limit is checked before the work it protects.

| limit | value | checked | refused with |
|---|---|---|---|
| `MAX_UPLOAD_BYTES` | 5 MiB | request body, before it is parsed (Content-Length, then while reading) | 413 |
| `MAX_PIXELS` | `digitlab.vision.MAX_PIXELS` (40 megapixels) | image header, before any pixel is decoded | 413 |
| `MAX_BATCH` | 256 | images in one batch or inference request | 422 (400 on /v2) |
| `DECODE_SLOTS` | 4 | images decoded and preprocessed at once; other requests wait their turn | — |

A 5 MiB PNG can hold a 40-megapixel image, which takes about 150 MB and most of a second to
decode and preprocess; `DECODE_SLOTS` bounds that memory to a few such images however many
requests arrive together. Preprocessing is CPU-bound, so more slots than cores would not be faster.
"""

from __future__ import annotations

from ..vision import MAX_PIXELS  # noqa: F401  (the same limit as the library and the CLI)

MAX_UPLOAD_BYTES = 5 * 2**20
MAX_BATCH = 256
DECODE_SLOTS = 4


class HTTPProblem(Exception):
    """A request the server refuses: the status code and the reason given in the body."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason
