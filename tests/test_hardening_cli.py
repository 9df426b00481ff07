"""No traceback reaches a user, and a run fails before its work, not after: every command, given
bad numbers or an output path it cannot write, exits 2 with one ``error:`` line."""

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import grid_of_marks, write_mnist_folder
from PIL import Image

from digitlab.cli import main


def one_line_error(capsys, code: int) -> str:
    """The CLI's stderr, checked to be one ``error:`` line (rich may wrap it once) after exit 2,
    with nothing on stdout (no work was reported before the error)."""
    captured = capsys.readouterr()
    err = captured.err
    assert code == 2, err
    assert err.startswith("error:") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) <= 2, err
    return err


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(data folder, model file, image file): a one-epoch model on 64 random images."""
    root = tmp_path_factory.mktemp("cli-hardening")
    data = write_mnist_folder(root / "mnist", n_train=64, n_test=20)
    model = root / "m.npz"
    assert main(["train", "-r", "tutorial-keras-dense", "--epochs", "1", "--out", str(model), "--data-dir", str(data)]) == 0
    image = root / "digit.png"
    pixels = np.full((40, 40), 255, np.uint8)
    pixels[8:32, 18:23] = 0
    Image.fromarray(pixels).save(image)
    return data, model, image


def commands(setup, out_file: Path, out_folder: Path) -> dict[str, list[str]]:
    """Every command that writes a file or folder, writing ``out_file`` or into ``out_folder``."""
    data, model, image = setup
    d = ["--data-dir", str(data)]
    return {
        "train --out": ["train", "-r", "tutorial-keras-dense", "--epochs", "1", "--out", str(out_file.with_suffix(".npz")), *d],
        "data show --out": ["data", "show", "--n", "4", "--out", str(out_file), *d],
        "evaluate --report": ["evaluate", str(model), "--report", str(out_folder), *d],
        "compare --out": ["compare", str(model), str(model), "--out", str(out_file), *d],
        "predict --show": ["predict", str(model), str(image), "--show", str(out_file)],
        "reproduce --save": ["reproduce", "--recipes", "tutorial-keras-dense", "--quick", "--save", str(out_folder), *d],
        "export --onnx": ["export", str(model), "--onnx", str(out_file.with_suffix(".onnx"))],
    }


@pytest.mark.parametrize("where", ["under a file", "deeper under a file", "a folder given as the file"])
def test_unwritable_outputs_fail_first_with_one_line(setup, tmp_path, capsys, where):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    folder = tmp_path / "existing"
    folder.mkdir()
    if where == "a folder given as the file":
        for name in ("out.png", "out.npz", "out.onnx"):
            (folder / name).mkdir(parents=True)
        out_file, out_folder = folder / "out.png", blocker  # a file given as the report/save folder
        expected = ("is a folder; give a file name", "file.txt is a file, not a folder")
    else:
        base = blocker if where == "under a file" else blocker / "sub"
        out_file, out_folder = base / "out.png", base / "report"
        expected = ("file.txt is a file, not a folder",)
    for name, argv in commands(setup, out_file, out_folder).items():
        start = time.perf_counter()
        err = one_line_error(capsys, main(argv))
        assert any(e in err for e in expected), (name, err)
        assert "epoch" not in err and time.perf_counter() - start < 5, name  # refused before training
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing", "file.txt"]


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0,
                    reason="root writes into a read-only folder anyway: the read-only case is covered by paths "
                           "under a file; run the tests as a normal user to check chmod 555")
def test_read_only_folder_fails_before_the_work(setup, tmp_path, capsys):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for name, argv in commands(setup, locked / "out.png", locked / "report").items():
            err = one_line_error(capsys, main(argv))
            assert "Permission denied" in err and "epoch" not in err, (name, err)
        assert list(locked.iterdir()) == []
    finally:
        locked.chmod(0o755)


def test_the_destination_check_leaves_only_the_folder(setup, tmp_path, capsys):
    data, model, _ = setup
    report = tmp_path / "new" / "report"
    assert main(["evaluate", str(model), "--report", str(report), "--data-dir", str(data)]) == 0
    assert (report / "report.html").is_file() and not list(report.glob(".*"))
    from digitlab._files import ensure_writable

    ensure_writable(tmp_path / "fresh" / "m.npz")
    ensure_writable(tmp_path / "fresh2", folder=True)
    assert list((tmp_path / "fresh").iterdir()) == [] and list((tmp_path / "fresh2").iterdir()) == []


def test_predict_number_refuses_a_page_of_marks_at_once(setup, tmp_path, capsys):
    """`digitlab predict --number` reads at most 64 digits an image, as the web server does: a
    grid of thousands of marks once took minutes; it is refused from their count."""
    _, model, _ = setup
    page = tmp_path / "grid.png"
    page.write_bytes(grid_of_marks())
    start = time.perf_counter()
    assert main(["predict", str(model), str(page), "--number"]) == 1  # a row saying why, exit 1
    assert "more than 64 digits" in " ".join(capsys.readouterr().out.replace("│", " ").split())
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("argv", [
    ["train", "--seed", "-1"],
    ["data", "show", "--seed", "-1"],
    ["evaluate", "m.npz", "--seed", "-1"],
    ["reproduce", "--seed", "-1"],
])
def test_negative_seeds_are_refused(argv, capsys):
    err = one_line_error(capsys, main(argv))
    assert "--seed" in err and ">= 0" in err.replace("greater than or equal to", ">=")


@pytest.mark.parametrize("epochs", [str(2**70), "100001"])
def test_absurd_epochs_are_refused_at_once(epochs, capsys):
    err = one_line_error(capsys, main(["train", "--epochs", epochs]))
    assert "--epochs" in err and "100000" in err


@pytest.mark.parametrize("recipes", ["", ",,,", " , "])
def test_reproduce_refuses_an_empty_recipe_list(recipes, capsys):
    start = time.perf_counter()
    err = one_line_error(capsys, main(["reproduce", "--recipes", recipes]))
    assert "no recipe named" in err and time.perf_counter() - start < 5


def test_reproduce_library_refuses_an_empty_list():
    from digitlab.errors import DigitlabError
    from digitlab.recipes import reproduce

    with pytest.raises(DigitlabError, match="no recipes given"):
        reproduce([])


def test_usage_errors_are_one_line(capsys):
    for argv, message in ((["data", "frobnicate"], "No such command"), (["evaluate"], "Missing argument"),
                          (["data", "show", "--n", "0"], "--n")):
        err = one_line_error(capsys, main(argv))
        assert message in err and "--help" in err


def test_the_console_script_prints_no_traceback(tmp_path):
    script = Path(sys.executable).with_name("digitlab")
    if not script.exists():
        pytest.skip(f"no console script beside {sys.executable}: install the package (pip install -e .)")
    (tmp_path / "file.txt").write_text("x")
    for argv in (["train", "--seed", "-1"], ["data", "show", "--out", "file.txt/out.png"]):
        run = subprocess.run([str(script), *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                             env={**os.environ, "DIGITLAB_THREADS": "1"})
        assert run.returncode == 2 and run.stderr.startswith("error:") and "Traceback" not in run.stderr, run.stderr
