"""What the server accepts, in one place. Each limit is checked before the work it protects.

| limit | value | checked | refused with |
|---|---|---|---|
| `MAX_UPLOAD_BYTES` | 5 MiB | request body, before it is parsed (Content-Length, then while reading) | 413 |
| `MAX_PIXELS` | `digitlab.vision.MAX_PIXELS` (40 megapixels) | image header, before any pixel is decoded | 413 |
| `MAX_BATCH` | 256 | images in one batch or inference request | 422 (400 on /v2) |
| `WORKERS` | 2 | requests decoded, preprocessed and predicted at once, each in a worker thread; the others wait in the event loop | — |

Why `WORKERS`: a 5 MiB PNG can hold a 40-megapixel image, which takes about 150 MB and most of a
second to decode and preprocess, so the limit bounds memory to a few such images however many
requests arrive together. The work is CPU-bound and mostly holds the GIL, so threads add no speed,
only contention: at concurrency 32 on two cores (bench/serve_load.py, 12 s runs) one process
answered 105-147 requests/s with 1 worker thread, 108-116 with 2 and 93-114 with 4. Two keep a
second lane open while one request works on a large photo. For more throughput, run more
processes (``digitlab serve --workers N``).
"""

from __future__ import annotations

import anyio

from ..vision import MAX_PIXELS  # noqa: F401  (the same limit as the library and the CLI)

MAX_UPLOAD_BYTES = 5 * 2**20
MAX_BATCH = 256
WORKERS = 2
_limiter = None  # an anyio.CapacityLimiter, made on first use (inside the event loop)


async def run_in_workers(fn, *args):
    """Run ``fn(*args)`` in a worker thread, at most `WORKERS` at once; other requests wait their
    turn in the event loop."""
    global _limiter
    if _limiter is None:
        _limiter = anyio.CapacityLimiter(WORKERS)
    return await anyio.to_thread.run_sync(fn, *args, limiter=_limiter)


class HTTPProblem(Exception):
    """A request the server refuses: the status code and the reason given in the body."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason
