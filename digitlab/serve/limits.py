"""What the server accepts, in one place. Each limit is checked before the work it protects.

| limit | value | checked | refused with |
|---|---|---|---|
| `MAX_UPLOAD_BYTES` | 5 MiB | request body, before it is parsed (Content-Length, then while reading), by `BodyLimit` | 413 |
| `MAX_PIXELS` | `digitlab.vision.MAX_PIXELS` (40 megapixels) | image header, before any pixel is decoded (`inputs.check_image`) | 413 |
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
from .problems import problem

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


class BodyLimit:
    """ASGI middleware: refuse a request body over ``limit`` bytes with 413, from its Content-Length
    when it has one and otherwise while reading it, before any route parses it."""

    def __init__(self, app, limit: int = MAX_UPLOAD_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.limit:
            return await self._refuse(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await self._refuse(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return await self.app(scope, replay, send)

    async def _refuse(self, scope, receive, send):
        reason = f"request body over the limit of {self.limit // 2**20} MiB"
        response = problem(scope.get("path", ""), 413, reason)
        response.headers["connection"] = "close"
        await response(scope, receive, send)
