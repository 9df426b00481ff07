"""Writing rows: CSV, JSON Lines or Parquet, one part file per partition, joined at the end.

| format | suffix | a row |
|---|---|---|
| CSV | .csv (``-``: standard output) | ``source,item,answer,probability,top3,error``; ``top3`` as ``7:0.9812 1:0.0101 9:0.0042``; empty fields for None |
| JSON Lines | .jsonl, .ndjson | one object per line; ``top3`` as ``[[7, 0.9812], ...]``; null for None |
| Parquet | .parquet | ``probability`` float32, ``top3`` list<struct<digit: int8, probability: float32>>, the rest strings; nulls for None; one row group per 65,536 rows (needs pyarrow) |

While a run goes, its parts live in ``OUTPUT.parts/`` beside the output:
``part-000012-<digest>.csv`` holds partition 12's rows, and ``<digest>`` is a digest of the names of
that partition's inputs. Each part is written atomically (`digitlab._files.atomic_write`), by the
driver, from what the task returned; a task run twice (its worker died) writes the same part
again. ``manifest.json`` records the model, threshold, partition size and split. When every
partition is done the parts are joined in order into the output, itself written atomically, and
the folder is removed. A resumed run keeps a part only when its index and digest match a partition
of this run, so inputs that changed since are computed again rather than mixed in.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import BinaryIO, Callable, Iterable, NamedTuple

from .._files import atomic_write, ensure_writable, make_folder
from ..errors import DigitlabError
from .run import COLUMNS, Row
from .sources import Source

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
ROW_GROUP = 65_536  # Parquet rows per row group in the joined file
MANIFEST = "manifest.json"
_MANIFEST_FORMAT = "digitlab batch parts"


def output_format(output) -> str:
    """"csv", "jsonl" or "parquet", from the output's suffix ("-" is CSV on standard output)."""
    if str(output) == "-":
        return "csv"
    suffix = Path(output).suffix.lower()
    if suffix not in FORMATS:
        raise DigitlabError(f"{output}: unknown output format {suffix or '(no suffix)'!r}; "
                            f"use {', '.join(FORMATS)} (or - for CSV on standard output)")
    if FORMATS[suffix] == "parquet":
        _pyarrow()
    return FORMATS[suffix]


def encode(rows: list[Row], fmt: str) -> bytes:
    """``rows`` as a part in ``fmt``: CSV without its header line, JSON Lines, or a Parquet file."""
    if fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        for row in rows:
            writer.writerow(_csv_fields(row))
        return buffer.getvalue().encode("utf-8")
    if fmt == "jsonl":
        return "".join(json.dumps(_json_row(row), ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    if fmt == "parquet":
        _, pq = _pyarrow()
        buffer = io.BytesIO()
        pq.write_table(_table(rows), buffer)
        return buffer.getvalue()
    raise ValueError(f"unknown format {fmt!r}")


def csv_header() -> bytes:
    return (",".join(COLUMNS) + "\n").encode("utf-8")


def _csv_fields(row: Row) -> list[str]:
    top3 = " ".join(f"{d}:{p:.4f}" for d, p in row.top3) if row.top3 else ""
    probability = "" if row.probability is None else f"{row.probability:.4f}"
    return [row.source, row.item, row.answer or "", probability, top3, row.error or ""]


def _json_row(row: Row) -> dict:
    return {
        "source": row.source, "item": row.item, "answer": row.answer,
        "probability": None if row.probability is None else round(row.probability, 6),
        "top3": None if row.top3 is None else [[d, round(p, 6)] for d, p in row.top3],
        "error": row.error,
    }


def _schema():
    pa, _ = _pyarrow()
    top = pa.struct([("digit", pa.int8()), ("probability", pa.float32())])
    return pa.schema([("source", pa.string()), ("item", pa.string()), ("answer", pa.string()),
                      ("probability", pa.float32()), ("top3", pa.list_(top)), ("error", pa.string())])


def _table(rows: list[Row]):
    pa, _ = _pyarrow()
    columns = list(zip(*rows)) if rows else [()] * len(COLUMNS)
    top3 = [None if t is None else [{"digit": d, "probability": p} for d, p in t] for t in columns[4]]
    return pa.Table.from_arrays(
        [pa.array(columns[0], pa.string()), pa.array(columns[1], pa.string()), pa.array(columns[2], pa.string()),
         pa.array(columns[3], pa.float32()), pa.array(top3, _schema().field("top3").type),
         pa.array(columns[5], pa.string())], schema=_schema())


def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise DigitlabError("Parquet output needs pyarrow: pip install 'digitlab[batch]'") from None
    return pa, pq


def count_part(data: bytes, fmt: str) -> tuple[int, int]:
    """(rows, rows with an error) of an encoded part."""
    if fmt == "csv":
        rows = list(csv.reader(io.StringIO(data.decode("utf-8"))))
        return len(rows), sum(1 for r in rows if r and r[-1])
    if fmt == "jsonl":
        rows = [json.loads(line) for line in data.decode("utf-8").splitlines() if line]
        return len(rows), sum(1 for r in rows if r.get("error") is not None)
    _, pq = _pyarrow()
    errors = pq.read_table(io.BytesIO(data), columns=["error"]).column("error")
    return len(errors), len(errors) - errors.null_count


def write_csv_stream(results: Iterable, out: BinaryIO, advance: Callable[[int], None]) -> tuple[int, int]:
    """Write the header, then each part's CSV bytes as ordered ``results`` give them; flush after
    each part so a reader downstream sees rows as they come. Returns (rows, errors)."""
    out.write(csv_header())
    rows = errors = 0
    for _, _, part in results:
        out.write(part.data)
        out.flush()
        rows += part.rows
        errors += part.errors
        advance(part.rows)
    out.flush()
    return rows, errors


def parts_folder(output) -> Path:
    """Where the parts of ``output`` are kept while a run goes: ``OUTPUT.parts/`` beside it."""
    output = Path(output)
    return output.with_name(output.name + ".parts")


def check_output(output, resume: bool = False) -> str:
    """Before any work: the output's format, once checked that it can be written and that no
    unfinished run's parts would be lost (they need ``resume``). Raises `DigitlabError`."""
    fmt = output_format(output)
    if str(output) == "-":
        if resume:
            raise DigitlabError("--resume needs an output file: standard output cannot be resumed")
        return fmt
    ensure_writable(output)
    if parts_folder(output).exists() and not resume:
        raise DigitlabError(f"{parts_folder(output)}: an unfinished run left its parts here; add --resume to "
                            "continue it, or delete the folder to start again")
    return fmt


class Done(NamedTuple):
    rows: int
    errors: int


class PartStore:
    """The parts of one output: ``OUTPUT.parts/`` (see the module's docstring)."""

    def __init__(self, output: Path, fmt: str, settings: dict):
        self.output, self.fmt = Path(output), fmt
        self.folder = parts_folder(self.output)
        self.manifest = {"format": _MANIFEST_FORMAT, "version": 1, "output": fmt, **settings}
        self.names: list[str] = []  # the part file of each partition index of this run
        self.existing: dict[int, str] = {}

    def start(self, resume: bool) -> None:
        """Check the output can be written, then find the parts of an earlier run (kept only with
        ``resume``, and only when it had the same settings), or start a new parts folder."""
        check_output(self.output, resume)
        manifest = self.folder / MANIFEST
        if self.folder.exists():
            try:
                found = json.loads(manifest.read_text())
            except (OSError, ValueError):
                raise DigitlabError(f"{self.folder}: no readable {MANIFEST}: not the parts of a digitlab run; "
                                    "delete it to start again") from None
            differ = [k for k in self.manifest if found.get(k) != self.manifest[k]]
            if differ:
                raise DigitlabError(f"{self.folder}: the unfinished run had another {', '.join(differ)}; "
                                    "resume it with the same settings, or delete the folder to start again")
            for entry in os.scandir(self.folder):
                index = _part_index(entry.name, self.fmt)
                if index is not None:
                    self.existing[index] = entry.name
        else:
            make_folder(self.folder)
            with atomic_write(manifest, "w") as f:
                json.dump(self.manifest, f, indent=1)

    def name(self, index: int, sources: list[Source]) -> str:
        h = hashlib.sha256()
        for source in sources:
            h.update(f"{source.source}\0{source.item}\0".encode("utf-8", "surrogateescape"))
        return f"part-{index:06d}-{h.hexdigest()[:16]}.{self.fmt}"

    def reuse(self, index: int, sources: list[Source]) -> Done | None:
        """The counts of partition ``index``'s part if an earlier run wrote it for these same
        inputs (then it is kept), else None (it is to be computed)."""
        name = self.name(index, sources)
        self.names.append(name)
        assert len(self.names) == index + 1, "partitions come in order"
        if self.existing.get(index) != name:
            return None
        try:
            done = Done(*count_part((self.folder / name).read_bytes(), self.fmt))
        except Exception:  # unreadable: computed again
            return None
        return done if done.rows == len(sources) else None

    def write(self, index: int, sources: list[Source], data: bytes) -> None:
        """Write partition ``index``'s part atomically, and remove any part of another run for
        the same index."""
        name = self.names[index]
        with atomic_write(self.folder / name) as f:
            f.write(data)
        stale = self.existing.pop(index, None)
        if stale and stale != name:
            (self.folder / stale).unlink(missing_ok=True)

    def finish(self) -> None:
        """Join the parts, in order, into the output (atomically), then remove the parts folder."""
        paths = [self.folder / name for name in self.names]
        missing = [p.name for p in paths if not p.is_file()]
        if missing:
            raise DigitlabError(f"{self.folder}: {len(missing)} part(s) missing, such as {missing[0]}; "
                                "run again with --resume")
        with atomic_write(self.output) as out:
            if self.fmt == "parquet":
                _join_parquet(paths, out)
            else:
                if self.fmt == "csv":
                    out.write(csv_header())
                for path in paths:
                    with open(path, "rb") as part:
                        shutil.copyfileobj(part, out, 1 << 20)
        shutil.rmtree(self.folder, ignore_errors=True)


def _join_parquet(paths: list[Path], out: BinaryIO) -> None:
    """Parts into one Parquet file of `ROW_GROUP`-row groups, holding at most one group at a time."""
    pa, pq = _pyarrow()
    with pq.ParquetWriter(out, _schema()) as writer:
        pending = _table([])
        for path in paths:
            pending = pa.concat_tables([pending, pq.read_table(path)])
            while pending.num_rows >= ROW_GROUP:
                writer.write_table(pending.slice(0, ROW_GROUP))
                pending = pending.slice(ROW_GROUP)
        if pending.num_rows or not paths:
            writer.write_table(pending)


def _part_index(name: str, fmt: str) -> int | None:
    if not (name.startswith("part-") and name.endswith("." + fmt)):
        return None
    digits = name[5:].split("-", 1)[0]
    return int(digits) if digits.isdigit() else None
