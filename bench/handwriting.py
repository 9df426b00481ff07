"""Real-looking handwriting that is not MNIST: naive resize vs `digitlab.vision.to_mnist`, per kind.

The set is generated (`synth.make_handwriting_set`, beside this file: freehand pen strokes on paper,
chalk, phone photos with JPEG artefacts, large canvases, thin pens, transparent canvases, and
scikit-learn's 8x8 digits scaled up). "naive" is the tutorial shortcut: grey, plain resize to
28x28, inverted on light paper.

Usage: python bench/handwriting.py --model models/cnn.npz [--per-kind 200] [--seed 2024]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from common import header, table

from pipelines import naive
from synth import KINDS, make_handwriting_set

from digitlab import load_model
from digitlab.vision import to_mnist


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--per-kind", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2024)
    args = parser.parse_args()
    model = load_model(args.model)
    samples = make_handwriting_set(args.per_kind, seed=args.seed)
    labels = np.array([label for _, label, _ in samples])
    kinds = np.array([kind for _, _, kind in samples])
    start = time.perf_counter()
    good = np.stack([to_mnist(image) for image, _, _ in samples])
    per_image_ms = (time.perf_counter() - start) / len(samples) * 1e3
    naive_images = np.stack([naive(image) for image, _, _ in samples])
    right_good = model.predict(good) == labels
    right_naive = model.predict(naive_images) == labels
    rows = []
    for kind in (*KINDS, None):
        mask = np.ones(len(labels), bool) if kind is None else kinds == kind
        name = f"**all ({mask.sum():,})**" if kind is None else kind
        rows.append([name, f"{right_naive[mask].mean():.1%}", f"{right_good[mask].mean():.1%}"])
    recipe = model.metadata.get("recipe", "?")
    acc = model.metadata.get("metrics", {}).get("test_accuracy")
    print(header("Your own handwriting: naive resize vs to_mnist"))
    print(f"Model `{args.model}` (recipe `{recipe}`, {acc:.2%} on the MNIST test set); {args.per_kind} images "
          f"per kind, seed {args.seed}; to_mnist took {per_image_ms:.1f} ms per image.\n")
    print(table(["kind", "naive", "to_mnist"], rows))


if __name__ == "__main__":
    sys.exit(main())
