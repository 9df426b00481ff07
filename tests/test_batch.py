"""digitlab.batch in one process: listing inputs lazily (folders, patterns, tar and zip shards,
datasets), one row per input with errors kept, CSV/JSONL/Parquet outputs, parts and --resume,
bounded memory, and the ``digitlab predict`` command over it."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import signal
import subprocess
import sys
import tarfile
import time
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest
from batch_support import (
    digit_pngs,
    make_inputs,
    png,
    read_output,
    tiny_model,
    write_tar,
)
from conftest import strokes, write_idx

from digitlab import load_model
from digitlab.batch import (
    DatasetItem,
    File,
    TarMember,
    Unreadable,
    ZipMember,
    iter_sources,
    predict_rows,
    predict_to_file,
    run_serial,
)
from digitlab.batch import sources as sources_module
from digitlab.batch.output import parts_folder
from digitlab.cli import main
from digitlab.errors import DigitlabError
from digitlab.vision import find_digit


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return tiny_model(tmp_path_factory.mktemp("batch-model") / "tiny.npz")


@pytest.fixture
def inputs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return make_inputs(tmp_path)


# ------------------------------------------------------------------------------------ listing


def test_folders_and_patterns_are_walked_lazily_in_sorted_order(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("b/2.png", "b/10.png", "a/z/1.jpg", "a/0.PNG", "a/.hidden.png", "a/notes.txt", "c.png"):
        Path(name).parent.mkdir(parents=True, exist_ok=True)
        Path(name).write_bytes(b"x")
    listed = iter_sources(["a", "b", "*.png"])
    assert isinstance(listed, types.GeneratorType)  # nothing is listed until asked for
    assert [s.source for s in listed] == ["a/0.PNG", "a/z/1.jpg", "b/10.png", "b/2.png", "c.png"]
    assert [str(s) for s in iter_sources(["**/1*.*g"])] == ["a/z/1.jpg", "b/10.png"]
    # a named file is an input whatever its suffix; a walk takes image suffixes only
    assert list(iter_sources(["a/notes.txt"])) == [File("a/notes.txt")]
    relative = list(iter_sources(["b"], root=str(tmp_path)))
    monkeypatch.chdir("/")
    assert [s.source for s in relative] == ["b/10.png", "b/2.png"]


def test_inputs_that_give_nothing_still_get_a_row(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("empty").mkdir()
    Path("empty.tar").write_bytes(b"")
    write_tar(Path("labels-only.tar"), [("0.cls", b"3")], labels=False)
    rows = {s.source: s.error for s in iter_sources(["missing.png", "empty", "nothing-*.png", "labels-only.tar"])}
    assert rows == {"missing.png": "no such file or folder", "empty": "holds no images",
                    "nothing-*.png": "no file matches this pattern", "labels-only.tar": "holds no images"}
    [bad] = iter_sources(["empty.tar"])
    assert isinstance(bad, Unreadable) and "not a readable tar archive" in bad.error


def test_tar_members_are_listed_from_their_headers_and_hostile_ones_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = digit_pngs(3)
    members = [("a/0.png", images[0]), ("a/1.png", images[1]), ("../../etc/evil.png", b"x"),
               ("/abs.png", b"x"), ("big.png", b"x" * 5000), ("2.png", images[2])]
    write_tar(Path("shard.tar"), members)
    with tarfile.open("shard.tar", "a") as tar:
        link = tarfile.TarInfo("link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    monkeypatch.setattr(sources_module, "MAX_BYTES", 4096)
    listed = list(iter_sources(["shard.tar"]))
    assert [s.item for s in listed] == ["a/0.png", "a/1.png", "../../etc/evil.png", "/abs.png", "big.png",
                                        "2.png", "link.png"]  # the .cls members are skipped
    assert all(isinstance(s, TarMember) for s in (listed[0], listed[1], listed[5]))
    errors = {s.item: s.error for s in listed if isinstance(s, Unreadable)}
    assert errors["../../etc/evil.png"] == errors["/abs.png"] == "unsafe member name (absolute, or leading outside the archive)"
    assert errors["big.png"].startswith("image file is over the limit") and errors["link.png"] == "a link, not a file"
    with sources_module.Reader() as reader:
        assert listed[1].load(reader) == images[1] and listed[5].load(reader) == images[5 - 3]
    # compressed shards are read the same way, and a truncated one keeps the members before the cut
    Path("shard.tar.gz").write_bytes(gzip.compress(Path("shard.tar").read_bytes()))
    gz = list(iter_sources(["shard.tar.gz"]))
    assert [s.item for s in gz] == [s.item for s in listed]
    with sources_module.Reader() as reader:
        assert gz[5].load(reader) == images[2]
    cut = Path("shard.tar").read_bytes()[: listed[1].offset + 10]
    Path("cut.tar").write_bytes(cut)
    rows = list(predict_rows(load_model(tiny_model(tmp_path / "m.npz")), ["cut.tar"]))
    assert rows[0].error is None and "truncated" in rows[1].error  # the member the cut went through
    assert rows[-1].item == "" and "truncated or corrupt" in rows[-1].error


@pytest.mark.parametrize("fmt", [tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT])
@pytest.mark.parametrize("compress", [None, "gz", "bz2", "xz"])
def test_the_header_reader_agrees_with_tarfile(tmp_path, fmt, compress):
    """Plain headers are read by digitlab, extended ones (long names, pax, links) by tarfile: the
    members, sizes and data offsets are tarfile's, in every format and compression."""
    path = tmp_path / "t.tar"
    names = ["a.png", "dir/" + "x" * 90 + "/" + "y" * 60 + ".png", "\xe9t\xe9.png"]
    names += [] if fmt == tarfile.USTAR_FORMAT else ["b" * 120 + ".png"]
    with tarfile.open(path, "w", format=fmt) as tar:
        for i, name in enumerate([*names, "empty.png"]):
            info = tarfile.TarInfo(name)
            info.size = 0 if name == "empty.png" else 300 + 400 * i
            tar.addfile(info, io.BytesIO(bytes(info.size)))
        for name, kind in (("sub", tarfile.DIRTYPE), ("l.png", tarfile.SYMTYPE)):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "a.png"
            tar.addfile(info)
    if compress:
        packed = tmp_path / f"t.tar.{compress}"
        packed.write_bytes({"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[compress](path.read_bytes()))
        path = packed
    with tarfile.open(path) as tar:
        expected = [(m.name, m.size, m.offset_data, m.isreg(), m.isdir(), m.issym()) for m in tar]
    with sources_module.open_tar_stream(str(path)) as stream:
        got = [(n, size, offset, kind == "file", kind == "dir", kind == "link")
               for n, kind, size, offset in sources_module.tar_members(stream)]
    assert got == expected


def test_zip_members(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = digit_pngs(2)
    with zipfile.ZipFile("d.zip", "w") as zf:
        zf.writestr("x/0.png", images[0])
        zf.writestr("x/readme.txt", "skipped")
        zf.writestr("../up.png", images[1])
        zf.writestr("x/1.png", images[1])
    listed = list(iter_sources(["d.zip"]))
    assert [type(s) for s in listed] == [ZipMember, Unreadable, ZipMember]
    with sources_module.Reader() as reader:
        assert [listed[0].load(reader), listed[2].load(reader)] == images


def test_names_that_are_not_utf8_are_kept_readable(tmp_path, model_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("in")
    Path(os.fsdecode(b"in/caf\xe9.png")).write_bytes(digit_pngs(1)[0])
    with tarfile.open("s.tar", "w", format=tarfile.GNU_FORMAT, encoding="latin-1") as tar:
        tar.add(Path(os.fsdecode(b"in/caf\xe9.png")), arcname="d\xe9j\xe0.png")
    predict_to_file(model_file, ["in", "s.tar"], "out.parquet")
    assert [(r["source"], r["item"], r["error"]) for r in read_output(Path("out.parquet"))] == [
        ("in/caf\\xe9.png", "", None), ("s.tar", "d\\xe9j\\xe0.png", None)]


def test_datasets_give_each_image_as_it_is(tmp_path, model_file):
    """Dataset images are MNIST-like already: they go to the model unchanged (to_mnist would
    re-crop and re-centre them), and an image of another size is an error row."""
    images = strokes(30, seed=3)
    np.savez(tmp_path / "k.npz", x_train=images[:20], y_train=np.zeros(20, np.uint8),
             x_test=images[20:], y_test=np.zeros(10, np.uint8))
    idx = write_idx(tmp_path / "t10k-images-idx3-ubyte", images)
    model = load_model(model_file)
    rows = list(predict_rows(model, [str(tmp_path / "k.npz"), str(idx)], split="train"))
    assert [r.source for r in rows] == [f"{tmp_path / 'k.npz'}:train"] * 20 + [str(idx)] * 30
    assert [r.item for r in rows[:3]] == ["0", "1", "2"]
    direct = model.predict_proba(np.concatenate([images[:20], images]))
    assert np.allclose([r.probability for r in rows], direct.max(axis=1), atol=1e-6)
    assert [r.answer for r in rows] == [str(d) for d in direct.argmax(axis=1)]
    small = write_idx(tmp_path / "small-ubyte", images[:2, :8, :8])
    assert {r.error for r in predict_rows(model, [str(small)])} == {"image is 8x8; the model takes 28x28"}


# -------------------------------------------------------------------------- rows and outputs


def test_every_input_gets_exactly_one_row_and_bad_ones_their_error(inputs, model_file):
    given, names, errors = inputs
    model = load_model(model_file)
    rows = list(predict_rows(model, [*given, "missing.png"], partition_size=16))
    assert [(r.source, r.item) for r in rows] == [*names, ("missing.png", "")]
    for row in rows:
        expected = errors.get((row.source, row.item), "no such file" if row.source == "missing.png" else None)
        if expected is None:
            assert row.error is None and row.answer == str(row.top3[0][0]), row
            assert row.probability == row.top3[0][1] and len(row.top3) == 3
        else:
            assert expected in row.error and row.answer is None and row.probability is None, row
    # the answers are the model's on the digits find_digit makes
    first = Path(names[0][0]).read_bytes()
    assert rows[0].probability == pytest.approx(float(model.predict_proba(find_digit(first).image[None]).max()), abs=1e-6)
    assert {r.answer for r in predict_rows(model, given[:1], threshold=1.0) if r.error is None} == {"?"}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_outputs_read_back_as_the_rows(inputs, model_file, tmp_path, suffix):
    given, names, errors = inputs
    rows = list(predict_rows(load_model(model_file), given))
    out = tmp_path / "out" / f"preds{suffix}"
    summary = predict_to_file(model_file, given, out, partition_size=32)
    assert summary.rows == len(rows) == len(names) and summary.errors == len(errors) and summary.reused == 0
    back = read_output(out)
    assert [(r["source"], r["item"]) for r in back] == names
    for row, read in zip(rows, back):
        assert read["answer"] == row.answer and read["error"] == row.error
        if row.error is None:
            assert read["probability"] == pytest.approx(row.probability, abs=1e-4)
            top3 = read["top3"]
            if suffix == ".csv":
                top3 = [tuple(map(float, t.split(":"))) for t in top3.split()]
            elif suffix == ".parquet":
                top3 = [(t["digit"], t["probability"]) for t in top3]
            assert [d for d, _ in top3] == [d for d, _ in row.top3]
        else:
            assert read["probability"] is None and read["top3"] is None
    assert not parts_folder(out).exists() and sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_csv_on_standard_output(inputs, model_file, capsys):
    given, names, _ = inputs
    assert main(["predict", str(model_file), *given, "--output", "-", "--partition-size", "50"]) == 1
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[0] == "source,item,answer,probability,top3,error" and len(lines) == len(names) + 1
    assert captured.err.strip() == f"6 of {len(names)} images could not be read: the error column says why"


# ------------------------------------------------------------------------------------ resume


class Interrupted(Exception):
    pass


def stopping_after(count: int, computed: list):
    """A serial runner that stops the run (as a kill would) after ``count`` partitions."""

    def runner(model, job, parts, ordered=True):
        for index, sources, part in run_serial(model, job, parts):
            if len(computed) == count:
                raise Interrupted
            computed.append(index)
            yield index, sources, part

    return runner


def test_resume_keeps_whole_parts_and_computes_the_rest(inputs, model_file, tmp_path):
    given, names, _ = inputs
    out = tmp_path / "preds.jsonl"
    computed: list[int] = []
    with pytest.raises(Interrupted):
        predict_to_file(model_file, given, out, partition_size=25, runner=stopping_after(4, computed))
    parts = parts_folder(out)
    assert sorted(p.name[:11] for p in parts.glob("part-*")) == [f"part-{i:06d}" for i in range(4)]
    assert not out.exists()
    with pytest.raises(DigitlabError, match="add --resume to continue it"):
        predict_to_file(model_file, given, out, partition_size=25)
    with pytest.raises(DigitlabError, match="had another partition_size"):
        predict_to_file(model_file, given, out, partition_size=30, resume=True)
    with pytest.raises(DigitlabError, match="had another threshold"):
        predict_to_file(model_file, given, out, partition_size=25, resume=True, threshold=0.5)
    # a part of inputs that have changed since is computed again, not kept
    stale = next(parts.glob("part-000002-*"))
    stale.rename(parts / "part-000002-0000000000000000.jsonl")
    computed.clear()
    summary = predict_to_file(model_file, given, out, partition_size=25, resume=True,
                              runner=stopping_after(100, computed))
    total = -(-len(names) // 25)
    assert computed == [2, *range(4, total)] and summary.reused == 3 and summary.rows == len(names)
    assert [(r["source"], r["item"]) for r in read_output(out)] == names
    assert not parts.exists()


@pytest.mark.slow
def test_a_killed_run_leaves_whole_parts_and_resumes(tmp_path, model_file, capsys):
    """SIGKILL a ``digitlab predict`` midway: only whole parts remain; --resume finishes the run
    and every input is in the output exactly once."""
    folder = tmp_path / "many"
    folder.mkdir()
    for i, data in enumerate(digit_pngs(3000, seed=5)):
        (folder / f"{i:05d}.png").write_bytes(data)
    out = tmp_path / "preds.csv"
    argv = ["predict", str(model_file), str(folder), "--output", str(out), "--partition-size", "50"]
    env = {**os.environ, "DIGITLAB_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-c", "import sys; from digitlab.cli import main; sys.exit(main(sys.argv[1:]))",
                                *argv], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    parts = parts_folder(out)
    deadline = time.monotonic() + 60
    while len(list(parts.glob("part-*"))) < 3:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    written = sorted(parts.glob("part-*"))
    assert len(written) < 60 and not out.exists()
    for part in written:  # each part whole: its 50 rows, each ending its line
        assert part.read_text().count("\n") == 50
    assert main(argv) == 2
    assert "add --resume" in capsys.readouterr().err
    assert main([*argv, "--resume"]) == 0
    assert f"({len(written)} parts kept from the interrupted run)" in " ".join(capsys.readouterr().out.split())
    rows = read_output(out)
    assert [Path(r["source"]).name for r in rows] == [f"{i:05d}.png" for i in range(3000)]
    assert not parts.exists()


# ------------------------------------------------------------------------------------ memory


def test_memory_stays_flat_over_a_long_lazy_input(tmp_path, model_file):
    """A generator of 100,000 sources written to a file: the Python objects alive (sampled every
    5,000 sources) do not grow with the number read, as the inputs are taken a partition at a
    time and written part by part. (A row or source kept per input would add 100,000 blocks.)"""
    images = strokes(50, seed=1)
    np.savez(tmp_path / "d.npz", x_test=images, y_test=np.zeros(50, np.uint8),
             x_train=images[:1], y_train=np.zeros(1, np.uint8))
    spec = str(tmp_path / "d.npz")
    blocks = []

    def sources(n):
        for i in range(n):
            if i % 5000 == 0:
                blocks.append(sys.getallocatedblocks())
            yield DatasetItem(spec, "test", i % 50)

    summary = predict_to_file(load_model(model_file), sources(100_000), tmp_path / "out.csv", partition_size=1000)
    assert summary.rows == 100_000 and len(blocks) == 20
    early, late = max(blocks[2:10]), max(blocks[10:])
    assert late - early < 5_000, blocks


# ------------------------------------------------------------------------------------ the CLI


def test_a_few_images_print_as_a_table_with_whole_names(tmp_path, model_file, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    folder = Path("scans from the morning post, second delivery") / "customer forms received before noon"
    folder.mkdir(parents=True)
    name = folder / "form-2026-12-06-page-0001-field-17-checksum-digit.png"
    name.write_bytes(digit_pngs(1)[0])
    Path("blank.png").write_bytes(png(np.full((40, 40), 255, np.uint8)))
    assert main(["predict", str(model_file), str(name), "blank.png"]) == 1
    captured = capsys.readouterr()
    cells = [line.split("│")[1:4] for line in captured.out.splitlines() if line.startswith("│")]
    column = "".join(cell[0] for cell in cells)
    assert "".join(column.split()) == "".join(f"{name}blank.png".split())  # long names wrap, never cut short
    assert "…" not in captured.out
    assert " ".join(cell[2].strip() for cell in cells).strip().endswith("  no digit found (the image is blank)")
    assert captured.err.strip() == "1 of 2 images could not be read: the error column says why"


def test_exit_status_and_usage_errors(tmp_path, model_file, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    Path("seven.png").write_bytes(digit_pngs(1)[0])
    assert main(["predict", str(model_file), "seven.png", "--output", "p.csv"]) == 0
    assert "wrote 1 rows to p.csv" in capsys.readouterr().out
    usage = {
        "no inputs": (["predict", str(model_file), "--output", "p.csv"], "give the images to read"),
        "unknown model": (["predict", "nothing.npz", "seven.png", "-o", "p.csv"], "no such model file"),
        "unknown format": (["predict", str(model_file), "seven.png", "-o", "p.txt"], "unknown output format '.txt'"),
        "resume stdout": (["predict", str(model_file), "seven.png", "-o", "-", "--resume"], "standard output cannot be resumed"),
        "both clusters": (["predict", str(model_file), "seven.png", "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "not both"),
        "number batch": (["predict", str(model_file), "seven.png", "-o", "p.csv", "--number"], "table of a few images"),
    }
    for what, (argv, words) in usage.items():
        assert main(argv) == 2, what
        err = capsys.readouterr().err
        assert err.startswith("error:") and words in err.replace("\n", " "), (what, err)
    import digitlab.batch

    monkeypatch.setitem(sys.modules, "distributed", None)  # the batch extra not installed
    monkeypatch.delitem(sys.modules, "digitlab.batch.dask", raising=False)
    monkeypatch.delattr(digitlab.batch, "dask", raising=False)
    assert main(["predict", str(model_file), "seven.png", "--workers", "2"]) == 2
    assert "pip install 'digitlab[batch]'" in capsys.readouterr().err
