"""Shared helpers for the benchmarks: machine description, timers, peak memory, quietness check.

Benchmarks are run by hand, one at a time, on an otherwise idle machine; each prints a Markdown
block to paste into BENCHMARKS.md with the command, the machine and the date.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def mnist_dir() -> str:
    """The MNIST folder benchmarks use: $DIGITLAB_DATA_DIR or the copy beside the repository."""
    env = os.environ.get("DIGITLAB_DATA_DIR")
    if env:
        return env
    shared = REPO.parent / "shared" / "data" / "mnist"
    if shared.is_dir():
        return str(shared)
    sys.exit("benchmarks need MNIST: set DIGITLAB_DATA_DIR")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    versions = [f"Python {platform.python_version()}", f"NumPy {np.__version__}"]
    try:
        import torch

        versions.append(f"PyTorch {torch.__version__} ({torch.get_num_threads()} threads)")
    except ImportError:
        pass
    return f"{cpu_name()}, {os.cpu_count()} cores, {platform.system()}; " + ", ".join(versions)


def header(title: str) -> str:
    command = "python " + " ".join([os.path.relpath(sys.argv[0], REPO), *sys.argv[1:]])
    return (f"### {title}\n\n`{command}` — {dt.date.today().isoformat()} — {machine()}\n")


def check_quiet(limit: float = 0.5) -> None:
    """Warn when the machine is busy: timings on a loaded 2-core machine are meaningless."""
    load = os.getloadavg()[0]
    if load > limit:
        print(f"warning: load average {load:.2f} > {limit}: other work is running, timings will be off", file=sys.stderr)


class Timer:
    """Accumulates wall time of the ``with`` blocks it guards."""

    def __init__(self):
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._start


def median_latency_ms(fn, repeats: int = 1000, warmup: int = 50) -> float:
    for _ in range(warmup):
        fn()
    times = np.empty(repeats)
    for i in range(repeats):
        start = time.perf_counter()
        fn()
        times[i] = time.perf_counter() - start
    return float(np.median(times) * 1e3)


def throughput(fn, n_images: int, repeats: int = 5) -> float:
    """Images per second of ``fn()`` (which processes n_images), best of ``repeats``."""
    fn()
    best = min(_time(fn) for _ in range(repeats))
    return n_images / best


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB. Unlike getrusage's ru_maxrss it is not
    inherited from the parent across fork + exec, so a child measures only itself."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def in_fresh_process(args: list[str]) -> str:
    """Run ``python <this script> args`` in a fresh process and return the last line it prints."""
    out = subprocess.run([sys.executable, sys.argv[0], *args], capture_output=True, text=True, check=True)
    return out.stdout.strip().splitlines()[-1]


def peak_rss_of(args: list[str]) -> float:
    """Run ``python <this script> args`` in a fresh process and return the peak RSS it reports."""
    return float(in_fresh_process(args))


def table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
