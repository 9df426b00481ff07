"""No file is trusted before it is checked: crafted images, model files and data files, each
refused with one clear message (through the library and the ``digitlab`` command), and the files
digitlab writes are readable by others as the umask says."""

import io
import json
import os
import re
import stat
import struct
import time
import tracemalloc

import numpy as np
import pytest
from PIL import EpsImagePlugin, Image

from digitlab.cli import main
from digitlab.data import load_dataset, parse_idx, read_csv
from digitlab.data.formats import IMAGE_FORMATS
from digitlab.errors import DataError, DigitlabError, ImageError, ModelError
from digitlab.modelfile import _checksum, load_model, read_header, save_model
from digitlab.nn import Dense, Flatten, ReLU, Rescaling, Sequential, Softmax
from digitlab.nn.model import LAYERS
from digitlab.vision import load_grey

EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 28 28\n%%EndComments\nnewpath 0 0 moveto 28 28 lineto stroke\nshowpage\n"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="28" height="28"><line x1="0" y1="0" x2="28" y2="28" stroke="black"/></svg>'


def one_line_error(capsys, code: int) -> str:
    """The CLI's stderr, checked to be one ``error:`` line (rich may wrap it once) after exit 2."""
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("error:") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 2, err
    return err


def encoded(fmt: str) -> bytes:
    image = Image.new("L", (28, 28), 255)
    image.paste(0, (10, 4, 16, 24))
    buffer = io.BytesIO()
    image.convert("RGB" if fmt in ("PDF", "PCX", "ICO", "SGI", "TGA") else "L").save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture
def never_ghostscript(monkeypatch):
    """Fail the test if Pillow's EPS plugin (which runs Ghostscript) is ever asked to open a file."""
    def refuse(self):
        raise AssertionError("Pillow's EPS plugin was asked to open a file")
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", refuse)


@pytest.fixture
def model_file(tmp_path):
    model = Sequential([Rescaling(), Flatten(), Dense(100), ReLU(), Dense(10), Softmax()], input_shape=(28, 28))
    return save_model(model.compile("adam"), tmp_path / "small.npz", recipe="small")


# ---------------------------------------------------------------------------- 3. image formats


def test_the_allow_list_is_pillows_names_and_each_format_is_read():
    assert IMAGE_FORMATS == ("PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP", "PPM")
    Image.init()
    assert set(IMAGE_FORMATS) <= set(Image.OPEN)
    for fmt in IMAGE_FORMATS:
        assert load_grey(encoded(fmt)).shape == (28, 28), fmt


@pytest.mark.parametrize("fmt", ["EPS", "PDF", "SVG", "PCX", "ICO", "SGI", "TGA"])
def test_other_formats_are_refused_by_name(fmt, never_ghostscript):
    data = {"EPS": EPS, "SVG": SVG}.get(fmt) or encoded(fmt)
    with pytest.raises(ImageError, match=r"^not an image in a format digitlab reads \(PNG, JPEG, GIF, BMP, TIFF, WEBP, PPM\)$"):
        load_grey(data)


def test_predict_refuses_an_eps_whatever_its_name(model_file, tmp_path, capsys, never_ghostscript):
    for name in ("drawing.eps", "drawing.png"):
        (tmp_path / name).write_bytes(EPS)
        assert main(["predict", str(model_file), str(tmp_path / name)]) == 1  # its row says why
        captured = capsys.readouterr()
        assert "not an image in a format digitlab reads (PNG, JPEG" in " ".join(captured.out.replace("│", " ").split())
        assert captured.err.strip() == "1 of 1 images could not be read: the error column says why"


def test_image_folder_opens_only_the_allowed_formats(tmp_path, capsys, never_ghostscript):
    folder = tmp_path / "digits"
    (folder / "3").mkdir(parents=True)
    (folder / "3" / "a.png").write_bytes(encoded("PNG"))
    assert load_dataset(str(folder), "all").images.shape == (1, 28, 28)
    (folder / "3" / "b.png").write_bytes(EPS)
    err = one_line_error(capsys, main(["data", "info", "--dataset", str(folder)]))
    assert "b.png: not a readable image (not in a format digitlab reads: PNG, JPEG, GIF, BMP, TIFF, WEBP, PPM)" in err
    (folder / "3" / "b.png").write_bytes(encoded("PCX"))
    with pytest.raises(DataError, match="b.png: not a readable image .not in a format digitlab reads"):
        load_dataset(str(folder), "all")


# -------------------------------------------------------------------------------- 4. model files


def craft(model_file, path, header=None, arrays=None):
    """A copy of ``model_file`` with its JSON header and arrays changed by ``header(h)`` (which may
    return a replacement) and ``arrays(members)``; written with np.savez as a model file is."""
    with np.load(model_file) as npz:
        members = {k: npz[k] for k in npz.files}
    h = json.loads(members["header"].tobytes())
    if header:
        h = header(h) or h
    if arrays:
        arrays(members, h)
    members["header"] = np.frombuffer(json.dumps(h).encode(), np.uint8)
    np.savez(path, **members)
    return path


def units(n):
    def change(h):
        h["architecture"]["layers"][2]["config"]["units"] = n
    return change


def test_a_header_claiming_a_huge_layer_is_refused_quickly_without_allocating(model_file, tmp_path):
    path = craft(model_file, tmp_path / "big.npz", units(40_000))
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(ModelError) as err:
            load_model(path)
        seconds, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(err.value) == (f"{path}: layer 2 (Dense) needs weights of shape (784, 40000), (40000,); "
                              "the file holds (784, 100), (100,)")
    assert peak < 50e6 and seconds < 2, (peak, seconds)

    path = craft(model_file, tmp_path / "huge.npz", units(10**12))
    with pytest.raises(ModelError, match=r"layer 2 \(Dense\) needs weights of shape \(784, 1000000000000\)"):
        load_model(path)


def set_nan(members, h):
    members["w000"] = members["w000"].copy()
    members["w000"][3, 5] = np.nan
    h["sha256"] = _checksum([members[f"w{i:03d}"] for i in range(len(h["arrays"]))])


@pytest.mark.parametrize("change, message", [
    (lambda h: [h], "not a digitlab model file (its header is a JSON list, not an object)"),
    (lambda h: h["architecture"]["layers"].__setitem__(1, "Flatten"),
     "invalid header: architecture.layers[1] must be an object. Got 'Flatten'"),
    (lambda h: h["architecture"]["layers"][2].__setitem__("config", [100]),
     "invalid header: architecture.layers[2].config must be an object. Got [100]"),
    (lambda h: h["architecture"]["layers"][2]["config"].__setitem__("units", "100"),
     "layer 2 of the architecture is invalid (Dense: units must be a positive integer. Received: units='100')"),
    (lambda h: h["architecture"]["layers"][2]["config"].__setitem__("size", 3),
     "layer 2 of the architecture is invalid (Dense.__init__() got an unexpected keyword argument 'size')"),
    (lambda h: h["architecture"]["layers"][0].__setitem__("type", "Lambda"), "unknown layer type 'Lambda'"),
    (lambda h: h["architecture"].__setitem__("seed", -1), "invalid header: architecture.seed must be an integer >= 0. Got -1"),
    (lambda h: h["architecture"].__setitem__("input_shape", []),
     "invalid header: architecture.input_shape must be a non-empty list of positive integers. Got []"),
    (lambda h: h.pop("architecture") and h, "invalid header: architecture is missing"),
    (lambda h: h.__setitem__("compile", "adam"), "invalid header: compile must be an object. Got 'adam'"),
    (lambda h: h["compile"].__setitem__("optimizer", {"name": "adam", "bogus": 1}),
     "invalid training configuration in the header (TypeError: "),
    (lambda h: h["compile"].__setitem__("optimizer", "sgdd"), "unknown optimizer 'sgdd'"),
    (lambda h: h.__setitem__("history", {"epoch": 1}), "invalid header: history must be a list. Got {'epoch': 1}"),
    (lambda h: h.__setitem__("history", [1, 2]), "invalid header: history[0] must be an object. Got 1"),
    (lambda h: h.__setitem__("training", []), "invalid header: training must be an object. Got []"),
    (lambda h: h.__setitem__("recipe", 7), "invalid header: recipe must be a string. Got 7"),
    (lambda h: h.__setitem__("format_version", "1"), "invalid header: format_version must be a positive integer. Got '1'"),
    (lambda h: h.__setitem__("format_version", 1.0), "invalid header: format_version must be a positive integer. Got 1.0"),
    (lambda h: h["arrays"].pop() and h, "the header lists 3 weight arrays, the file holds 4"),
    (lambda h: h["arrays"][0].__setitem__("shape", [784, 99]), "array w000 is <f4 (784, 100), the header says <f4 (784, 99)"),
])
def test_malformed_headers_are_one_model_error_naming_the_file(model_file, tmp_path, change, message):
    path = craft(model_file, tmp_path / "bad.npz", change)
    with pytest.raises(ModelError) as err:
        load_model(path)
    text = str(err.value)
    assert text.startswith(f"{path}: ") and message in text and "\n" not in text, text


def test_arrays_that_disagree_with_the_architecture_are_refused(model_file, tmp_path):
    def swap(members, h):  # a consistent file whose arrays are not the architecture's
        members["w000"] = np.zeros((784, 50), np.float32)
        h["arrays"][0]["shape"] = [784, 50]
        h["sha256"] = _checksum([members[f"w{i:03d}"] for i in range(4)])
    path = craft(model_file, tmp_path / "swap.npz", arrays=swap)
    with pytest.raises(ModelError, match=r"layer 2 \(Dense\) needs weights of shape \(784, 100\), \(100,\); "
                                         r"the file holds \(784, 50\), \(100,\)"):
        load_model(path)

    def ints(members, h):
        members["w001"] = members["w001"].astype(np.int32)
        h["arrays"][1]["dtype"] = "<i4"
    with pytest.raises(ModelError, match="array w001 holds int32, weights are floating-point"):
        load_model(craft(model_file, tmp_path / "ints.npz", arrays=ints))


def test_an_array_header_claiming_more_than_the_file_holds_is_refused(model_file, tmp_path):
    path = tmp_path / "lying.npz"
    data = bytearray(model_file.read_bytes())
    old = b"'shape': (784, 100)"
    at = data.index(old)
    data[at : at + len(old)] = b"'shape': (784, 999)"  # same length: only the claim changes
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="not a readable model file, truncated or corrupt"):
        load_model(path)


def test_non_finite_weights_are_refused(model_file, tmp_path, capsys):
    path = craft(model_file, tmp_path / "nan.npz", arrays=set_nan)
    with pytest.raises(ModelError, match=r"nan.npz: weight array w000 holds NaN or infinite values$"):
        load_model(path)
    err = one_line_error(capsys, main(["evaluate", str(path)]))
    assert "holds NaN or infinite values" in err
    model = load_model(model_file)
    model.layers[4].params[1][0] = np.inf
    with pytest.raises(ModelError, match="cannot save: weight array w003 holds NaN or infinite values"):
        save_model(model, tmp_path / "inf.npz")
    assert not (tmp_path / "inf.npz").exists()


def test_crafted_files_through_the_cli_are_one_line(model_file, tmp_path, capsys):
    for name, change in (("big", units(40_000)), ("list", lambda h: [h]),
                         ("version", lambda h: h.__setitem__("format_version", "1"))):
        path = craft(model_file, tmp_path / f"{name}.npz", change)
        err = one_line_error(capsys, main(["evaluate", str(path)]))
        assert str(path) in err and "upgrade" not in err


def test_good_files_still_load_and_read_header_reads_no_weights(model_file):
    assert read_header(model_file)["recipe"] == "small"
    model = load_model(model_file)
    assert model.metadata["recipe"] == "small" and model.num_params == 784 * 100 + 100 + 100 * 10 + 10


LAYER_SAMPLES = {"Dense": {"units": 3}, "Conv2D": {"filters": 2}, "Reshape": {"shape": [4, 4, 2]},
                 "Dropout": {"rate": 0.5}}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_every_layer_says_the_weight_shapes_it_builds(name):
    """`Layer.weight_shapes` must predict the arrays of every layer type, so that a model file is
    checked before the layer allocates them."""
    for shape in ((4, 4, 2), (32,)):
        layer = LAYERS[name](**LAYER_SAMPLES.get(name, {}))
        try:
            layer.build(shape, np.random.default_rng(0))
        except ModelError:
            continue
        actual = [a.shape for a in (*layer.params, *layer.state)]
        assert layer.weight_shapes(shape) == actual, (name, shape)
        return
    pytest.fail(f"{name}: builds on no sample input shape; add one")


# -------------------------------------------------------------------------------- 5. data files


def test_idx_dimensions_overflowing_64_bits(tmp_path, capsys):
    data = struct.pack(">BBBB", 0, 0, 0x08, 3) + struct.pack(">3I", 2**32 - 1, 2**32 - 1, 2**32 - 1) + bytes(16)
    with pytest.raises(DataError, match=r"x.idx: truncated: header declares 4294967295x4294967295x4294967295 "
                                        r"\(79228162458924105385300197375 bytes of data\) but only 16 bytes follow"):
        parse_idx(data, "x.idx")
    folder = write_tiny_mnist(tmp_path / "mnist")
    (folder / "train-images-idx3-ubyte.gz").write_bytes(data)  # read by its magic bytes, not its name
    err = one_line_error(capsys, main(["data", "info", "--data-dir", str(folder)]))
    assert "truncated: header declares 4294967295x" in err


@pytest.mark.parametrize("label, shown", [("inf", "inf"), ("-inf", "-inf"), ("1e300", "1e+300"),
                                          ("1" * 30, "1.11111111111111e+29"), ("12", "12")])
def test_csv_labels_that_fit_no_integer(label, shown, tmp_path, capsys):
    path = tmp_path / "d.csv"
    path.write_text(f"3,{','.join(['0'] * 4)}\n{label},{','.join(['7'] * 4)}\n")
    with pytest.raises(DataError, match=re.escape(f"d.csv: label {shown} at position 1 is out of range 0..9") + "$"):
        read_csv(path)
    err = one_line_error(capsys, main(["data", "info", "--dataset", str(path)]))
    assert f"label {shown} at position 1" in err and "-9223372036854775808" not in err


# ------------------------------------------------------------------------- 7. written files' modes


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask():
    """Set the process umask for a test and restore it afterwards."""
    old = os.umask(0o022)
    yield os.umask
    os.umask(old)


def test_written_files_follow_the_umask_and_keep_their_mode(model_file, tmp_path, umask, capsys):
    folder = tmp_path / "mnist"
    write_tiny_mnist(folder)
    out = tmp_path / "grid.png"
    umask(0o022)
    assert main(["data", "show", "--data-dir", str(folder), "--n", "4", "--out", str(out)]) == 0
    assert mode(out) == 0o644
    umask(0o077)
    assert main(["data", "show", "--data-dir", str(folder), "--n", "4", "--out", str(tmp_path / "private.png")]) == 0
    assert mode(tmp_path / "private.png") == 0o600
    # replacing a file keeps its mode, whatever the umask
    os.chmod(out, 0o640)
    assert main(["data", "show", "--data-dir", str(folder), "--n", "4", "--out", str(out)]) == 0
    assert mode(out) == 0o640
    umask(0o022)
    model = save_model(load_model(model_file), tmp_path / "shared.npz")
    assert mode(model) == 0o644
    os.chmod(model, 0o644)
    umask(0o077)
    save_model(load_model(model_file), model)
    assert mode(model) == 0o644


def test_a_killed_writes_leftover_is_removed_but_a_live_one_is_kept(tmp_path, capsys):
    import fcntl

    folder = tmp_path / "mnist"
    write_tiny_mnist(folder)
    out = tmp_path / "grid.png"
    dead = tmp_path / ".grid.png.0badc0de.part"
    live = tmp_path / ".grid.png.1badc0de.part"
    other = tmp_path / ".other.png.2badc0de.part"
    for p in (dead, live, other):
        p.write_bytes(b"half a file")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # as a writer still at work holds it
        assert main(["data", "show", "--data-dir", str(folder), "--n", "4", "--out", str(out)]) == 0
    assert out.is_file() and not dead.exists() and live.exists() and other.exists()


def write_tiny_mnist(folder):
    from conftest import write_mnist_folder

    return write_mnist_folder(folder, n_train=8, n_test=4)


def test_writing_under_a_file_or_over_a_folder_is_one_error(tmp_path):
    from digitlab._files import atomic_write

    (tmp_path / "file.txt").write_text("x")
    for path, message in ((tmp_path / "file.txt" / "out.png", "file.txt is a file, not a folder"),
                          (tmp_path / "file.txt" / "a" / "out.png", "file.txt is a file, not a folder"),
                          (tmp_path, "is a folder; give a file name")):
        with pytest.raises(DigitlabError, match=message) as err, atomic_write(path) as f:
            f.write(b"x")
        assert str(err.value).startswith(str(path))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]
