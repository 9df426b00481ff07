"""`to_mnist`: a photo, scan or canvas drawing of one digit -> the 28x28 image MNIST would have made.

MNIST's digits were fitted into a 20x20 box keeping their aspect ratio, anti-aliased, and pasted
into 28x28 at the whole-pixel offset that puts their centre of mass nearest pixel (14, 14) (row,
column; within about half a pixel on each axis). A picture of a digit is far from that, so it goes
through:

1. `load.load_grey`: read and check the input, alpha composited, grey 0..1, huge images shrunk;
2. `find_ink`: fit the paper's brightness as a smooth surface, then locally (lighting gradients and
   shadows go with it); decide which side is ink (dark on light or light on dark); threshold
   (Otsu, with hysteresis) to find the strokes; group stroke fragments into parts;
3. `to_mnist` keeps the largest part and the parts near it (specks and far marks are dropped), and
   `fit_mnist` fits them: the longer side to 20 px by area-averaging (anti-aliasing), strokes much
   thinner than MNIST's thickened, pasted into 28x28 by the centre of mass.

bench/handwriting.py measures what these steps are worth against the usual tutorial shortcut
(grey, plain resize to 28x28, invert).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from ..errors import ImageError
from .components import Components, dilate, label
from .load import WORK_SIDE, read_grey

SIDE = 28  # MNIST's image side
BOX = 20  # the box the digit's longer side is fitted into
CENTRE = 14.0  # where MNIST puts the centre of mass (row and column index)
SUPER = 4  # supersampling factor for the fit: work at 80 px, area-average down to 20
MNIST_STROKE = 2.0  # MNIST's median stroke width at 28x28 (2 * area / perimeter of pixels > 127)
THIN = 1.4  # strokes thinner than this (in 28x28 pixels) are thickened to MNIST_STROKE

BLANK_MESSAGE = "no digit found (the image is blank)"
_FIT_SIDE = 64  # the background surface is fitted on a copy shrunk to about this side
_MIN_CONTRAST = 0.1  # ink must differ from the paper by this much (0..1 grey) ...
_MIN_SNR = 6.0  # ... and by this many times the paper's noise
_NOISY = 0.02  # paper noise above this (0..1 grey) is smoothed before thresholding
_LOCAL_MAX_INK = 0.15  # local paper levels are estimated only where ink is under this fraction
_KEEP_RATIO = 0.05  # in to_mnist, parts smaller than this fraction of the largest are specks
_BIG_RATIO = 0.3  # ... and parts under this fraction must lie close to the digit to belong to it


@dataclass(frozen=True)
class Ink:
    """What `find_ink` sees in an image, at working resolution (at most `WORK_SIDE` px a side).

    Attributes:
        strength: float32 H x W in 0..1: 0 = paper, 1 = full ink, anti-aliased edges in between.
        parts: the connected pieces of ink (`Components`); fragments closer than about a stroke
            width are one part, so a grainy chalk line stays whole. ``parts.labels`` covers each
            part's pixels and a small margin around them (the anti-aliased fringe).
        stroke: estimated stroke width in working pixels (2 * area / perimeter of the ink mask).
        scale: input pixels per working pixel (1.0 unless the image was shrunk).
        polarity: +1 for dark ink on light paper, -1 for light ink on dark.
    """

    strength: np.ndarray
    parts: Components
    stroke: float
    scale: float
    polarity: int


def to_mnist(image) -> np.ndarray:
    """Turn an image of one handwritten digit into an MNIST-like uint8 28 x 28 array (0 = background,
    255 = ink), the digit's longer side 20 px, its centre of mass at (14, 14).

    ``image``: a path, bytes, binary file object, ``PIL.Image.Image`` or numpy array (uint8 or
    0..255 integers, or floats 0..1; H x W, H x W x 3 or H x W x 4) of any size up to
    `load.MAX_PIXELS`. Dark ink on light paper or light on dark; uneven lighting, paper texture,
    noise and specks are removed. If the image holds several digits, the largest one (with the
    pieces near it) is taken: use `segment` to read a number.

    Raises `ImageError`: not an image, truncated file, empty or too large image, or a blank one.
    """
    ink = find_ink(image)
    chosen = _main_parts(ink.parts)
    return fit_mnist(_crop(ink, chosen)[0], ink.stroke)


def find_ink(image) -> Ink:
    """Find the ink in an image: background removed, polarity decided, strokes grouped into parts.

    Raises `ImageError` (`BLANK_MESSAGE`) when nothing stands out from the paper.
    """
    grey, scale = read_grey(image, WORK_SIDE)
    residual, polarity, noise = ink_residual(grey)
    if noise > _NOISY:
        # A noisy photo: average 3x3 before thresholding, as the eye does; strokes in such photos
        # are several pixels wide, and clean images keep their one-pixel lines.
        residual = _box_blur(residual, 1)
        noise = _paper_sigma(_subsample(residual))
    strength = np.maximum(residual, 0.0)
    floor = max(3.0 * noise, 0.02)
    candidates = strength[strength > floor]
    if candidates.size == 0:
        raise ImageError(BLANK_MESSAGE)
    # Hysteresis: strokes are the pixels over the Otsu threshold, plus the weaker pixels connected
    # to them (the faint parts of a pencil line or a chalk stroke, the grey stems of an 8x8 digit),
    # but no further than a stroke width from strong ink: a faint ruled line crossing the digit
    # must not come with it.
    high = max(otsu(candidates), 4.0 * noise, 0.5 * _MIN_CONTRAST)
    strong_mask = strength >= high
    if not strong_mask.any():
        raise ImageError(BLANK_MESSAGE)
    weak = label(strength >= max(0.4 * high, floor))
    strong = np.unique(weak.labels[strong_mask])
    reach = int(np.clip(round(stroke_width(strong_mask)), 1, 20))
    mask = np.isin(weak.labels, strong[strong > 0]) & dilate(strong_mask, reach)
    stroke = stroke_width(mask)
    join = int(np.clip(round(0.5 * stroke), 1, 12))
    grouped = label(dilate(mask, join))
    area = np.bincount(grouped.labels[mask], minlength=len(grouped) + 1)[1:]
    main = int(np.argmax(area))
    level = float(np.percentile(strength[mask & (grouped.labels == main + 1)], 75))
    min_area = max(4.0, 2e-5 * grey.size)
    if area[main] < min_area or level < _MIN_CONTRAST or level < _MIN_SNR * noise:
        raise ImageError(BLANK_MESSAGE)
    # Fragments joined by the dilation are one part; boxes and areas are those of the ink itself.
    parts = Components(grouped.labels, area.astype(np.int64), _boxes(grouped.labels * mask, len(grouped)))
    soft = np.clip((strength - floor) / max(level - floor, 1e-6), 0.0, 1.0).astype(np.float32)
    return Ink(soft, parts, stroke, scale, polarity)


def ink_residual(grey: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Separate ink from paper in a grey float32 H x W image (0..1).

    The paper's brightness is fitted as a smooth polynomial surface on a shrunk copy: first a plane
    by least absolute deviations, which follows the majority of pixels (the paper) even when ink
    covers 40% of them, then a surface (constant, plane or quadratic, by image size) by least
    squares on the paper side only. This removes lighting gradients and vignetting. The ink is the
    side of the first fit with a clear tail of outliers; when there is no clear tail (ink covering
    much of a tight crop pulls the fit towards it), the image border, mostly paper, decides.

    Returns (residual, polarity, noise): residual float32 H x W, each pixel's distance from the
    paper towards the ink (about 0 on paper, up to 1 on ink); polarity +1 for dark ink, -1 for
    light ink; noise, the robust standard deviation of the paper.
    """
    height, width = grey.shape
    k = max(1, math.ceil(max(height, width) / _FIT_SIDE))
    small = np.asarray(Image.fromarray(grey, "F").reduce(k), dtype=np.float32) if k > 1 else grey
    degree = 0 if max(height, width) < 48 else 1 if max(height, width) < 160 else 2
    basis = _basis(small.shape, (height, width), k, degree)
    values = small.ravel()

    # The first fit is at most a plane: a quadratic could bulge to follow a digit in the middle.
    flat = min(degree, 1)
    plane = _lad_fit(basis[:, : len(_terms(0.0, 0.0, flat))], values)
    coef = np.zeros(basis.shape[1])
    coef[: len(plane)] = plane
    residual = grey - _surface(coef, (height, width), degree)
    sample = _subsample(residual)
    noise = _mad(sample)
    offset = float(np.median(_ring(residual)))  # the border, mostly paper, relative to the fit
    dark = np.maximum(-sample - 3 * noise, 0).sum()
    light = np.maximum(sample - 3 * noise, 0).sum()
    if max(dark, light) > 0.8 * (dark + light) > 0 and abs(offset) <= max(4.0 * noise, 0.08):
        polarity = 1 if dark > light else -1  # a clear tail of outliers on one side: the ink
    elif abs(offset) > 1e-3:
        # Ink covers so much (a tight crop) that the fit lies between ink and paper, or on the ink:
        # the paper (the border) is on the far side of the fit from the ink. With that little
        # paper, fit only its level: a tight crop has no room for lighting to vary.
        polarity = 1 if offset > 0 else -1
        degree = 0
        basis = basis[:, :1]
        coef = np.array([float(np.median(_ring(grey)))])
    else:
        polarity = 1 if dark >= light else -1
    if polarity * offset > 0 and degree > 0:
        coef[0] += offset  # start the refit at the border's level, the paper
    coef = _robust_fit(basis, values, polarity, coef)
    residual = (polarity * (_surface(coef, (height, width), degree) - grey)).astype(np.float32)
    noise = _paper_sigma(_subsample(residual))
    if degree == 2 and np.mean(_subsample(residual) > 4 * noise + 0.02) < _LOCAL_MAX_INK:
        residual = residual - _local_paper(residual)
        noise = _paper_sigma(_subsample(residual))
    return residual, polarity, noise


def _local_paper(residual: np.ndarray) -> np.ndarray:
    """What a smooth surface misses (a shadow's edge, a hot spot): the paper's local level in the
    residual, the 25th percentile in windows a quarter of the image wide, on a copy shrunk to about
    `_FIT_SIDE`, smoothed and enlarged back. Strokes are much narrower than the windows, so the
    low quarter of every window is paper."""
    height, width = residual.shape
    k = max(1, math.ceil(max(height, width) / _FIT_SIDE))
    small = Image.fromarray(residual, "F").reduce(k) if k > 1 else Image.fromarray(residual, "F")
    size = max(3, (min(small.size) // 4) | 1)
    level = small.filter(ImageFilter.RankFilter(size, size * size // 4))
    level = Image.fromarray(_box_blur(np.asarray(level, np.float32), size // 4 + 1), "F")
    return np.asarray(level.resize((width, height), Image.Resampling.BILINEAR), dtype=np.float32)


def _lad_fit(basis, values, rounds: int = 15) -> np.ndarray:
    """Least absolute deviations by iteratively reweighted least squares."""
    weight = np.ones(values.size)
    coef = np.zeros(basis.shape[1])
    for _ in range(rounds):
        root = np.sqrt(weight)
        coef = np.linalg.lstsq(basis * root[:, None], values * root, rcond=None)[0]
        weight = 1.0 / np.maximum(np.abs(values - basis @ coef), 1e-3)
    return coef


def _subsample(a: np.ndarray, n: int = 250_000) -> np.ndarray:
    """A regular subsample of about ``n`` pixels, for statistics of large images."""
    step = max(1, int(math.sqrt(a.size / n)))
    return a[::step, ::step].ravel()


def _box_blur(a: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1) x (2r+1) square, edges repeated."""
    n = 2 * radius + 1
    padded = np.pad(a, radius, mode="edge")
    total = np.zeros_like(a)
    for dy in range(n):
        for dx in range(n):
            total += padded[dy:dy + a.shape[0], dx:dx + a.shape[1]]
    return total / (n * n)


def _basis(shape, full_shape, k, degree) -> np.ndarray:
    """Polynomial terms at the centres of a shrunk image's pixels, in full-image coordinates."""
    rows = (np.arange(shape[0]) + 0.5) * k
    cols = (np.arange(shape[1]) + 0.5) * k
    v, u = np.meshgrid(_unit(rows, full_shape[0]), _unit(cols, full_shape[1]), indexing="ij")
    return np.stack([t.ravel() for t in _terms(u, v, degree)], axis=1)


def _unit(coords, n):
    """Pixel coordinates 0..n mapped to -1..1."""
    return (2.0 * np.asarray(coords, dtype=np.float32) / n - 1.0).astype(np.float32)


def _terms(u, v, degree):
    terms = [np.ones_like(u + v)]
    if degree >= 1:
        terms += [u + 0 * v, v + 0 * u]
    if degree >= 2:
        terms += [u * u + 0 * v, u * v, v * v + 0 * u]
    return terms


def _surface(coef, shape, degree) -> np.ndarray:
    """Evaluate the fitted surface at every pixel centre of a full-size image (broadcast, no grid)."""
    v = _unit(np.arange(shape[0]) + 0.5, shape[0])[:, None]
    u = _unit(np.arange(shape[1]) + 0.5, shape[1])[None, :]
    surface = np.zeros(shape, dtype=np.float32)
    for c, term in zip(coef, _terms(u, v, degree)):
        surface += np.float32(c) * term
    return surface


def _robust_fit(basis, values, polarity, coef, rounds: int = 5):
    """Refit ``coef`` by least squares on the paper: each round keeps the pixels less than 2.5
    paper standard deviations towards the ink (below the surface if ``polarity`` is +1)."""
    for _ in range(rounds):
        towards_ink = polarity * (basis @ coef - values)
        keep = towards_ink < 2.5 * _paper_sigma(towards_ink) + 1e-3
        if keep.sum() < basis.shape[1]:
            break
        coef = np.linalg.lstsq(basis[keep], values[keep], rcond=None)[0]
    return coef


def _paper_sigma(towards_ink: np.ndarray) -> float:
    """The paper's standard deviation, from the pixels on the side away from the ink only (the
    residual's negative half is all paper, however much ink there is): 1.4826 x their median."""
    away = towards_ink[towards_ink < 0]
    return 1.4826 * float(np.median(-away)) if away.size else 0.0


def _mad(x: np.ndarray) -> float:
    """Robust standard deviation: 1.4826 x the median absolute deviation."""
    return 1.4826 * float(np.median(np.abs(x - np.median(x)))) if x.size else 0.0


def _ring(a: np.ndarray) -> np.ndarray:
    """The pixels of the outer border, about 3% of the shorter side wide (at least 1 px)."""
    b = max(1, round(0.03 * min(a.shape)))
    return np.concatenate([a[:b].ravel(), a[-b:].ravel(), a[b:-b, :b].ravel(), a[b:-b, -b:].ravel()])


def otsu(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold t: ``values >= t`` and ``values < t`` are the two classes of least
    within-class variance."""
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        return lo
    hist, edges = np.histogram(values, bins=bins, range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(hist)
    mass = np.cumsum(hist * centres)
    total, total_mass = weight[-1], mass[-1]
    w0, w1 = weight[:-1], total - weight[:-1]
    valid = (w0 > 0) & (w1 > 0)
    mean0 = np.divide(mass[:-1], w0, out=np.zeros(bins - 1), where=valid)
    mean1 = np.divide(total_mass - mass[:-1], w1, out=np.zeros(bins - 1), where=valid)
    between = np.where(valid, w0 * w1 * (mean0 - mean1) ** 2, -1.0)
    return float(edges[1:][int(np.argmax(between))])


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a boolean mask, 2 x area / perimeter (exact for long strokes)."""
    area = int(mask.sum())
    if area == 0:
        return 0.0
    padded = np.pad(mask, 1)
    perimeter = int((padded[1:] != padded[:-1]).sum() + (padded[:, 1:] != padded[:, :-1]).sum())
    return 2.0 * area / perimeter


def _boxes(labels: np.ndarray, n: int) -> np.ndarray:
    """Bounding boxes (top, left, bottom, right) of the nonzero labels 1..n."""
    rows, cols = np.nonzero(labels)
    index = labels[rows, cols] - 1
    box = np.zeros((n, 4), dtype=np.int64)
    box[:, :2] = np.iinfo(np.int64).max
    np.minimum.at(box[:, 0], index, rows)
    np.minimum.at(box[:, 1], index, cols)
    np.maximum.at(box[:, 2], index, rows + 1)
    np.maximum.at(box[:, 3], index, cols + 1)
    return box


def _main_parts(parts: Components) -> list[int]:
    """The largest part and every part of some size near it (a 5's detached flag, a broken stroke);
    specks and far-away marks are left out. Returns 0-based part indices."""
    area, box = parts.area, parts.box
    main = int(np.argmax(area))
    chosen = [main]
    top, left, bottom, right = box[main]
    candidates = [i for i in np.argsort(-area) if i != main and area[i] >= _KEEP_RATIO * area[main]]
    added = True
    while added:
        added = False
        size = max(bottom - top, right - left)
        for i in candidates:
            if i in chosen:
                continue
            # A big part may stand a little apart (a 4's second stroke); a small one must be
            # close (a pen skip, a 5's flag), or it is dust or a smudge.
            margin = (0.35 if area[i] >= _BIG_RATIO * area[main] else 0.25) * size
            t, l, b, r = box[i]
            if t < bottom + margin and b > top - margin and l < right + margin and r > left - margin:
                chosen.append(int(i))
                top, left, bottom, right = min(top, t), min(left, l), max(bottom, b), max(right, r)
                added = True
    return chosen


def _crop(ink: Ink, chosen: list[int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The ink strength of the chosen parts only, cropped to their bounding box.

    Returns (crop float32 h x w, box (top, left, bottom, right) in working pixels)."""
    boxes = ink.parts.box[chosen]
    top, left = boxes[:, 0].min(), boxes[:, 1].min()
    bottom, right = boxes[:, 2].max(), boxes[:, 3].max()
    labels = ink.parts.labels[top:bottom, left:right]
    keep = np.isin(labels, np.asarray(chosen) + 1)
    return ink.strength[top:bottom, left:right] * keep, (int(top), int(left), int(bottom), int(right))


def fit_mnist(ink: np.ndarray, stroke: float | None = None) -> np.ndarray:
    """Fit a cropped digit into MNIST's frame.

    ``ink``: float32 h x w in 0..1 (1 = ink), cropped to the digit. ``stroke``: its stroke width in
    the same pixels, if known; strokes that would be thinner than `THIN` at 28x28 are thickened to
    about `MNIST_STROKE` (a thin pen line shrunk into 20 px would otherwise be a faint trace).

    The longer side becomes 20 px, the other keeps the aspect ratio (at least 1 px); the fit is
    done at 80 px and area-averaged down (anti-aliasing). The result is pasted into 28x28 at the
    whole-pixel offset that puts the centre of mass nearest (14, 14), as MNIST did. uint8 28 x 28.
    """
    height, width = ink.shape
    longest = max(height, width)
    fine_box = BOX * SUPER
    grow = 0
    if stroke:
        stroke_out = stroke * BOX / longest
        if stroke_out < THIN:
            grow = max(1, round((MNIST_STROKE - stroke_out) * SUPER / 2))
    fine = _resize_longest(ink, fine_box - 2 * grow)
    if grow:
        # A stroke narrower than a fine pixel is a faint trace after area-averaging: restore its
        # full strength before widening it by a disk of radius `grow`.
        width_fine = stroke * (fine_box - 2 * grow) / longest
        fine = np.clip(fine / min(1.0, max(width_fine, 0.25)), 0.0, 1.0)
        fine = _dilate_disk(np.pad(fine, grow), grow)
    small = _to_uint8(_reduce(fine, SUPER))  # quantised first: the centre below is the output's
    mass = float(small.sum())
    if mass <= 0:
        raise ImageError(BLANK_MESSAGE)
    cy = float(small.sum(axis=1, dtype=np.float64) @ np.arange(small.shape[0])) / mass
    cx = float(small.sum(axis=0, dtype=np.float64) @ np.arange(small.shape[1])) / mass
    top, left = math.floor(CENTRE - cy + 0.5), math.floor(CENTRE - cx + 0.5)
    out = np.zeros((SIDE, SIDE), dtype=np.uint8)
    h, w = small.shape
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, SIDE), min(left + w, SIDE)
    out[r0:r1, c0:c1] = small[r0 - top:r1 - top, c0 - left:c1 - left]
    return out


def _resize_longest(ink: np.ndarray, side: int) -> np.ndarray:
    """Resize so that the longer side is ``side`` px, keeping the aspect ratio: area-averaging
    (Pillow's BOX) when shrinking, bilinear when enlarging."""
    height, width = ink.shape
    s = side / max(height, width)
    size = (max(1, round(width * s)), max(1, round(height * s)))
    if size == (width, height):
        return ink.astype(np.float32)
    method = Image.Resampling.BOX if s < 1 else Image.Resampling.BILINEAR
    out = np.asarray(Image.fromarray(ink.astype(np.float32), "F").resize(size, method))
    return np.clip(out, 0.0, 1.0)


def _dilate_disk(a: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation (maximum) by a disk of ``radius`` px; ``a`` must be padded by ``radius``."""
    out = a.copy()
    h, w = a.shape
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if (dy or dx) and dy * dy + dx * dx <= radius * radius + radius // 2:
                src = a[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
                dst = out[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
                np.maximum(dst, src, out=dst)
    return out


def _reduce(fine: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks, after padding each side evenly to a multiple of k."""
    h, w = fine.shape
    ph, pw = -h % k, -w % k
    fine = np.pad(fine, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
    h, w = fine.shape
    return fine.reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(a * 255.0 + 0.5), 0, 255).astype(np.uint8)
