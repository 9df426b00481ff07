"""Generated inputs for the batch tests: digit-like PNGs in folders and tar shards, with bad ones
mixed in (not an image, truncated, blank, too many pixels), and a tiny model that reads 28x28."""

from __future__ import annotations

import csv
import io
import json
import struct
import tarfile
import zlib
from pathlib import Path

import numpy as np
from conftest import strokes
from PIL import Image

from digitlab import save_model
from digitlab.nn import Dense, Flatten, Rescaling, Sequential, Softmax


def tiny_model(path: Path) -> Path:
    """A 784-10 softmax network with random weights: fast, and enough to check the plumbing."""
    model = Sequential([Rescaling(1 / 255), Flatten(), Dense(10), Softmax()], input_shape=(28, 28), seed=0)
    return save_model(model, path)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def digit_pngs(n: int, seed: int = 0) -> list[bytes]:
    """``n`` PNGs of dark rings on light paper, 28..40 px, all different."""
    rings = strokes(n, seed=seed)
    pad = np.random.default_rng(seed).integers(0, 7, n)
    return [png(255 - np.pad(ring, int(p))) for ring, p in zip(rings, pad)]


def huge_png() -> bytes:
    """A PNG whose header says 20000 x 20000 pixels (400 megapixels): refused before decoding."""
    data = bytearray(png(np.zeros((8, 8), np.uint8)))
    ihdr = 8 + 8  # signature, then length and type of the IHDR chunk
    data[ihdr : ihdr + 8] = struct.pack(">II", 20000, 20000)
    data[ihdr + 13 : ihdr + 17] = struct.pack(">I", zlib.crc32(bytes(data[ihdr - 4 : ihdr + 13])))
    return bytes(data)


BAD = {  # name -> (content, words of the error expected in its row)
    "notes.png": (b"a shopping list, not an image", "not an image"),
    "truncated.png": (None, "truncated"),
    "blank.png": (None, "no digit found"),
    "huge.png": (None, "megapixels"),
}


def bad_files() -> dict[str, tuple[bytes, str]]:
    good = digit_pngs(1, seed=99)[0]
    contents = {
        "notes.png": BAD["notes.png"][0],
        "truncated.png": good[: len(good) // 2],
        "blank.png": png(np.full((40, 40), 255, np.uint8)),
        "huge.png": huge_png(),
    }
    return {name: (contents[name], BAD[name][1]) for name in BAD}


def write_tar(path: Path, members: list[tuple[str, bytes]], labels: bool = True) -> Path:
    """A WebDataset-style shard: each image ``key.png`` beside a ``key.cls`` label member."""
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            _add(tar, name, data)
            if labels and name.endswith(".png"):
                _add(tar, name[:-4] + ".cls", b"3")
    return path


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_inputs(root: Path, n_files: int = 120, n_shards: int = 3, per_shard: int = 60, seed: int = 0):
    """Folders and tar shards of generated digits with the bad files mixed in. Returns (the
    inputs to give, the expected (source, item) names in listing order, the names expected to
    hold an error, each with words of its message)."""
    images = digit_pngs(n_files + n_shards * per_shard, seed)
    bad = bad_files()
    scans = root / "scans"
    names, errors = [], {}
    for i in range(n_files):
        folder = scans / f"batch-{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{i:04d}.png").write_bytes(images[i])
    for name, (content, words) in bad.items():
        (scans / "batch-1" / name).write_bytes(content)
    (scans / "batch-0" / "README.txt").write_text("not an input: skipped by the walk")
    for b in range(3):
        for path in sorted((scans / f"batch-{b}").iterdir()):
            if path.suffix == ".png":
                names.append((f"scans/batch-{b}/{path.name}", ""))
                if path.name in bad:
                    errors[names[-1]] = bad[path.name][1]
    shards = root / "shards"
    shards.mkdir()
    k = n_files
    for s in range(n_shards):
        members = []
        for j in range(per_shard):
            members.append((f"{s:02d}-{j:05d}.png", images[k]))
            k += 1
        if s == 1:
            members.insert(7, ("bad-blank.png", bad["blank.png"][0]))
            members.insert(20, ("bad-notes.png", bad["notes.png"][0]))
        write_tar(shards / f"shard-{s:03d}.tar", members)
        for name, _ in members:
            names.append((f"shards/shard-{s:03d}.tar", name))
            if name.startswith("bad-"):
                errors[names[-1]] = "no digit found" if "blank" in name else "not an image"
    return ["scans", "shards/*.tar"], names, errors


def read_output(path: Path) -> list[dict]:
    """Rows of a CSV, JSON Lines or Parquet output as dicts of plain values (None for empty)."""
    if path.suffix == ".csv":
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        for row in rows:
            for key, value in row.items():
                row[key] = value if value != "" or key == "item" else None
            if row["probability"] is not None:
                row["probability"] = float(row["probability"])
        return rows
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()
