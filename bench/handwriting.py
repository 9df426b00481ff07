"""Real-looking handwriting that is not MNIST: the naive resize, an OpenCV reference pipeline and
`digitlab.vision.to_mnist`, per kind, accuracy and milliseconds per image, in one run.

The set is generated (`synth.make_handwriting_set`, beside this file: freehand pen strokes on
paper, chalk, phone photos with JPEG artefacts, large canvases, thin pens, transparent canvases,
scikit-learn's 8x8 digits scaled up, frame-filling scans, canvases with stray marks, ballpoint under
a shadow, digits in a form's box). The peers are in `pipelines.py`. The images are decoded PIL
images: the times are the pipelines' own, from a decoded picture to 28x28. Then every one of
scikit-learn's 1,797 8x8 digits through `to_mnist` and the reference; written numbers of 2 to 5
digits, apart, touching, in a comb of boxes and on a line, upright and askew
(`synth.render_number`), through `segment` and the reference extended to numbers (`--numbers N`);
MNIST's own 10,000 test digits through both (`--mnist-dir DIR`: a round trip, which should cost
nothing); and `digitlab predict` end to end on a folder of mixed image files (`--files N`).

Usage: python bench/handwriting.py --model models/cnn-fast-aug.npz [--per-kind 200] [--seed 2024]
       [--numbers 200] [--mnist-dir DIR] [--files 1000]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import REPO, check_quiet, header, table
from PIL import Image
from pipelines import naive, opencv_reference, opencv_reference_number
from synth import KINDS, make_handwriting_set, render_number

from digitlab import load_model
from digitlab.data import load_mnist, load_sklearn_digits
from digitlab.vision import read, segment, to_mnist

PIPELINES = {"naive": naive, "OpenCV reference": opencv_reference, "to_mnist": to_mnist}
REPEATS = 3  # each time is the best of this many passes, the pipelines taking turns: the machine is noisy


def best_times(pipelines: dict, groups: dict) -> dict:
    """{pipeline name: {group: ms per item}}: each pipeline over each group of inputs, the
    pipelines alternating pass by pass, the best of `REPEATS` passes."""
    times = {name: {group: np.inf for group in groups} for name in pipelines}
    for _ in range(REPEATS):
        for group, items in groups.items():
            for name, pipeline in pipelines.items():
                times[name][group] = min(times[name][group], _ms_per_item(pipeline, items))
    return times


def _ms_per_item(pipeline, items) -> float:
    start = time.perf_counter()
    for item in items:
        try:
            pipeline(item)
        except Exception:  # noqa: BLE001 - timed all the same
            pass
    return (time.perf_counter() - start) / len(items) * 1e3


def score(model, pipeline, images, labels):
    """(which images the model reads right after the pipeline, indices the pipeline refused): a
    refusal (blank, error) is a miss."""
    out, failed = [], []
    for i, image in enumerate(images):
        try:
            out.append(pipeline(image))
        except Exception:  # noqa: BLE001 - a pipeline that gives up on an image gets it wrong
            out.append(np.zeros((28, 28), np.uint8))
            failed.append(i)
    right = model.predict(np.stack(out)) == labels
    right[failed] = False
    return right, failed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--per-kind", type=int, default=200)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--numbers", type=int, default=200,
                        help="written numbers apart and touching for segment and its peer, and half as many in boxes, upright and askew, and on a line (0: skip)")
    parser.add_argument("--mnist-dir", help="a folder with MNIST's files: its test digits through to_mnist and the reference")
    parser.add_argument("--files", type=int, default=1000, help="images for the end-to-end digitlab predict run (0: skip)")
    args = parser.parse_args()
    check_quiet()
    model = load_model(args.model)
    samples = make_handwriting_set(args.per_kind, seed=args.seed)
    images = [image for image, _, _ in samples]
    labels = np.array([label for _, label, _ in samples])
    kinds = np.array([kind for _, _, kind in samples])
    results = {}
    for name, pipeline in PIPELINES.items():
        pipeline(images[0])  # warm up (imports, first allocations)
        results[name] = score(model, pipeline, images, labels)
    times = best_times(PIPELINES, {kind: [im for im, k in zip(images, kinds) if k == kind] for kind in KINDS})
    rows = []
    for kind in (*KINDS, None):
        mask = np.ones(len(labels), bool) if kind is None else kinds == kind
        cells = [f"**all ({mask.sum():,})**" if kind is None else kind]
        for name in PIPELINES:
            right, failed = results[name]
            refused = sum(mask[i] for i in failed)
            time_ms = np.mean(list(times[name].values())) if kind is None else times[name][kind]
            cells.append(f"{right[mask].mean():.1%}" + (f" ({refused} refused)" if refused else "") + f", {time_ms:.2f} ms")
        ratios = [times["to_mnist"][k] / times["OpenCV reference"][k] for k in (KINDS if kind is None else [kind])]
        cells.append(f"{np.mean(ratios):.2f}")
        rows.append(cells)
    recipe = model.metadata.get("recipe", "?")
    acc = model.metadata.get("metrics", {}).get("test_accuracy")
    print(header("Your own handwriting: naive resize, OpenCV reference and to_mnist"))
    print(f"Model `{args.model}` (recipe `{recipe}`, {acc:.2%} on the MNIST test set); {args.per_kind} images "
          f"per kind, seed {args.seed}. Each cell: accuracy (images the pipeline refused, counted wrong), "
          f"ms per image (the best of {REPEATS} passes, the pipelines taking turns; the 'all' row: the mean over "
          f"kinds). Last column: to_mnist's time over the reference's (the 'all' row: the mean ratio).\n")
    print(table(["kind", *PIPELINES, "to_mnist / reference"], rows))

    digits = load_sklearn_digits("all")
    small = [Image.fromarray(im, "L") for im in digits.images]  # as a user would hand them over
    cells = []
    pipelines = {name: PIPELINES[name] for name in ("OpenCV reference", "to_mnist")}
    times = best_times(pipelines, {"digits": small})
    for name, pipeline in pipelines.items():
        right, failed = score(model, pipeline, small, digits.labels)
        cells.append(f"{right.mean():.1%} ({len(failed)} refused), {times[name]['digits']:.2f} ms")
    print(f"\nscikit-learn's 1,797 8x8 digits (0..255, light ink on black) through the reference: {cells[0]}; "
          f"through to_mnist: {cells[1]}.")

    if args.numbers:
        print(numbers_table(model, args.numbers, args.seed))

    if args.mnist_dir:
        test = load_mnist("test", args.mnist_dir, download=False)
        cells = [f"{np.mean(model.predict(test.images) == test.labels):.2%}"]
        pictures = [Image.fromarray(im, "L") for im in test.images]
        for name in ("OpenCV reference", "to_mnist"):
            right, failed = score(model, PIPELINES[name], pictures, test.labels)
            cells.append(f"{right.mean():.2%} ({len(failed)} refused)")
        print(f"\nMNIST's 10,000 test digits, as they are: {cells[0]}; through the reference: {cells[1]}; "
              f"through to_mnist: {cells[2]}.")

    if args.files:
        with tempfile.TemporaryDirectory() as folder:
            paths = []
            for i, image in enumerate(images[: args.files]):
                path = Path(folder) / f"{i:05d}.png"
                image.save(path)
                paths.append(str(path))
            command = [str(Path(sys.executable).with_name("digitlab")), "predict", args.model, *paths]
            start = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
            seconds = time.perf_counter() - start
        status = "" if done.returncode == 0 else f" (exit {done.returncode}: {done.stderr.strip()[-200:]})"
        print(f"\n`digitlab predict MODEL` on {len(paths):,} PNG files of the mixed kinds (one process, "
              f"start-up included): {seconds:.1f} s, {len(paths) / seconds:.0f} images/s{status}.")


def numbers_table(model, count: int, seed: int) -> str:
    """`segment`, and `read` (its cuts between touching digits judged by the model), against the
    reference extended to numbers: numbers read right, ms per number.
    ``count`` numbers apart and touching in turn, and half as many more apart in a comb of boxes,
    as many in a comb photographed turned 1-5 degrees either way, as many written on a line, and
    as many on a line photographed turned."""
    rng = np.random.default_rng(seed)
    numbers = []
    names = ["apart", "touching", "in boxes", "boxes askew", "on a line", "line askew"]
    for i in range(count + 4 * (count // 2)):
        text = "".join(str(d) for d in rng.integers(0, 10, int(rng.integers(2, 6))))
        group = names[i % 2] if i < count else names[2 + (i - count) // (count // 2)]
        degrees = rng.choice([-1, 1]) * rng.uniform(1, 5) if "askew" in group else 0.0
        image = render_number(text, touching=group == "touching", seed=seed + i, boxes="boxes" in group, degrees=degrees,
                              ruled="line" in group)
        numbers.append((image, text, group))
    count = len(numbers)
    pipelines = {"OpenCV reference": opencv_reference_number, "segment": segment,
                 "read": lambda image: read(model, image, number=True).digits}  # cuts judged by the model
    kind = np.array([g for _, _, g in numbers])
    digits = np.array([len(text) for _, text, _ in numbers])
    right = {}
    for name, pipeline in pipelines.items():
        answers = []
        for image, text, _ in numbers:
            try:
                found = pipeline(image)
            except Exception:  # noqa: BLE001 - a refused number is read wrong
                found = np.zeros((0, 28, 28), np.uint8)
            answers.append(len(found) > 0 and "".join(str(d) for d in model.predict(found)) == text)
        right[name] = np.array(answers)
    groups = {g: kind == g for g in names}
    times = best_times(pipelines, {g: [im for (im, _, _), m in zip(numbers, mask) if m] for g, mask in groups.items()})
    rows = []
    for group, mask in (*groups.items(), (None, np.ones(count, bool))):
        cells = [f"**all ({count})**" if group is None else f"{group} ({mask.sum()})"]
        for name in pipelines:
            # ms per number: a group's best pass, or for all, the groups' passes together
            total = sum(times[name][g] * groups[g].sum() for g in groups if group in (None, g))
            cells.append(f"{right[name][mask].mean():.1%}, {total / mask.sum():.2f} ms ({total / digits[mask].sum():.2f} a digit)")
        rows.append(cells)
    return (f"\nWritten numbers of 2 to 5 digits ({digits.sum():,} digits; `synth.render_number`, seeds {seed}..{seed + count - 1}), "
            "apart, touching, apart in a comb of boxes (a postal code's field), upright and photographed turned 1-5 degrees, and written on a printed line, upright and turned. Each cell: numbers read right (every digit, no digit more or less), ms per number "
            f"(and per digit; the best of {REPEATS} passes, the pipelines taking turns). `read` is what `digitlab predict --number` does: "
            "`segment`, the cuts between touching digits judged by the model, and the model's answers; its time includes the model's.\n\n" + table(["numbers", *pipelines], rows))

if __name__ == "__main__":
    sys.exit(main())
