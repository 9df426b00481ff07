"""Batch prediction at scale: N images as tar shards of PNGs (WebDataset layout), read end to end
(tar member -> PNG decode -> find_digit -> one batched predict_proba per partition -> CSV part ->
the joined file) by one plain process, by Dask with 1 and 2 workers, and by a plain
multiprocessing pool over the same partitions (the floor for Dask's overhead).

The shards are made from the 10,000 MNIST test images, each shifted by a random sub-pixel amount
(-2..2 px on each axis, bilinear), so that no two images are the same file; each ``KEY.png`` has
its label beside it as ``KEY.cls`` (skipped by the reader, used here to check the answers). They
are made once into DIR and reused while DIR/shards.json matches --images and --shards.

Every mode runs in a fresh process; each prints images/s, the peak resident memory (VmHWM) of the
driver and of each worker process, and the accuracy of its answers; for dask-2 and pool-2 also
the driver's CPU time per image (the one client's own work: listing, submitting, writing parts),
which bounds how many workers one client can feed. ``dask-2@1`` runs 2 workers
on the first shard only: its memory per worker, next to ``dask-2``'s, shows whether memory grows
with the number of images.

| mode | what |
|---|---|
| plain | `predict_to_file` in this process, the engine on every core (what ``digitlab predict`` does) |
| plain-1 | the same, DIGITLAB_THREADS=1: one core, the unit the others scale |
| dask-1, dask-2 | ``digitlab predict --workers N``: a local Dask cluster of N worker processes |
| pool-2 | multiprocessing.Pool(2) (spawned) over the same partitions, model loaded once per process |
| dask-2@1 | dask-2 on the first shard only |

Usage: python bench/batch.py DIR [--images 1000000] [--shards 100] [--model models/cnn-fast-aug.npz]
       [--partition-size 1000] [--modes plain,plain-1,dask-1,dask-2,pool-2,dask-2@1]
Smoke test: python bench/batch.py /tmp/shards-small --images 2000 --shards 4 --partition-size 100
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import deque
from pathlib import Path

import cv2
import numpy as np
from common import REPO, check_quiet, header, mnist_dir, peak_rss_mb, table

MODES = ("plain", "plain-1", "dask-1", "dask-2", "pool-2", "dask-2@1")


# ------------------------------------------------------------------------------------ shards


def make_shards(folder: Path, images: int, shards: int, seed: int = 0) -> float:
    """Write ``shards`` tar files holding ``images`` PNGs in all into ``folder`` (2 processes);
    returns the seconds taken. Kept while shards.json says the same sizes."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = {"images": images, "shards": shards, "seed": seed, "version": 1}
    marker = folder / "shards.json"
    if marker.exists() and json.loads(marker.read_text()) == stamp:
        return 0.0
    for old in folder.glob("shard-*.tar"):
        old.unlink()
    bounds = [images * s // shards for s in range(shards + 1)]
    jobs = [(str(folder), s, bounds[s], bounds[s + 1] - bounds[s], seed) for s in range(shards)]
    start = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pool.starmap(_make_shard, jobs)
    marker.write_text(json.dumps(stamp))
    return time.perf_counter() - start


def _make_shard(folder: str, shard: int, first: int, count: int, seed: int) -> None:
    from digitlab.data import load_mnist

    test = load_mnist("test", mnist_dir())
    rng = np.random.default_rng((seed, shard))
    path = Path(folder) / f"shard-{shard:04d}.tar"
    tmp = path.with_suffix(".tar.tmp")
    with tarfile.open(tmp, "w") as tar:
        for j in range(count):
            k = (first + j) % len(test)
            dx, dy = rng.uniform(-2, 2, 2)
            shifted = cv2.warpAffine(test.images[k], np.float32([[1, 0, dx], [0, 1, dy]]), (28, 28),
                                     flags=cv2.INTER_LINEAR)
            key = f"{first + j:08d}"
            _add(tar, f"{key}.png", cv2.imencode(".png", shifted)[1].tobytes())
            _add(tar, f"{key}.cls", str(int(test.labels[k])).encode())
    os.replace(tmp, path)


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


# ------------------------------------------------------------------------------------ one mode


_POOL_MODEL = None


def _pool_init(ref) -> None:
    global _POOL_MODEL
    from digitlab.batch.run import configure_threads, worker_model

    configure_threads(1)  # two processes share two cores, as Dask workers do
    _POOL_MODEL = worker_model(ref)


def _pool_task(sources, job):
    from digitlab.batch import predict_partition

    return predict_partition(_POOL_MODEL, sources, job), os.getpid(), peak_rss_mb()


def pool_runner(pool, window: int, peaks: dict):
    """A runner (as `predict_to_file` takes) over a multiprocessing pool: at most ``window``
    partitions queued, results taken in the order submitted."""

    def runner(model, job, parts, ordered=False):
        pending: deque = deque()

        def take():
            index, sources, result = pending.popleft()
            part, pid, peak = result.get()
            peaks[pid] = max(peaks.get(pid, 0.0), peak)
            return index, sources, part

        for index, sources in parts:
            pending.append((index, sources, pool.apply_async(_pool_task, (sources, job))))
            if len(pending) >= window:
                yield take()
        while pending:
            yield take()

    return runner


def worker_peak() -> float:
    return peak_rss_mb()


def run_mode(mode: str, folder: Path, model: str, partition_size: int) -> dict:
    """Run one mode in this process; returns its figures."""
    from digitlab.batch import model_ref, predict_to_file

    shards = sorted(str(p) for p in folder.glob("shard-*.tar"))
    if mode.endswith("@1"):
        shards = shards[:1]
    result = {"mode": mode, "startup": 0.0, "workers": []}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "preds.csv"
        if mode.startswith("dask"):
            from digitlab.batch.dask import DaskRunner, local_cluster

            n = int(mode.split("-")[1].split("@")[0])
            start = time.perf_counter()
            with local_cluster(n) as client:
                result["startup"] = time.perf_counter() - start
                start, cpu = time.perf_counter(), time.process_time()
                summary = predict_to_file(model, shards, out, partition_size=partition_size, runner=DaskRunner(client))
                result["seconds"] = time.perf_counter() - start
                result["driver_cpu"] = time.process_time() - cpu
                result["workers"] = sorted(client.run(worker_peak).values())
        elif mode.startswith("pool"):
            n = int(mode.split("-")[1])
            peaks: dict = {}
            start = time.perf_counter()
            ref = model_ref(model)
            with multiprocessing.get_context("spawn").Pool(n, initializer=_pool_init, initargs=(ref,)) as pool:
                pool.map(int, range(n))  # the processes are up
                result["startup"] = time.perf_counter() - start
                start, cpu = time.perf_counter(), time.process_time()
                summary = predict_to_file(ref, shards, out, partition_size=partition_size,
                                          runner=pool_runner(pool, 2 * n + 2, peaks))
                result["seconds"] = time.perf_counter() - start
                result["driver_cpu"] = time.process_time() - cpu
            result["workers"] = sorted(peaks.values())
        else:
            start = time.perf_counter()
            summary = predict_to_file(model, shards, out, partition_size=partition_size)
            result["seconds"] = time.perf_counter() - start
        result["driver"] = peak_rss_mb()
        result["images"], result["errors"] = summary.rows, summary.errors
        result["accuracy"] = accuracy(out, shards)
    return result


def accuracy(out: Path, shards: list[str]) -> float:
    """The share of answers equal to the label in the ``.cls`` member beside each image."""
    labels = {}
    for shard in shards:
        with tarfile.open(shard) as tar:
            for member in tar:
                if member.name.endswith(".cls"):
                    labels[member.name[:-4]] = tar.extractfile(member).read().decode()
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    return sum(row["answer"] == labels[row["item"][:-4]] for row in rows) / max(len(rows), 1)


def in_child(args: list[str], env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, sys.argv[0], *args], check=False, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    if out.returncode:
        sys.exit(f"{' '.join(args)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ report


def report(args, made: float, results: list[dict]) -> str:
    images = results[0]["images"] if results else 0
    rows, by = [], {r["mode"]: r for r in results}
    base = by.get("plain-1") or by.get("plain")
    for r in results:
        rate = r["images"] / r["seconds"]
        workers = ", ".join(f"{w:.0f}" for w in r["workers"]) or "-"
        speedup = f"{rate / (base['images'] / base['seconds']):.2f}x" if base else "-"
        rows.append([r["mode"], f"{r['images']:,}", f"{r['seconds']:.1f}", f"{rate:,.0f}", speedup,
                     f"{r['startup']:.1f}", f"{r['driver']:.0f}", workers, f"{r['errors']:,}",
                     f"{r['accuracy']:.2%}"])
    lines = [header("Batch prediction: tar shards of PNGs, one process, Dask and a process pool"),
             f"{images:,} images in {args.shards} tar shards ({args.folder}), model {args.model}, "
             f"partitions of {args.partition_size:,}; shards made in {made:.0f} s (0: reused).\n",
             table(["mode", "images", "seconds", "images/s", f"vs {base['mode'] if base else '-'}", "start-up s",
                    "driver peak MB", "worker peak MB", "errors", "accuracy"], rows), ""]

    def rate(mode):
        return by[mode]["images"] / by[mode]["seconds"] if mode in by else None

    checks = []
    if rate("dask-2") and rate("plain-1"):
        checks.append(f"- dask-2 / plain-1: {rate('dask-2') / rate('plain-1'):.2f}x (goal >= 1.8x)")
    if rate("dask-2") and rate("plain"):
        checks.append(f"- dask-2 / plain (engine on both cores): {rate('dask-2') / rate('plain'):.2f}x")
    if rate("dask-2") and rate("pool-2"):
        checks.append(f"- dask-2 / pool-2: {rate('dask-2') / rate('pool-2'):.3f} (goal >= 0.90)")
    if "dask-2" in by and "dask-2@1" in by:
        checks.append(f"- peak per worker, all shards vs one shard: {max(by['dask-2']['workers']):.0f} MB vs "
                      f"{max(by['dask-2@1']['workers']):.0f} MB ({by['dask-2']['images']:,} vs "
                      f"{by['dask-2@1']['images']:,} images)")
    for mode in ("dask-2", "pool-2"):
        if mode in by:  # what the one client does: list, submit, receive and write every part
            cpu = by[mode]["driver_cpu"] / by[mode]["images"]
            checks.append(f"- the client's own work in {mode}: {cpu * 1e6:.0f} CPU µs per image, so one client "
                          f"keeps up with at most {1 / cpu:,.0f} images/s")
    if images:
        stored = sum(p.stat().st_size for p in args.folder.glob("shard-*.tar"))
        checks.append(f"- the shards: {stored / images:,.0f} bytes per image on disk")
    cores = os.cpu_count()
    for mode in ("dask-2", "plain"):
        if rate(mode):
            seconds = 1e6 / rate(mode)
            checks.append(f"- cost per million images, {mode}: {seconds / 60:.1f} min on this {cores}-core machine, "
                          f"{seconds * cores / 3600:.2f} core-hours")
    return "\n".join(lines + checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="where the shards are made (and kept for later runs)")
    parser.add_argument("--images", type=int, default=1_000_000)
    parser.add_argument("--shards", type=int, default=100)
    parser.add_argument("--model", default=str(REPO / "models" / "cnn-fast-aug.npz"))
    parser.add_argument("--partition-size", type=int, default=1000)
    parser.add_argument("--modes", default=",".join(MODES), help=f"some of {', '.join(MODES)}")
    parser.add_argument("--run", help=argparse.SUPPRESS)  # one mode, in a child process
    args = parser.parse_args()
    if args.run:
        print(json.dumps(run_mode(args.run, args.folder, args.model, args.partition_size)))
        return
    if not Path(args.model).is_file():
        sys.exit(f"{args.model}: no model; train one: digitlab train --out {args.model}")
    modes = args.modes.split(",")
    unknown = set(modes) - set(MODES)
    if unknown:
        sys.exit(f"unknown modes {sorted(unknown)}; known: {', '.join(MODES)}")
    check_quiet()
    made = make_shards(args.folder, args.images, args.shards)
    results = []
    for mode in modes:
        env = {"DIGITLAB_THREADS": "1"} if mode == "plain-1" else {}
        common = [str(args.folder), "--model", args.model, "--partition-size", str(args.partition_size)]
        results.append(in_child([*common, "--run", mode], env))
        r = results[-1]
        print(f"{mode}: {r['images']:,} images in {r['seconds']:.1f} s", file=sys.stderr)
    print(report(args, made, results))


if __name__ == "__main__":
    main()
