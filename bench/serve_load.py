"""HTTP load on `digitlab serve`: POST /api/predict with a canvas drawing, over loopback.

Starts the real command (``digitlab serve``, uvicorn, one process) on 127.0.0.1 with a model, then
keeps ``--concurrency`` requests in flight for ``--seconds`` from an asyncio client in this
process, each sending a PNG of a drawn "7" as the page's canvas does (140x140). Reports requests/s,
client-side latency percentiles, the server's own latency (preprocessing + inference), errors, and
the server's memory (RSS) before and after the run. The client shares the machine's cores with the
server, so the figures are a floor for what the server alone could do.

Without ``--model`` it serves an untrained model of ``--recipe``: the weights change the answers,
not the work, so the timings are those of the trained model.

Usage: python bench/serve_load.py [--model PATH | --recipe mlp] [--concurrency 32] [--seconds 30] [--workers 1]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from common import check_quiet, header, table

from digitlab import save_model
from digitlab.recipes import get_recipe


def canvas_png() -> bytes:
    """What the page sends: a dark "7" drawn with an 18 px round pen on the white 280x280 canvas,
    scaled to 140x140 (RGBA PNG)."""
    im = Image.new("RGBA", (280, 280), (255, 255, 255, 255))
    draw = ImageDraw.Draw(im)
    draw.line([(56, 34), (224, 34), (112, 252)], fill=(17, 17, 17, 255), width=18, joint="curve")
    buf = io.BytesIO()
    im.resize((140, 140), Image.LANCZOS).save(buf, format="PNG")
    return buf.getvalue()


def tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (uvicorn's worker processes)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            pids += tree(int(child))
    return pids


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process and its descendants, summed (VmHWM: the sum of their peaks)."""
    total = 0
    for p in tree(pid):
        for line in Path(f"/proc/{p}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                total += int(line.split()[1])
    return total / 1024


def start_server(model: Path, port: int, workers: int) -> subprocess.Popen:
    command = [str(Path(sys.executable).with_name("digitlab")), "serve", "--model", str(model), "--port", str(port),
               "--workers", str(workers)]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


async def wait_ready(client, url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server stopped: {server.stderr.read().decode()}")
        try:
            if (await client.get(url + "/readyz")).status_code == 200:
                return
        except Exception:
            pass
        await asyncio.sleep(0.2)
    sys.exit("the server did not become ready")


async def load(client, url: str, body: bytes, concurrency: int, seconds: float):
    """Keep ``concurrency`` requests in flight for ``seconds``; each worker stops at the deadline."""
    latencies, server_ms, inference_ms, errors = [], [], [], {}
    deadline = time.perf_counter() + seconds

    async def worker():
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                response = await client.post(url, content=body, headers={"content-type": "image/png"})
                ok = response.status_code == 200
                kind = None if ok else f"HTTP {response.status_code}"
                if ok:
                    answer = response.json()
                    server_ms.append(answer["latency_ms"])
                    inference_ms.append(answer["inference_ms"])
            except Exception as e:  # a refused or dropped connection is an error, not a crash
                kind = type(e).__name__
            latencies.append(time.perf_counter() - start)
            if kind:
                errors[kind] = errors.get(kind, 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return np.array(latencies), np.array(server_ms), np.array(inference_ms), errors, time.perf_counter() - began


async def main_async(args, model: Path) -> None:
    import httpx2 as httpx

    port = args.port
    url = f"http://127.0.0.1:{port}"
    server = start_server(model, port, args.workers)
    body = canvas_png()
    # Keep-alive: 32 persistent connections, which uvicorn's worker processes accept unevenly (one
    # got ~90% of a core, the other ~20%); --new-connections opens one per request, as many
    # distinct clients would, and spreads them.
    keep = 0 if args.new_connections else args.concurrency
    limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=keep)
    try:
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            await wait_ready(client, url, server)
            for _ in range(20 * args.workers):  # warm up: first-request imports, buffers, the thread pool
                assert (await client.post(url + "/api/predict", content=body,
                                          headers={"content-type": "image/png"})).status_code == 200
            before = rss_mb(server.pid)
            cpu_before = time.process_time()
            latencies, server_ms, inference_ms, errors, elapsed = await load(client, url + "/api/predict", body,
                                                               args.concurrency, args.seconds)
            client_cpu = time.process_time() - cpu_before
            after, peak = rss_mb(server.pid), rss_mb(server.pid, "VmHWM")
            alive = (await client.get(url + "/readyz")).status_code == 200
    finally:
        server.terminate()
        server.wait(timeout=10)

    n = len(latencies)
    ms = latencies * 1e3
    print(header(f"HTTP load: POST /api/predict, concurrency {args.concurrency}, {args.seconds:g} s"))
    print(f"model: {model.name} ({args.recipe if not args.model else 'file'}); body: {len(body):,}-byte canvas PNG; "
          f"{args.workers} uvicorn process{'es' if args.workers > 1 else ''}; "
          f"{'a new connection per request' if args.new_connections else f'{args.concurrency} keep-alive connections'}; client: httpx2 asyncio in one process on the same machine "
          f"(used {client_cpu / elapsed:.0%} of a core)\n")
    print(table(
        ["requests", "requests/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "server p50 ms", "inference p50 ms", "errors",
         "RSS before MB", "RSS after MB", "peak RSS MB"],
        [[f"{n:,}", f"{n / elapsed:.0f}", f"{np.percentile(ms, 50):.1f}", f"{np.percentile(ms, 90):.1f}",
          f"{np.percentile(ms, 99):.1f}", f"{ms.max():.1f}",
          f"{np.median(server_ms):.1f}" if len(server_ms) else "—",
          f"{np.median(inference_ms):.2f}" if len(inference_ms) else "—",
          sum(errors.values()) if errors else 0, f"{before:.0f}", f"{after:.0f}", f"{peak:.0f}"]],
    ))
    if errors:
        print("\nerrors: " + ", ".join(f"{k}: {v}" for k, v in errors.items()))
    print(f"\nserver still ready after the run: {'yes' if alive else 'NO'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="model file to serve (default: an untrained --recipe model)")
    parser.add_argument("--recipe", default="mlp", help="recipe whose architecture to serve without --model")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--workers", type=int, default=1, help="server processes (digitlab serve --workers)")
    parser.add_argument("--new-connections", action="store_true", help="a new connection per request (no keep-alive)")
    args = parser.parse_args()
    check_quiet()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model
        if model is None:
            model = Path(tmp) / f"{args.recipe}.npz"
            save_model(get_recipe(args.recipe).build(seed=0), model, recipe=args.recipe)
        asyncio.run(main_async(args, model))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
