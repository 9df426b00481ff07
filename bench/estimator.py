"""`DigitClassifier` (digitlab.sklearn) against scikit-learn's `MLPClassifier`, in one run.

3-fold cross-validation (`cross_validate`, what `cross_val_score` runs, which also gives the times)
on the same folds (stratified, shuffled with seed 0) for every estimator, on two data sets:

- the 8x8 digits (`sklearn.datasets.load_digits`, 1,797 images, pixels 0..16);
- MNIST, the 60,000 training images (or the first ``--limit``), pixels 0..255.

Rows: ``MLPClassifier(hidden_layer_sizes=(100,), max_iter=...)``, 200 iterations (scikit-learn's
default) on the 8x8 digits and 20 on MNIST (as ANCHORS.md measured it) unless ``--mlp-iter`` says,
its other settings the defaults (adam, batch 200, float64), on pixels scaled to 0..1 as its
examples do;
``DigitClassifier("mlp")``, the recipe's 784-512-512-10 network and its 15 epochs; and a
convolutional recipe, ``digits-cnn`` on the 8x8 digits and ``cnn-fast`` on MNIST, with their
epochs. DigitClassifier takes the raw pixels (``pixel_max`` 16 or 255) and scales them itself.

Reported: accuracy, mean ± standard deviation over the folds; training seconds per fold (mean);
the wall time of the whole cross-validation. Each (data set, estimator) runs in a fresh process
of its own, so the BLAS threads of one never spin beside the next.

Usage: python bench/estimator.py [--limit N] [--mlp-iter N] [--datasets digits mnist]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

from common import check_quiet, header, in_fresh_process, mnist_dir, table

ROWS = {  # data set -> estimators, by the names the child process builds them from
    "digits": ["MLPClassifier", "mlp", "digits-cnn"],
    "mnist": ["MLPClassifier", "mlp", "cnn-fast"],
}
MLP_ITER = {"digits": 200, "mnist": 20}  # MLPClassifier's max_iter by default


def dataset(name: str, limit: int | None) -> tuple[np.ndarray, np.ndarray, float]:
    """X (N x features, raw pixels), y, and the value of full ink."""
    if name == "digits":
        from sklearn.datasets import load_digits

        X, y = load_digits(return_X_y=True)
        return X[:limit], y[:limit], 16.0
    from digitlab.data import load_mnist

    train = load_mnist("train", mnist_dir())
    images, labels = train.images[:limit], train.labels[:limit]
    return images.reshape(len(images), -1), labels, 255.0


def estimator(name: str, pixel_max: float, mlp_iter: int, seed: int):
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    from digitlab.sklearn import DigitClassifier

    if name == "MLPClassifier":
        scale = FunctionTransformer(lambda X: np.asarray(X, dtype=np.float64) / pixel_max)
        return make_pipeline(scale, MLPClassifier(hidden_layer_sizes=(100,), max_iter=mlp_iter, random_state=seed))
    return DigitClassifier(name, pixel_max=pixel_max, seed=seed)


def run_child(args) -> None:
    """Cross-validate one estimator on one data set in this fresh process; print the figures as
    JSON: {"scores": [...], "fit": [...], "wall": s}."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.model_selection import StratifiedKFold, cross_validate

    X, y, pixel_max = dataset(args.datasets[0], args.limit)
    est = estimator(args.child, pixel_max, args.mlp_iter, args.seed)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # max_iter is the setting compared, not a mistake
        start = time.perf_counter()
        result = cross_validate(est, X, y, cv=folds, scoring="accuracy")
        wall = time.perf_counter() - start
    print(json.dumps({"scores": result["test_score"].tolist(), "fit": result["fit_time"].tolist(), "wall": wall}))


def label(name: str, mlp_iter: int) -> str:
    if name == "MLPClassifier":
        return f"scikit-learn `MLPClassifier(hidden_layer_sizes=(100,), max_iter={mlp_iter})`"
    from digitlab.recipes import get_recipe

    recipe = get_recipe(name)
    return f"digitlab `DigitClassifier(\"{name}\")`, {recipe.epochs} epochs, batch {recipe.batch_size}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of each data set")
    parser.add_argument("--mlp-iter", type=int, default=None,
                        help="MLPClassifier's max_iter (epochs) on both data sets (default: 200 on the 8x8 digits, 20 on MNIST)")
    parser.add_argument("--datasets", nargs="+", choices=list(ROWS), default=list(ROWS))
    parser.add_argument("--seed", type=int, default=0, help="the estimators' seed (the folds' is 0)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return run_child(args)
    check_quiet()
    import sklearn

    out = [header("DigitClassifier vs scikit-learn's MLPClassifier, 3-fold cross-validation")]
    out.append(f"scikit-learn {sklearn.__version__}. Same folds for every estimator (StratifiedKFold(3, "
               "shuffle=True, random_state=0)); MLPClassifier on pixels / 255 (or / 16), float64, its other "
               "settings the defaults (adam, batch 200); DigitClassifier on the raw pixels with pixel_max, "
               "each recipe's optimizer, schedule, epochs and batch size. Each row in a fresh process.\n")
    for name in args.datasets:
        X, _, _ = dataset(name, args.limit)
        mlp_iter = args.mlp_iter or MLP_ITER[name]
        title = "8x8 digits" if name == "digits" else "MNIST training images"
        out.append(f"**{title}**: {len(X):,} images of {X.shape[1]} pixels, folds of about {len(X) * 2 // 3:,} "
                   f"to train and {len(X) // 3:,} to test\n")
        rows = []
        for est in ROWS[name]:
            child = ["--datasets", name, "--mlp-iter", str(mlp_iter), "--seed", str(args.seed), "--child", est]
            if args.limit:
                child += ["--limit", str(args.limit)]
            r = json.loads(in_fresh_process(child))
            scores = np.array(r["scores"])
            rows.append([label(est, mlp_iter), f"{scores.mean():.2%} ± {scores.std():.2%}",
                         f"{np.mean(r['fit']):.1f}", f"{r['wall']:.1f}"])
        out.append(table(["estimator", "accuracy (mean ± sd of 3 folds)", "training s per fold",
                          "cross-validation s"], rows) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
