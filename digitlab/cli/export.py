"""``digitlab export``: a thin shell over `digitlab.export`."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import List

import typer

from .. import export as ex
from ..modelfile import load_model
from ._ui import console, writable


def export(
    models: List[Path] = typer.Argument(..., help="Model files (.npz); several are exported as one ensemble (their mean probability)."),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write."),
) -> None:
    """Export a model, or an ensemble of several, to an ONNX file.

    The graph takes uint8 images N x H x W ('image') and gives 'probabilities' (N x 10) and 'digit' (N), with the model's own scaling inside. With onnxruntime installed, the file is then run against digitlab on a few generated images.
    """
    writable(onnx)
    loaded = [load_model(p) for p in models]
    path = ex.to_onnx(loaded, onnx)
    what = f"an ensemble of {len(loaded)} models" if len(loaded) > 1 else models[0].name
    console.print(f"wrote {path} ({what}, {path.stat().st_size / 1e6:.1f} MB, ONNX opset {ex.OPSET})")
    if importlib.util.find_spec("onnxruntime") is None:
        console.print("onnxruntime is not installed: the export was not run (pip install 'digitlab[onnx]')")
        return
    check = ex.check_onnx(path, loaded)
    digits = "the same digits" if not check.digits_differ else f"different digits for {check.digits_differ}"
    console.print(f"onnxruntime on {check.images} generated images: {digits}, "
                  f"largest probability difference {check.max_difference:.1e}")
