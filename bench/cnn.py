"""Convolutional networks against PyTorch CPU, in one run, same architecture, batch size, optimizer
and learning-rate schedule:

1. seconds per epoch and time to 99.0% test accuracy (the clock stops while the test set is
   evaluated, every 1/8 epoch) of the `cnn-fast` recipe, for several seeds, and the ratios'
   mean and median over them;
2. prediction throughput on the 10k test set and single-image latency;
3. peak memory (RSS) of a process training one epoch.

Each engine trains each seed in a fresh process of its own, so NumPy's BLAS threads and
PyTorch's never compete inside one process.

Usage: python bench/cnn.py [--recipe cnn-fast] [--seeds 0 1 2] [--target 0.99]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from common import (check_quiet, header, in_fresh_process, median_latency_ms, mnist_dir, peak_rss_mb, peak_rss_of,
                    table, throughput)

from digitlab.data import Augment, load_mnist
from digitlab.nn import BatchNorm, Conv2D, Dense, Dropout, Flatten, ReLU
from digitlab.nn.callbacks import Callback
from digitlab.recipes import get_recipe


def torch_model(recipe_name: str, seed: int):
    """The recipe's layers, translated one by one into PyTorch modules (NCHW; 'same' padding as
    TensorFlow defines it, which for stride 2 pads one more pixel after than before)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    recipe = get_recipe(recipe_name)
    shape = (1, *recipe.input_shape)  # C, H, W
    modules = []
    for layer in recipe.layers():
        if isinstance(layer, Conv2D):
            k, s = layer.kernel_size, layer.stride
            if layer.padding == "same":
                pads = []
                for size in shape[1:]:
                    out = -(-size // s)
                    total = max((out - 1) * s + k - size, 0)
                    pads.append((total // 2, total - total // 2))
                modules.append(nn.ZeroPad2d((pads[1][0], pads[1][1], pads[0][0], pads[0][1])))
                h, w = (-(-shape[1] // s), -(-shape[2] // s))
            else:
                h, w = (shape[1] - k) // s + 1, (shape[2] - k) // s + 1
            modules.append(nn.Conv2d(shape[0], layer.filters, k, s))
            shape = (layer.filters, h, w)
        elif isinstance(layer, BatchNorm):
            bn = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
            modules.append(bn(shape[0], eps=layer.eps, momentum=1 - layer.momentum))
        elif isinstance(layer, ReLU):
            modules.append(nn.ReLU())
        elif isinstance(layer, Flatten):
            modules.append(nn.Flatten())
            shape = (int(np.prod(shape)),)
        elif isinstance(layer, Dense):
            modules.append(nn.Linear(shape[0], layer.units))
            shape = (layer.units,)
        elif isinstance(layer, Dropout):
            modules.append(nn.Dropout(layer.rate))
    return nn.Sequential(*modules)


def torch_tensor(images):
    import torch

    return torch.from_numpy(images[:, None].astype(np.float32) / 255)


def torch_accuracy(model, x, labels) -> float:
    import torch

    model.eval()
    with torch.inference_mode():
        pred = torch.cat([model(x[i : i + 2000]) for i in range(0, len(x), 2000)]).argmax(1).numpy()
    model.train()
    return float((pred == labels).mean())


def torch_run(recipe_name, seed, train, test, target, checks_per_epoch=8, epochs=None):
    """Train as the recipe says; return (seconds per epoch, training seconds to reach target or None, final acc)."""
    import torch

    recipe = get_recipe(recipe_name)
    epochs = epochs or recipe.epochs
    model = torch_model(recipe_name, seed)
    y, xt = torch.from_numpy(train.labels), torch_tensor(test.images)
    augment = Augment(**recipe.augment) if recipe.augment else None
    rng = np.random.default_rng(seed)
    bs, lr = recipe.batch_size, recipe.optimizer["lr"]
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(train)
    steps = -(-n // bs)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps, pct_start=0.25,
                                                div_factor=25, final_div_factor=1e4, cycle_momentum=False)
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    clock, reached, every = 0.0, None, max(1, steps // checks_per_epoch)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=gen)
        start = time.perf_counter()
        for b in range(steps):
            idx = order[b * bs : (b + 1) * bs]
            batch = train.images[idx.numpy()]  # uint8, converted per batch as digitlab does
            if augment is not None:
                batch = augment(batch, rng)
            opt.zero_grad()
            loss_fn(model(torch_tensor(batch)), y[idx]).backward()
            opt.step()
            sched.step()
            if reached is None and ((b + 1) % every == 0 or b + 1 == steps):
                clock += time.perf_counter() - start
                if torch_accuracy(model, xt, test.labels) >= target:
                    reached = clock
                start = time.perf_counter()
        clock += time.perf_counter() - start
    return clock / epochs, reached, torch_accuracy(model, xt, test.labels), model


class TimeToTarget(Callback):
    """Stops the clock every 1/8 epoch to evaluate on the test set; records when target is reached."""

    def __init__(self, test, target, checks_per_epoch=8):
        self.test, self.target, self.checks = test, target, checks_per_epoch
        self.clock, self.reached = 0.0, None

    def on_epoch_begin(self, epoch, logs):
        self.every = max(1, logs["batches"] // self.checks)
        self.start = time.perf_counter()

    def on_batch_end(self, batch, logs):
        if self.reached is None and (batch % self.every == 0 or batch == logs["batches"]):
            self.clock += time.perf_counter() - self.start
            if self.model.evaluate(self.test)["accuracy"] >= self.target:
                self.reached = self.clock
            self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs):
        self.clock += time.perf_counter() - self.start


def ours_run(recipe_name, seed, train, test, target):
    recipe = get_recipe(recipe_name)
    model = recipe.build(seed)
    probe = TimeToTarget(test, target)
    augment = Augment(**recipe.augment) if recipe.augment else None
    model.fit(train, epochs=recipe.epochs, batch_size=recipe.batch_size, callbacks=[probe], augment=augment)
    return probe.clock / recipe.epochs, probe.reached, model.evaluate(test)["accuracy"], model


def run_child(which: str, recipe_name: str, seed: int, target: float) -> None:
    """Train one engine for one seed in this fresh process, then time its prediction, and print
    the figures as JSON: [s/epoch, s to target, final accuracy, images/s, single-image ms]."""
    train, test = load_mnist("train", mnist_dir()), load_mnist("test", mnist_dir())
    if which == "train-ours":
        epoch, reached, acc, model = ours_run(recipe_name, seed, train, test, target)
        predict_all = predict_one = model.predict_proba
        x_all, x_one = test.images, test.images[:1]
    else:
        import torch

        epoch, reached, acc, model = torch_run(recipe_name, seed, train, test, target)
        model.eval()
        x_all, x_one = torch_tensor(test.images), torch_tensor(test.images[:1])

        def predict_all(x):
            with torch.inference_mode():
                for i in range(0, len(x), 2000):
                    model(x[i : i + 2000])

        def predict_one(x):
            with torch.inference_mode():
                model(x)

    tp = throughput(lambda: predict_all(x_all), len(test))
    lat = median_latency_ms(lambda: predict_one(x_one))
    print(json.dumps([epoch, reached, acc, tp, lat]))


def child(which: str, recipe_name: str) -> None:
    """Train one epoch in this fresh process and print its peak RSS (MB)."""
    train, test = load_mnist("train", mnist_dir()), load_mnist("test", mnist_dir())
    if which == "ours":
        get_recipe(recipe_name).build(0).fit(train, epochs=1, batch_size=get_recipe(recipe_name).batch_size)
    else:
        torch_run(recipe_name, 0, train, test, target=2.0, epochs=1)
    print(peak_rss_mb())


def fmt(seconds):
    return "not reached" if seconds is None else f"{seconds:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", default="cnn-fast")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child in ("train-ours", "train-torch"):
        return run_child(args.child, args.recipe, args.seeds[0], args.target)
    if args.child:
        return child(args.child, args.recipe)
    check_quiet()
    recipe = get_recipe(args.recipe)
    out = [header(f"`{args.recipe}` vs the same network in PyTorch CPU")]
    out.append(f"{recipe.summary}. Batch {recipe.batch_size}, Adam, one-cycle to lr {recipe.optimizer['lr']}, "
               f"{recipe.epochs} epochs, both engines. Time to {args.target:.1%}: training seconds until the test "
               "accuracy, checked every 1/8 epoch with the clock stopped, first reaches it.\n")
    rows, ratios = [], []
    for i, seed in enumerate(args.seeds):
        child_args = ["--recipe", args.recipe, "--seeds", str(seed), "--target", str(args.target)]
        # Each engine alone in its process: OpenBLAS's and PyTorch's thread pools never share one.
        # Which engine goes first alternates from seed to seed, so a drift in the machine's speed
        # during the run does not always favour the same one.
        order = ["train-ours", "train-torch"] if i % 2 == 0 else ["train-torch", "train-ours"]
        results = {which: json.loads(in_fresh_process([*child_args, "--child", which])) for which in order}
        o_epoch, o_reach, o_acc, o_tp, o_lat = results["train-ours"]
        p_epoch, p_reach, p_acc, p_tp, p_lat = results["train-torch"]
        ratios.append(o_epoch / p_epoch)
        rows.append([seed, f"{o_epoch:.2f}", f"{p_epoch:.2f}", f"{ratios[-1]:.2f}",
                     fmt(o_reach), fmt(p_reach), f"{o_acc:.2%}", f"{p_acc:.2%}"])
    out.append(table(["seed", "s/epoch digitlab", "s/epoch PyTorch", "ratio", f"s to {args.target:.1%} digitlab",
                      f"s to {args.target:.1%} PyTorch", "final acc digitlab", "final acc PyTorch"], rows) + "\n")
    if len(ratios) > 1:
        out.append(f"s/epoch ratio over the {len(ratios)} seeds: mean **{np.mean(ratios):.2f}**, median "
                   f"{np.median(ratios):.2f}, {min(ratios):.2f} to {max(ratios):.2f}.\n")

    out.append(f"**Prediction** by the models of seed {args.seeds[-1]} (10,000 test images, PyTorch in batches of "
               "2,000, digitlab in its default batches; one image, median of 1,000 calls)\n")
    out.append(table(["", "images/s", "single image (ms)"], [
        ["digitlab (from uint8 images)", f"{o_tp:,.0f}", f"{o_lat:.3f}"],
        ["PyTorch CPU (pre-scaled tensors)", f"{p_tp:,.0f}", f"{p_lat:.3f}"],
        ["ratio digitlab / PyTorch", f"**{o_tp / p_tp:.2f}**", f"**{o_lat / p_lat:.2f}**"],
    ]) + "\n")
    mem_o = peak_rss_of(["--recipe", args.recipe, "--child", "ours"])
    mem_p = peak_rss_of(["--recipe", args.recipe, "--child", "torch"])
    out.append("**Peak memory (RSS) of a process training one epoch**\n")
    out.append(table(["", "MB"], [["digitlab", f"{mem_o:.0f}"], ["PyTorch CPU", f"{mem_p:.0f}"]]) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
