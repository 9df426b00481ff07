"""onnxruntime against digitlab's engine on the same models, in one run.

(Not named onnx.py: the benchmarks' folder is on sys.path, where that name would hide the onnx package.)

Each model file given is exported with `digitlab.export.to_onnx`; then, on the 10,000 MNIST test
images, both engines are timed on the same uint8 images (the scaling is inside both):

1. throughput, images/s (best of 5 passes over the set): digitlab's `predict_proba` in its default
   batches; onnxruntime (CPU provider, ``--ort-threads`` intra-op threads) one ``run`` per batch
   of each ``--batches`` size, the fastest reported with its size;
2. single-image latency: the median of ``--calls`` calls on one image;
3. agreement: the largest |p_onnxruntime - p_digitlab| over every probability of the set, and the
   images whose digit differs.

Each engine is timed alone in a fresh process of its own, so onnxruntime's spinning thread pool and
digitlab's threads never compete; which goes first alternates from model to model.

Usage: python bench/onnx_runtime.py MODEL.npz [MODEL.npz ...] [--batches 2000 10000] [--calls 1000]
       e.g. the files of the recipes mlp, cnn-fast and cnn (digitlab train --recipe R --out R.npz)
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from common import check_quiet, header, in_fresh_process, median_latency_ms, mnist_dir, table, throughput

from digitlab import load_model
from digitlab.data import load_mnist
from digitlab.export import to_onnx


def ort_session(path: str, threads: int):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def ort_proba(session, images: np.ndarray, batch: int) -> np.ndarray:
    return np.concatenate([session.run(["probabilities"], {"image": images[i : i + batch]})[0]
                           for i in range(0, len(images), batch)])


def test_images(limit: int | None) -> np.ndarray:
    return load_mnist("test", mnist_dir()).images[:limit]


def run_child(args) -> None:
    """Time one engine in this fresh process; print [images/s, batch (0: digitlab's own), single-image ms]."""
    images = test_images(args.limit)
    one = images[:1]
    if args.child == "digitlab":
        model = load_model(args.models[0])
        best, batch = throughput(lambda: model.predict_proba(images), len(images)), 0
        latency = median_latency_ms(lambda: model.predict_proba(one), repeats=args.calls)
    else:
        session = ort_session(args.onnx, args.ort_threads)
        speeds = {b: throughput(lambda b=b: ort_proba(session, images, b), len(images)) for b in args.batches}
        batch = max(speeds, key=speeds.get)
        best = speeds[batch]
        latency = median_latency_ms(lambda: session.run(["probabilities"], {"image": one}), repeats=args.calls)
    print(json.dumps([best, batch, latency]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model files (.npz)")
    parser.add_argument("--batches", type=int, nargs="+", default=[2000, 10000],
                        help="onnxruntime batch sizes tried; the fastest is reported")
    parser.add_argument("--calls", type=int, default=1000, help="single-image calls whose median is the latency")
    parser.add_argument("--ort-threads", type=int, default=2, help="onnxruntime's intra_op_num_threads")
    parser.add_argument("--limit", type=int, default=None, help="only the first N test images (smoke tests)")
    parser.add_argument("--child", choices=["digitlab", "onnxruntime"], help=argparse.SUPPRESS)
    parser.add_argument("--onnx", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args)
    check_quiet()
    import onnxruntime

    from digitlab.nn.threads import THREADS

    images = test_images(args.limit)
    out = [header("onnxruntime vs digitlab's engine on the same exported models")]
    out.append(f"onnxruntime {onnxruntime.__version__}, CPU provider, intra_op_num_threads={args.ort_threads}, one "
               f"`run` per batch (fastest of {', '.join(f'{b:,}' for b in args.batches)} images); digitlab "
               f"`predict_proba` in its default batches, {THREADS} engine threads. {len(images):,} MNIST test "
               f"images (uint8, scaling inside both); images/s best of 5 passes; one image: median of "
               f"{args.calls:,} calls. Each engine timed alone in a fresh process.\n")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(args.models):
            model = load_model(path)
            onnx_path = to_onnx(model, Path(tmp) / f"{path.stem}.onnx")
            common = ["--limit", str(len(images)), "--calls", str(args.calls), "--ort-threads", str(args.ort_threads),
                      "--batches", *map(str, args.batches), "--onnx", str(onnx_path)]
            order = ["digitlab", "onnxruntime"] if i % 2 == 0 else ["onnxruntime", "digitlab"]
            results = {which: json.loads(in_fresh_process([str(path), *common, "--child", which])) for which in order}
            (o_tp, _, o_lat), (r_tp, r_batch, r_lat) = results["digitlab"], results["onnxruntime"]

            ours = model.predict_proba(images)
            theirs = ort_proba(ort_session(str(onnx_path), args.ort_threads), images, max(args.batches))
            diff = float(np.abs(theirs - ours).max())
            differ = int(np.count_nonzero(theirs.argmax(axis=1) != ours.argmax(axis=1)))
            recipe = model.metadata.get("recipe") or "?"
            rows.append([f"`{path.name}` ({recipe}, {model.num_params:,} parameters)",
                         f"{o_tp:,.0f}", f"{r_tp:,.0f} ({r_batch:,})", f"**{o_tp / r_tp:.2f}**",
                         f"{o_lat:.3f}", f"{r_lat:.3f}", f"**{o_lat / r_lat:.2f}**", f"{diff:.1e}", differ])
    out.append(table(["model", "images/s digitlab", "images/s onnxruntime (batch)", "ratio digitlab / onnxruntime",
                      "one image (ms) digitlab", "one image (ms) onnxruntime", "ratio digitlab / onnxruntime",
                      "max \\|Δp\\|", "digits differ"], rows) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
