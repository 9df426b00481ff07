"""Ensembles of trained models: what an ensemble of k of them scores on the MNIST test set, on average.

One ensemble is one sample: which side of a near-tie its few hard digits fall on moves it by a
few hundredths of a point. So this draws many: each model's test probabilities are computed
once, then for each size k, ``--draws`` random sets of k distinct models (every set when there
are fewer) are scored by their mean probability, `digitlab evaluate`'s rule (`mean_proba`).
It prints each model alone, each size's mean, spread and share of draws at or above ``--goal``,
and all the models together. Models given with ``--with`` are in every ensemble, beside the k drawn:
what a stronger network adds to the others, or they to it.

Usage: python bench/ensembles.py runs/*.npz [--with m5.npz] [--sizes 3 5 8 12] [--draws 200] [--seed 0] [--goal 0.997]
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
from pathlib import Path

import numpy as np

from common import header, mnist_dir, table

from digitlab import load_model
from digitlab.data import load_mnist
from digitlab.evaluate import mean_proba


def draws_of(n: int, k: int, draws: int, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """``draws`` random k-sets of range(n), or every k-set when there are no more than that."""
    if math.comb(n, k) <= draws:
        return list(itertools.combinations(range(n), k))
    return [tuple(rng.choice(n, k, replace=False)) for _ in range(draws)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", type=Path, help="model files (.npz)")
    parser.add_argument("--with", dest="fixed", type=Path, action="append", default=[], metavar="MODEL",
                        help="a model file in every ensemble besides the k drawn (repeat for more)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[3, 5, 8, 12], help="ensemble sizes k")
    parser.add_argument("--draws", type=int, default=200, help="random ensembles per size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the draws")
    parser.add_argument("--goal", type=float, default=0.997, help="accuracy whose share of draws is counted")
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("give at least two model files")
    if not all(1 <= k <= len(args.models) for k in args.sizes):
        parser.error(f"every size must be between 1 and the {len(args.models)} models given")
    test = load_mnist("test", data_dir=mnist_dir())
    paths = args.fixed + args.models  # the fixed models first: indices 0 .. len(fixed) - 1
    models = [load_model(path) for path in paths]
    probs = np.stack([model.predict_proba(test.images) for model in models])
    right = probs.argmax(2) == test.labels  # models x images
    alone = right.mean(1)
    fixed = tuple(range(len(args.fixed)))
    rng = np.random.default_rng(args.seed)

    def accuracy(members) -> float:
        return float((mean_proba(probs[list(members)]).argmax(1) == test.labels).mean())

    print(header("Ensembles: random sets of k models"))
    singles = alone[len(fixed):]
    print(f"{len(args.models)} models to draw from, alone {singles.min():.2%} to {singles.max():.2%} "
          f"(mean {singles.mean():.2%}); {int((~right).all(0).sum())} test digits are wrong in every model.")
    if fixed:
        print(f"In every ensemble besides the k drawn: {', '.join(p.name for p in args.fixed)}.")
    rows = []
    for k in args.sizes:
        drawn = draws_of(len(args.models), k, args.draws, rng)
        accs = np.array([accuracy(fixed + tuple(len(fixed) + i for i in s)) for s in drawn])
        rows.append([k, len(accs), f"{accs.mean():.3%}", f"{np.median(accs):.2%}",
                     f"{accs.min():.2%} to {accs.max():.2%}", f"{(accs >= args.goal - 1e-9).mean():.0%}"])
    rows.append([f"all {len(paths)}", 1, f"{accuracy(range(len(paths))):.3%}", "", "", ""])
    print("\n" + table(["k drawn", "ensembles", "mean accuracy", "median", "range", f"share >= {args.goal:.2%}"], rows))
    print("\n" + table(["model", "recipe", "test accuracy"],
                       [[path.name + (" (in every ensemble)" if i in fixed else ""),
                         model.metadata.get("recipe", "?"), f"{a:.2%}"]
                        for i, (path, model, a) in enumerate(zip(paths, models, alone))]))


if __name__ == "__main__":
    sys.exit(main())
