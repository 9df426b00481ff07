"""The NumPy engine against PyTorch CPU, in one run.

1. seconds per epoch of the Keras tutorial's dense network (784-1024-128-64-10, Adam, batch 64):
   digitlab vs a plain PyTorch loop of the same architecture, batch size and optimizer;
2. the sigmoid tutorial's per-sample training (784-200-10, batch of one): its published loop
   (NumPy, float64, one CSV record parsed per sample) vs the same algorithm in digitlab;
3. prediction throughput on the 10k test set and single-image latency, same network, both;
4. peak memory (RSS) of a process training one epoch, both.

Usage: python bench/engine.py [--epochs 2] [--sigmoid-images 10000]
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from common import Timer, check_quiet, header, median_latency_ms, mnist_dir, peak_rss_mb, peak_rss_of, table, throughput

from digitlab.data import load_mnist
from digitlab.recipes import get_recipe


# ------------------------------------------------------------------------------------ PyTorch
def torch_keras_dense():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 1024), nn.ReLU(), nn.Linear(1024, 128), nn.Tanh(),
                         nn.Dropout(0.05), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 10))


def torch_train_epochs(model, images, labels, epochs, batch_size=64, lr=1e-3):
    """A plain PyTorch loop: data pre-scaled to float32 tensors once, shuffled each epoch."""
    import torch

    x = torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255)
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = torch.nn.CrossEntropyLoss()
    times = []
    model.train()
    for _ in range(epochs):
        start = time.perf_counter()
        order = torch.randperm(len(x))
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - start)
    return times


def torch_accuracy(model, images, labels):
    import torch

    model.eval()
    with torch.inference_mode():
        out = model(torch.from_numpy(images.reshape(len(images), -1).astype(np.float32) / 255))
    return float((out.argmax(1).numpy() == labels).mean())


# ------------------------------------------------------------------------------------ tutorial
class TutorialNetwork:
    """The sigmoid tutorial's network as published ('Make Your Own Neural Network', T. Rashid),
    float64 column vectors; only ``numpy.asfarray`` (removed in NumPy 2) became ``np.asarray``."""

    def __init__(self, inputnodes, hiddennodes, outputnodes, learningrate, seed=0):
        rng = np.random.default_rng(seed)
        self.inodes, self.hnodes, self.onodes, self.lr = inputnodes, hiddennodes, outputnodes, learningrate
        self.wih = rng.normal(0.0, pow(self.inodes, -0.5), (self.hnodes, self.inodes))
        self.who = rng.normal(0.0, pow(self.hnodes, -0.5), (self.onodes, self.hnodes))
        try:
            from scipy.special import expit as activation
        except ImportError:  # same function, if scipy is absent
            def activation(x):
                return 1 / (1 + np.exp(-x))
        self.activation_function = activation

    def train(self, inputs_list, targets_list):
        inputs = np.array(inputs_list, ndmin=2).T
        targets = np.array(targets_list, ndmin=2).T
        hidden_outputs = self.activation_function(np.dot(self.wih, inputs))
        final_outputs = self.activation_function(np.dot(self.who, hidden_outputs))
        output_errors = targets - final_outputs
        hidden_errors = np.dot(self.who.T, output_errors)
        self.who += self.lr * np.dot((output_errors * final_outputs * (1.0 - final_outputs)), np.transpose(hidden_outputs))
        self.wih += self.lr * np.dot((hidden_errors * hidden_outputs * (1.0 - hidden_outputs)), np.transpose(inputs))


def tutorial_epoch(records: list[str]) -> float:
    """One epoch of the published training loop over CSV records; returns seconds."""
    n = TutorialNetwork(784, 200, 10, 0.1)
    start = time.perf_counter()
    for record in records:
        all_values = record.split(",")
        inputs = (np.asarray(all_values[1:], dtype=float) / 255.0 * 0.99) + 0.01
        targets = np.zeros(10) + 0.01
        targets[int(all_values[0])] = 0.99
        n.train(inputs, targets)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------------ peak memory
def child(which: str) -> None:
    """Train one epoch of the Keras dense network in this fresh process and print peak RSS (MB)."""
    train = load_mnist("train", mnist_dir())
    if which == "ours":
        get_recipe("tutorial-keras-dense").build(0).fit(train, epochs=1, batch_size=64)
    else:
        torch_train_epochs(torch_keras_dense(), train.images, train.labels, 1)
    print(peak_rss_mb())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help="epochs timed for the dense network")
    parser.add_argument("--sigmoid-images", type=int, default=10000, help="images the published per-sample loop is timed on (scaled to 60,000)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    check_quiet()
    import torch

    train, test = load_mnist("train", mnist_dir()), load_mnist("test", mnist_dir())
    out = [header("NumPy engine vs PyTorch CPU")]

    # 1. seconds per epoch, Keras dense network
    ours = get_recipe("tutorial-keras-dense").build(0)
    ours_times = [ours.fit(train, epochs=1, batch_size=64).epochs[0]["seconds"] for _ in range(args.epochs)]
    peer = torch_keras_dense()
    peer_times = torch_train_epochs(peer, train.images, train.labels, args.epochs)
    o, p = float(np.mean(ours_times)), float(np.mean(peer_times))
    out.append(f"**Keras dense network, seconds per epoch** (mean of {args.epochs}; Adam, batch 64)\n")
    out.append(table(["", "s/epoch", f"test acc after {args.epochs} epochs"], [
        ["digitlab", f"{o:.2f}", f"{ours.evaluate(test)['accuracy']:.2%}"],
        ["PyTorch CPU, plain loop", f"{p:.2f}", f"{torch_accuracy(peer, test.images, test.labels):.2%}"],
        ["ratio digitlab / PyTorch", f"**{o / p:.2f}**", ""],
    ]) + "\n")

    # 2. per-sample sigmoid network
    n = args.sigmoid_images
    records = [",".join(map(str, [label, *img.ravel().tolist()])) for img, label in zip(train.images[:n], train.labels[:n])]
    tut = tutorial_epoch(records) * 60000 / n
    sig = get_recipe("tutorial-sigmoid200").build(0)
    with Timer() as t:
        sig.fit(train, epochs=1, batch_size=1)
    mine = t.seconds
    out.append("**Sigmoid tutorial, per-sample SGD (batch of one)**, seconds per 60,000-image epoch "
               f"(the published loop timed on {n:,} images and scaled; digitlab timed on all 60,000)\n")
    out.append(table(["", "s/epoch", "speed-up", "test acc after 1 epoch"], [
        ["published loop (NumPy float64, parses a CSV record per sample)", f"{tut:.1f}", "1.0x", ""],
        ["digitlab `tutorial-sigmoid200`", f"{mine:.1f}", f"**{tut / mine:.1f}x**", f"{sig.evaluate(test)['accuracy']:.2%}"],
    ]) + "\n")

    # 3. inference
    peer.eval()
    x_all = torch.from_numpy(test.images.reshape(len(test.images), -1).astype(np.float32) / 255)
    x_one = x_all[:1]
    one = test.images[:1]

    def torch_all():
        with torch.inference_mode():
            peer(x_all)

    def torch_one():
        with torch.inference_mode():
            peer(x_one)

    ours_tp, peer_tp = throughput(lambda: ours.predict_proba(test.images), len(test)), throughput(torch_all, len(test))
    ours_lat, peer_lat = median_latency_ms(lambda: ours.predict_proba(one)), median_latency_ms(torch_one)
    out.append("**Prediction, Keras dense network** (10,000 test images in one call; one image, median of 1,000 calls)\n")
    out.append(table(["", "images/s", "single image (ms)"], [
        ["digitlab (from uint8 images, scaling included)", f"{ours_tp:,.0f}", f"{ours_lat:.3f}"],
        ["PyTorch CPU (pre-scaled float tensors)", f"{peer_tp:,.0f}", f"{peer_lat:.3f}"],
        ["ratio digitlab / PyTorch", f"**{ours_tp / peer_tp:.2f}**", f"**{ours_lat / peer_lat:.2f}**"],
    ]) + "\n")

    # 4. peak memory
    mem_ours, mem_peer = peak_rss_of(["--child", "ours"]), peak_rss_of(["--child", "torch"])
    out.append("**Peak memory (RSS) of a process training one epoch of the Keras dense network**\n")
    out.append(table(["", "MB"], [["digitlab", f"{mem_ours:.0f}"], ["PyTorch CPU", f"{mem_peer:.0f}"]]) + "\n")
    print("\n".join(out))


if __name__ == "__main__":
    sys.exit(main())
