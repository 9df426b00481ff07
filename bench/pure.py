"""The pure-Python engine against the first tutorial's loop, in one run.

1. the tutorial as published: its dense loop (`pure_tutorial.py`, beside this file: every weight of the
   10 x 784 matrix visited for every image) trained on the first 1,000 images for 5 epochs, its
   test accuracy and its seconds per image, scaled to a 60,000-image epoch (the time per image
   does not depend on the image, and a real 60,000-image epoch would take minutes);
2. the tutorial's algorithm in digitlab's engine (recipe ``tutorial-pure-linear``: the same
   arithmetic on the non-zero pixels only), then one real epoch of it over all 60,000 images;
3. recipe ``pure``: all 60,000 images, seconds per epoch and test accuracy.

Usage: python bench/pure.py [--epochs 3] [--tutorial-epochs 5]
"""

from __future__ import annotations

import argparse
import time

from common import check_quiet, header, mnist_dir, table
from pure_tutorial import tutorial_predict, tutorial_train, tutorial_weights

from digitlab.data import load_mnist
from digitlab.pure import PureNetwork, sparse_images
from digitlab.recipes import train_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=None, help="epochs of the pure recipe (default: the recipe's)")
    parser.add_argument("--tutorial-epochs", type=int, default=5, help="epochs of the tutorial's own loop")
    args = parser.parse_args()
    check_quiet()
    data = mnist_dir()
    train, test = load_mnist("train", data), load_mnist("test", data)
    train_pixels = train.images.reshape(len(train), -1).tolist()
    test_pixels = test.images.reshape(len(test), -1).tolist()
    train_labels, test_labels = train.labels.tolist(), test.labels.tolist()
    rows = []

    # 1. The tutorial's loop, as published.
    weights = tutorial_weights()
    start = time.perf_counter()
    tutorial_train(weights, train_pixels[:1000], train_labels[:1000], epochs=args.tutorial_epochs)
    seconds = time.perf_counter() - start
    per_epoch = seconds / (1000 * args.tutorial_epochs) * 60_000
    accuracy = sum(tutorial_predict(weights, x) == y for x, y in zip(test_pixels, test_labels)) / len(test_labels)
    rows.append(["tutorial's loop (dense lists)", f"1,000 x {args.tutorial_epochs}", f"{seconds / args.tutorial_epochs:.2f}",
                 f"{per_epoch:.0f} (scaled from {1000 * args.tutorial_epochs:,} images)", f"{accuracy:.2%}"])

    # 2. The same algorithm in digitlab's engine: the recipe, then a real epoch over all 60,000.
    result = train_recipe("tutorial-pure-linear", data=(train[:1000], test))
    epoch_seconds = sum(e["seconds"] for e in result.model.history.epochs) / len(result.model.history)
    rows.append(["`tutorial-pure-linear` (digitlab.pure, delta rule)", "1,000 x 5", f"{epoch_seconds:.2f}",
                 f"{epoch_seconds * 60:.1f} (scaled)", f"{result.test['accuracy']:.2%}"])
    start = time.perf_counter()
    images = sparse_images(train_pixels)  # raw pixels, as the tutorial
    convert = time.perf_counter() - start
    net = PureNetwork.tutorial()
    start = time.perf_counter()
    net.train_epoch(images, train_labels, lr=1e-7, rule="delta")
    full = time.perf_counter() - start
    accuracy = net.accuracy(sparse_images(test_pixels), test_labels)
    rows.append(["same, one epoch on all 60,000 images", "60,000 x 1", f"{full:.1f}", f"{full:.1f} (measured)",
                 f"{accuracy:.2%}"])

    # 3. The pure recipe on all 60,000 images.
    result = train_recipe("pure", epochs=args.epochs, data=(train, test))
    epochs = result.model.history.epochs
    per_epoch = [e["seconds"] for e in epochs]
    rows.append([f"`pure` (784-32-10, softmax), {len(epochs)} epochs", f"60,000 x {len(epochs)}",
                 " / ".join(f"{s:.1f}" for s in per_epoch), f"{sum(per_epoch) / len(per_epoch):.1f} (measured)",
                 f"{result.test['accuracy']:.2%}"])

    print(header("Pure Python: the first tutorial's loop vs digitlab.pure"))
    print(table(["engine", "images x epochs", "s / epoch", "s / 60,000-image epoch", "test accuracy"], rows))
    print(f"\nConverting 60,000 images to sparse lists: {convert:.1f} s (once, before training). "
          f"`pure` trained in {result.seconds:.1f} s in all; test accuracy measured by the NumPy model it converts to.")


if __name__ == "__main__":
    main()
