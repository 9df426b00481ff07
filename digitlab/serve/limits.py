"""What the server accepts, and how long it waits, in one place. Each limit is checked before the
work it protects; the numbers hold per server process (``digitlab serve --workers N`` has N).

| limit | value | checked | refused with |
|---|---|---|---|
| `MAX_HEADER_BYTES` | 16 KiB | a request line and headers, as they arrive (h11's ``max_incomplete_event_size``) | 400, closed |
| `HEAD_SECONDS` | 10 s | a request line and headers must arrive within this of the connection opening or of its last response, however slowly they trickle (`H11Protocol`) | connection closed |
| `KEEP_ALIVE_SECONDS` | 5 s | an idle connection after a response (uvicorn's ``timeout_keep_alive``) | connection closed |
| `MAX_CONNECTIONS` | 512 | open connections, and requests in progress (uvicorn's ``limit_concurrency``) | 503 |
| `MAX_UPLOAD_BYTES` | 5 MiB | request body, before it is parsed (Content-Length, then while reading), by `BodyLimit` | 413 |
| `BODY_IDLE_SECONDS` | 10 s | a request body that stops arriving: this long without a byte (`BodyLimit`) | 408, closed |
| `MAX_BUFFERED_BYTES` | 32 MiB | request bodies held at once, all requests together, beyond the first `FREE_BODY_BYTES` (64 KiB) of each (`BodyLimit`) | 503 + Retry-After, at once |
| `MAX_PIXELS` | `digitlab.vision.MAX_PIXELS` (40 megapixels) | image header, before any pixel is decoded (`inputs.check_image`) | 413 |
| `MAX_DIGITS` | `digitlab.vision.segment.MAX_DIGITS` (64) | digits read from one image with ``number=true``, counted from its marks before any work on them | 422 |
| `MAX_BATCH` | 256 | images in one batch or inference request | 422 (400 on /v2) |
| `WORKERS` | 2 | requests decoded, preprocessed and predicted at once, each in a worker thread; the others wait in the event loop | — |
| `REQUEST_SECONDS` | 10 s | a request's work: waiting for a worker, then working (`run_in_workers`) | 503 + Retry-After |
| `OVERTIME_THREADS` | 2 | threads still working for requests already answered 503 (see below) | — |

The first four are set through uvicorn (`HEAD_SECONDS` by the protocol class it is given):
`UVICORN_SETTINGS` holds them, and ``digitlab serve`` passes them to uvicorn (run `create_app`
under uvicorn yourself and pass them too). Together they bound
what clients can make the server hold: bodies to `MAX_BUFFERED_BYTES`, plus about
`FREE_BODY_BYTES` + `MAX_HEADER_BYTES` for each of `MAX_CONNECTIONS` connections (some 70 MiB in
all), each for seconds, not for as long as a client cares to stall (BENCHMARKS.md has what
stalled clients cost before and after these limits).

Why `MAX_BUFFERED_BYTES` is 32 MiB: six bodies of the largest size, more than the two workers get
through in a few seconds, so more would only wait in memory. A body's Content-Length is counted as
soon as its headers arrive (a body without one, as it arrives), so a body that is let in is never
refused half-way for others' sake, and one that would not fit is refused as soon as its headers
arrive. The
first 64 KiB of each body are not counted: a drawing from the page or 784 pixels in JSON is a few
KiB, and uvicorn holds that much of a body per connection anyway; so while large uploads are
refused for want of room, small requests are still answered.

Why `WORKERS`: a 5 MiB PNG can hold a 40-megapixel image, which takes about 150 MB and most of a
second to decode and preprocess, so the limit bounds memory to a few such images however many
requests arrive together. The work is CPU-bound and mostly holds the GIL, so more threads add no
speed, only contention (bench/serve_load.py; BENCHMARKS.md); two keep a second lane open while one
request works on a large photo. For more throughput, run more processes (``digitlab serve
--workers N``).

Why `REQUEST_SECONDS`, and what it cannot do: a request whose work has not finished within its
budget (counted from when it asks for a worker, so time spent waiting for one counts) is answered
503 with ``Retry-After`` at once. But a Python thread cannot be stopped from outside: its thread
works on until the call returns, and the result is dropped. The budget is the request's, not the
worker slot's: such a thread gives its slot back to the waiting requests and runs on as one of at
most `OVERTIME_THREADS` overtime threads, so a slow image does not hold up the ordinary requests
behind it. When the overtime threads are all taken, a thread over its time keeps its slot until it
ends. At most `WORKERS` + `OVERTIME_THREADS` threads ever work at once, and they share the cores, so
overtime slows the others down without stopping them. The limits on the work itself (`MAX_PIXELS`,
`MAX_DIGITS`, `MAX_BATCH`) are what keep requests far inside their budget; the budget is the
backstop for what those limits miss.
"""

from __future__ import annotations

import asyncio
import weakref
from concurrent.futures import ThreadPoolExecutor
from typing import ClassVar

import anyio
from uvicorn.protocols.http.h11_impl import H11Protocol as _UvicornH11Protocol

from ..vision import MAX_PIXELS  # noqa: F401  (the same limit as the library and the CLI)
from ..vision.segment import MAX_DIGITS  # noqa: F401  (likewise)
from .problems import HTTPProblem, problem

MAX_HEADER_BYTES = 16 * 2**10
HEAD_SECONDS = 10.0
KEEP_ALIVE_SECONDS = 5
MAX_CONNECTIONS = 512
MAX_UPLOAD_BYTES = 5 * 2**20
BODY_IDLE_SECONDS = 10.0
MAX_BUFFERED_BYTES = 32 * 2**20
FREE_BODY_BYTES = 64 * 2**10
MAX_BATCH = 256
WORKERS = 2
REQUEST_SECONDS = 10.0
OVERTIME_THREADS = 2
RETRY_AFTER = "5"  # seconds, in the Retry-After header of a 503

UVICORN_SETTINGS = {
    "http": "digitlab.serve.limits:H11Protocol",  # a name, so that --workers N processes import it
    "ws": "none",  # no WebSocket routes
    "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    "timeout_keep_alive": KEEP_ALIVE_SECONDS,
    "limit_concurrency": MAX_CONNECTIONS,
}


# ------------------------------------------------------------------------------- connections
class H11Protocol(_UvicornH11Protocol):
    """uvicorn's HTTP/1.1 protocol (h11) with a deadline for each request's head: a connection that
    has not sent its request line and headers `HEAD_SECONDS` after it opened, or after its last
    response, is closed. uvicorn's own keep-alive timer starts only after a response and stops at
    the next byte, so without this a client that sends half a head holds its connection for good.
    The deadline does not move as bytes trickle in, and pauses while a request is being answered
    (`BodyLimit` and `REQUEST_SECONDS` bound that part)."""

    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch()

    def connection_lost(self, exc) -> None:
        self._stop()
        super().connection_lost(exc)

    def _answering(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _watch(self) -> None:
        """Run the deadline while the connection waits for a request's head, stop it once one came."""
        if self._answering() or self.transport.is_closing():
            self._stop()
        elif self._deadline is None:
            self._deadline = self.loop.call_later(HEAD_SECONDS, self._expire)

    def _stop(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self._answering() and not self.transport.is_closing():
            self.transport.close()  # connection_lost tells h11


# ------------------------------------------------------------------------------- bodies
class BodyLimit:
    """ASGI middleware: read a request's body before any route parses it, and refuse it with
    413 when it is over ``limit`` bytes (from its Content-Length when it has one, otherwise while
    reading it), 503 when the bodies held at once would pass ``budget`` bytes, and 408 when
    ``idle_seconds`` pass without a byte of it.

    The budget counts each body beyond its first `FREE_BODY_BYTES`: its Content-Length when its
    headers arrive (a body without one, as it arrives), until its response starts.
    """

    def __init__(self, app, limit: int = MAX_UPLOAD_BYTES, budget: int = MAX_BUFFERED_BYTES,
                 idle_seconds: float = BODY_IDLE_SECONDS):
        self.app, self.limit, self.budget, self.idle_seconds = app, limit, budget, idle_seconds
        self.held = 0  # bytes counted against the budget now, all requests together (one event loop)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        length = int(length) if length is not None and length.isdigit() else None
        if length is not None and length > self.limit:
            return await self._refuse(scope, receive, send, 413,
                                      f"request body over the limit of {self.limit // 2**20} MiB")
        counted = 0

        def count(size: int) -> bool:
            """Count a body of ``size`` bytes against the budget; False if there is no room."""
            nonlocal counted
            more = max(size - FREE_BODY_BYTES, 0) - counted
            if more > 0:
                if self.held + more > self.budget:
                    return False
                self.held += more
                counted += more
            return True

        def uncount():
            nonlocal counted
            self.held -= counted
            counted = 0

        try:
            if length is not None and not count(length):
                return await self._refuse(scope, receive, send, 503, _BUSY_RECEIVING)
            chunks, size = [], 0
            while True:
                message = None
                with anyio.move_on_after(self.idle_seconds):
                    message = await receive()
                if message is None:
                    return await self._refuse(scope, receive, send, 408, "the request body stopped arriving "
                                              f"(nothing for {self.idle_seconds:g} s)")
                if message["type"] != "http.request":  # the client went away
                    return
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > self.limit:
                    return await self._refuse(scope, receive, send, 413,
                                              f"request body over the limit of {self.limit // 2**20} MiB")
                if not count(size):
                    return await self._refuse(scope, receive, send, 503, _BUSY_RECEIVING)
                chunks.append(chunk)
                if not message.get("more_body", False):
                    break
            body, replayed = b"".join(chunks), False
            del chunks

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            async def send_then_uncount(message):
                if message["type"] == "http.response.start":  # the route is done with the body
                    uncount()
                await send(message)

            return await self.app(scope, replay, send_then_uncount)
        finally:
            uncount()

    async def _refuse(self, scope, receive, send, status: int, reason: str):
        headers = {"connection": "close"}
        if status == 503:
            headers["retry-after"] = RETRY_AFTER
        await problem(scope.get("path", ""), status, reason, headers)(scope, receive, send)


_BUSY_RECEIVING = "the server is receiving too many large request bodies at once; try again shortly"


# ------------------------------------------------------------------------------- work
async def run_in_workers(fn, *args):
    """``fn(*args)`` in a worker thread, at most `WORKERS` at once (other requests wait their turn in
    the event loop), within `REQUEST_SECONDS` of this call: after that, an `HTTPProblem` 503 with
    ``Retry-After``, and the thread's result, when it comes, is dropped (see the module's notes)."""
    workers = _Workers.of_this_loop()
    with anyio.move_on_after(REQUEST_SECONDS):
        await workers.slots.acquire()
        work = asyncio.get_running_loop().run_in_executor(workers.pool, fn, *args)
        try:
            return await asyncio.shield(work)  # a timeout cancels the waiting, not the work
        finally:
            workers.settle(work)
    raise HTTPProblem(503, f"the server is busy: this request's work did not finish within {REQUEST_SECONDS:g} s; "
                           "try again shortly", {"Retry-After": RETRY_AFTER})


class _Workers:
    """The worker threads of one event loop (one server): `WORKERS` slots, and a pool with room for
    the `OVERTIME_THREADS` of requests already answered."""

    _of_loop: ClassVar[weakref.WeakKeyDictionary] = weakref.WeakKeyDictionary()

    def __init__(self):
        self.slots = anyio.Semaphore(WORKERS)
        self.pool = ThreadPoolExecutor(WORKERS + OVERTIME_THREADS, thread_name_prefix="digitlab-worker")
        self.overtime = 0

    @classmethod
    def of_this_loop(cls) -> _Workers:
        loop = asyncio.get_running_loop()
        if loop not in cls._of_loop:
            cls._of_loop[loop] = cls()
        return cls._of_loop[loop]

    def settle(self, work: asyncio.Future) -> None:
        """Give back the slot of a call that ended, or that ran out of time and works on (then in
        overtime, if there is room)."""
        if work.done():
            self.slots.release()
            _dropped(work)
        elif self.overtime < OVERTIME_THREADS:
            self.overtime += 1
            self.slots.release()
            work.add_done_callback(self._overtime_ended)
        else:
            work.add_done_callback(self._slot_freed)

    def _overtime_ended(self, work: asyncio.Future) -> None:
        self.overtime -= 1
        _dropped(work)

    def _slot_freed(self, work: asyncio.Future) -> None:
        self.slots.release()
        _dropped(work)


def _dropped(work: asyncio.Future) -> None:
    """Take the outcome of a call nobody waits for any more, so that asyncio does not log it."""
    if not work.cancelled():
        work.exception()
