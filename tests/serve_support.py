"""Helpers for the web server's tests: models to serve, images to send, and a real server to send them to."""

from __future__ import annotations

import http.client
import io
import os
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

# Strokes of a few digits in a 0..1 box, as a person would draw them (x right, y down).
STROKES = {
    1: [[(0.5, 0.1), (0.5, 0.9)]],
    7: [[(0.2, 0.12), (0.8, 0.12), (0.4, 0.9)]],
    2: [[(0.22, 0.3), (0.35, 0.14), (0.6, 0.12), (0.76, 0.28), (0.7, 0.48), (0.22, 0.88), (0.82, 0.88)]],
}


def tiny_model(seed: int = 0):
    """An untrained 784-16-10 network: serves every route in milliseconds (its answers are noise)."""
    from digitlab.nn import Dense, Flatten, ReLU, Rescaling, Sequential, Softmax

    return Sequential([Rescaling(1 / 255), Flatten(), Dense(16), ReLU(), Dense(10), Softmax()],
                      input_shape=(28, 28), seed=seed)


def drawn_digit(digit: int, size: int = 280, width: int = 18, dark_on_light: bool = True) -> Image.Image:
    """A digit drawn with thick round strokes on a blank canvas, like the page's canvas."""
    ink, paper = (17, 255) if dark_on_light else (255, 0)
    im = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(im)
    for stroke in STROKES[digit]:
        points = [(x * size, y * size) for x, y in stroke]
        draw.line(points, fill=ink, width=width, joint="curve")
        for x, y in (points[0], points[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=ink)
    return im


def png_bytes(image) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG signature and IHDR chunk declaring ``width`` x ``height``, and no pixel data: enough
    for a size check that reads only the header (it must refuse before decoding)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def mnist_photo(images: list[np.ndarray], gap: int = 10, scale: int = 8) -> bytes:
    """MNIST digits side by side, enlarged and made dark ink on white paper: a 'photo' of a number."""
    row = np.concatenate([np.pad(im, ((0, 0), (gap, gap))) for im in images], axis=1)
    big = Image.fromarray(255 - row).resize((row.shape[1] * scale, row.shape[0] * scale), Image.BILINEAR)
    return png_bytes(big)


# ------------------------------------------------------------------------------- a real server
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_in_thread(app, timeout: float = 20):
    """A uvicorn server for ``app`` in a thread of this process, on 127.0.0.1 and a free port;
    yields the port once it is started, and stops it after."""
    import threading

    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + timeout
        while not server.started:
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def digitlab_serve(*args: str, timeout: float = 60):
    """``digitlab serve ARGS`` (e.g. ``--model FILE``) in a process of its own on 127.0.0.1 and a
    free port, as a person runs it; yields (port, process) once it is ready, and stops it after."""
    port = free_port()
    command = [str(Path(sys.executable).with_name("digitlab")), "serve", "--port", str(port), *args]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log,
                                   env={**os.environ, "DIGITLAB_THREADS": "1"})
        try:
            deadline = time.monotonic() + timeout
            while not _ready(port):
                if process.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"digitlab serve did not start: {log.read().decode(errors='replace')}")
                time.sleep(0.1)
            yield port, process
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _ready(port: int) -> bool:
    try:
        return request(port, "GET", "/readyz")[0] == 200
    except OSError:
        return False


def request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
            timeout: float = 10) -> tuple[int, dict, bytes]:
    """One request on a new connection: (status, headers, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def rss_mb(pid: int) -> float:
    """A process's resident memory (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
