"""Realistic handwriting that is not MNIST, generated: to measure `digitlab.vision.to_mnist` and
`segment` honestly (bench/handwriting.py, and the tests of digitlab.vision).

Each digit 0-9 is drawn from one of a few hand-written styles (a 1 with or without a flag, a 4 open
or closed, a 7 with or without a bar, ...): a skeleton of strokes in a unit box, jittered at its
control points, smoothed (Catmull-Rom), given a random-walk wobble, slanted, rotated, stretched, and
drawn as a pen line whose width varies with pressure, anti-aliased by drawing at 4x and averaging.
It is then put on a scene of its kind:

| kind | what it imitates |
|---|---|
| ``pen-on-paper`` | ballpoint, marker or pencil on white or tinted paper, sometimes ruled, mild lighting |
| ``chalk`` | light, grainy strokes on a dark smudged board |
| ``photo-jpeg`` | a phone photo of a sheet: strong lighting gradient, vignette, shadow, blur, noise, low JPEG quality; now and then a whiteboard or chalkboard |
| ``large-canvas`` | a web canvas 600-1200 px with a small digit anywhere in wide margins, either polarity |
| ``thin-pen`` | a fine pen (1-2.5 px) on a large digit, far thinner than MNIST's strokes |
| ``canvas-rgba`` | a drawing app's export: strokes only in the alpha channel of a transparent canvas |
| ``sklearn-8x8`` | scikit-learn's 8x8 digits scaled up (nearest or bilinear), either polarity, with margins |
| ``frame-filling`` | a size-normalised scan, 16x16 or 28x28, the digit stretched to touch the frame on every side (as postal-code digits are), either polarity, grey levels and scanner noise |
| ``canvas-marks`` | a small digit on a large canvas with stray marks: dots, short scribbles, and now and then part of another digit cut by the canvas edge |
| ``ballpoint-shadow`` | a thin ballpoint on grey paper under uneven light, with a shadow's edge across the sheet |
| ``frame-filling-large`` | the same size-normalised scans as ``frame-filling`` at 48-256 px |
| ``form-box`` | a digit written in a form's printed box (black, grey or a drop-out colour, thin lines), from well inside it to touching or crossing it; sometimes a pencil fainter than the box |
| ``form-askew`` | the same, the sheet photographed turned 1-5 degrees either way |
| ``on-a-line`` | a digit written on a printed line to write on (the same inks as ``form-box``), the line under it, touched or crossed by it, and running 0.3-1.5 digit widths beyond it each side |
| ``line-askew`` | the same, the sheet photographed turned 1-5 degrees either way |
| ``pen-in-view`` | a phone photo of a digit on paper with the pen that wrote it (or a finger) lying on the sheet, coming in from an edge, clear of the digit |
| ``notebook`` | a digit on a notebook page: ruled lines across the page (blue or grey), the digit on one of them, and the page's margin line (red or grey) down the whole page beside it or through its edge |

Everything is seeded: `make_handwriting_set(n, seed)` gives the same images on every machine, and
image i of a kind does not depend on how many were asked for.
"""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("pen-on-paper", "chalk", "photo-jpeg", "large-canvas", "thin-pen", "canvas-rgba", "sklearn-8x8",
         "frame-filling", "canvas-marks", "ballpoint-shadow", "frame-filling-large", "form-box", "form-askew",
         "on-a-line", "line-askew", "notebook", "pen-in-view")
_SUPER = 4  # strokes are drawn at 4x and area-averaged down


def _arc(cx, cy, rx, ry, start, end, n=14):
    """Points on an ellipse from angle ``start`` to ``end`` (degrees; 0 = right, 90 = down)."""
    a = np.radians(np.linspace(start, end, n))
    return list(zip(cx + rx * np.cos(a), cy + ry * np.sin(a)))


# Each style is a list of strokes; each stroke a list of (x, y) points in a unit box (y down)
# through which a smooth curve is drawn. A corner is where one stroke ends and the next begins.
STYLES: dict[int, dict[str, list[list[tuple[float, float]]]]] = {
    0: {
        "oval": [_arc(0.5, 0.5, 0.36, 0.5, -80, -440, 20)],
        "open": [_arc(0.5, 0.5, 0.38, 0.5, -60, -400, 20)],
        "narrow": [_arc(0.5, 0.5, 0.26, 0.5, -95, -460, 20)],
    },
    1: {
        "plain": [[(0.5, 0.0), (0.5, 1.0)]],
        "flag": [[(0.28, 0.24), (0.5, 0.0)], [(0.5, 0.0), (0.5, 1.0)]],
        "base": [[(0.3, 0.2), (0.5, 0.0)], [(0.5, 0.0), (0.5, 1.0)], [(0.28, 1.0), (0.72, 1.0)]],
        "hook": [[(0.4, 0.1), (0.5, 0.0)], [(0.5, 0.0), (0.48, 1.0)]],
    },
    2: {
        "plain": [
            [(0.18, 0.25), (0.3, 0.06), (0.55, 0.0), (0.78, 0.12), (0.8, 0.32), (0.6, 0.58), (0.35, 0.8), (0.15, 1.0)],
            [(0.15, 1.0), (0.85, 0.98)],
        ],
        "curly": [
            [(0.2, 0.22), (0.38, 0.02), (0.65, 0.03), (0.8, 0.25), (0.62, 0.55), (0.34, 0.82), (0.18, 0.95),
             (0.2, 1.0), (0.36, 0.93), (0.55, 0.92), (0.86, 1.0)],
        ],
        "z-like": [
            [(0.18, 0.16), (0.5, 0.0), (0.8, 0.14), (0.74, 0.36)],
            [(0.74, 0.36), (0.15, 1.0)],
            [(0.15, 1.0), (0.86, 1.0)],
        ],
    },
    3: {
        "round": [
            [(0.18, 0.14), (0.45, 0.0), (0.74, 0.08), (0.78, 0.28), (0.42, 0.47)],
            [(0.42, 0.47), (0.76, 0.58), (0.84, 0.82), (0.55, 1.0), (0.15, 0.88)],
        ],
        "flat": [
            [(0.18, 0.0), (0.82, 0.0)],
            [(0.82, 0.0), (0.42, 0.4)],
            [(0.42, 0.4), (0.74, 0.5), (0.84, 0.76), (0.56, 0.99), (0.15, 0.88)],
        ],
    },
    4: {
        "closed": [[(0.66, 1.0), (0.66, 0.0)], [(0.66, 0.0), (0.1, 0.68)], [(0.1, 0.68), (0.9, 0.68)]],
        "open": [[(0.22, 0.0), (0.16, 0.62)], [(0.16, 0.62), (0.88, 0.6)], [(0.7, 0.12), (0.7, 1.0)]],
        "tall": [[(0.3, 0.1), (0.14, 0.64)], [(0.14, 0.64), (0.86, 0.64)], [(0.66, 0.0), (0.64, 1.0)]],
    },
    5: {
        "plain": [
            [(0.8, 0.0), (0.28, 0.0)],
            [(0.28, 0.0), (0.22, 0.45)],
            [(0.22, 0.45), (0.52, 0.38), (0.78, 0.52), (0.8, 0.78), (0.58, 0.98), (0.34, 1.0), (0.14, 0.9)],
        ],
        "broken": [  # the flag drawn last and not touching the stem
            [(0.26, 0.12), (0.22, 0.45)],
            [(0.22, 0.45), (0.52, 0.38), (0.78, 0.52), (0.8, 0.78), (0.58, 0.98), (0.34, 1.0), (0.14, 0.9)],
            [(0.46, 0.0), (0.86, -0.02)],
        ],
    },
    6: {
        "plain": [[(0.72, 0.0), (0.45, 0.15), (0.26, 0.45), (0.2, 0.72), (0.33, 0.96), (0.6, 0.98),
                   (0.78, 0.8), (0.7, 0.58), (0.45, 0.52), (0.24, 0.66)]],
        "straight": [[(0.66, 0.0), (0.26, 0.56)],
                     [(0.26, 0.56), (0.2, 0.8), (0.4, 0.99), (0.66, 0.95), (0.76, 0.74), (0.58, 0.56), (0.32, 0.6)]],
        "small-loop": [[(0.7, 0.0), (0.42, 0.22), (0.28, 0.55), (0.26, 0.85), (0.42, 1.0), (0.62, 0.92),
                        (0.64, 0.74), (0.46, 0.68), (0.3, 0.8)]],
    },
    7: {
        "plain": [[(0.15, 0.0), (0.85, 0.0)], [(0.85, 0.0), (0.56, 0.5), (0.42, 1.0)]],
        "bar": [[(0.15, 0.0), (0.85, 0.0)], [(0.85, 0.0), (0.56, 0.5), (0.42, 1.0)], [(0.36, 0.52), (0.8, 0.5)]],
        "tick": [[(0.15, 0.16), (0.15, 0.0)], [(0.15, 0.0), (0.85, 0.0)], [(0.85, 0.0), (0.46, 1.0)]],
        "curved": [[(0.12, 0.06), (0.4, 0.0), (0.86, 0.02)], [(0.86, 0.02), (0.62, 0.35), (0.5, 0.7), (0.48, 1.0)]],
    },
    8: {
        "loop": [[(0.56, 0.47), (0.78, 0.26), (0.7, 0.05), (0.5, 0.0), (0.28, 0.06), (0.25, 0.26), (0.5, 0.47),
                  (0.78, 0.7), (0.76, 0.93), (0.5, 1.0), (0.22, 0.92), (0.22, 0.7), (0.48, 0.49), (0.72, 0.3)]],
        "stacked": [_arc(0.5, 0.24, 0.24, 0.24, -90, -450, 14), _arc(0.5, 0.72, 0.3, 0.28, -90, 270, 16)],
    },
    9: {
        "plain": [[(0.76, 0.22), (0.56, 0.02), (0.3, 0.05), (0.2, 0.25), (0.34, 0.45), (0.6, 0.42), (0.77, 0.24)],
                  [(0.77, 0.14), (0.76, 0.6), (0.72, 1.0)]],
        "curved": [[(0.76, 0.22), (0.56, 0.02), (0.3, 0.05), (0.2, 0.25), (0.34, 0.45), (0.6, 0.42), (0.77, 0.24)],
                   [(0.77, 0.14), (0.75, 0.62), (0.6, 0.94), (0.36, 0.96)]],
    },
}


def _catmull_rom(points: np.ndarray, spacing: float) -> np.ndarray:
    """A smooth curve through ``points`` (n x 2), sampled about every ``spacing`` units."""
    if len(points) == 2:
        n = max(2, int(np.linalg.norm(points[1] - points[0]) / spacing) + 1)
        t = np.linspace(0.0, 1.0, n)[:, None]
        return points[0] * (1 - t) + points[1] * t
    p = np.vstack([2 * points[0] - points[1], points, 2 * points[-1] - points[-2]])
    pieces = []
    for i in range(len(points) - 1):
        p0, p1, p2, p3 = p[i], p[i + 1], p[i + 2], p[i + 3]
        n = max(2, int(np.linalg.norm(p2 - p1) / spacing) + 1)
        t = np.linspace(0.0, 1.0, n, endpoint=False)[:, None]
        pieces.append(0.5 * (2 * p1 + (p2 - p0) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t**2
                             + (3 * p1 - p0 - 3 * p2 + p3) * t**3))
    pieces.append(points[-1:])
    return np.vstack(pieces)


def _smooth_noise(rng, n: int, scale: float, window: int) -> np.ndarray:
    """A random walk of n steps, smoothed by a moving average, with its linear drift removed."""
    walk = np.cumsum(rng.normal(0.0, 1.0, n))
    if window > 1 and n > window:
        walk = np.convolve(walk, np.ones(window) / window, mode="same")
    walk -= np.linspace(walk[0], walk[-1], n)
    peak = np.abs(walk).max()
    return walk * (scale / peak) if peak > 0 else walk


def digit_strokes(digit: int, rng: np.random.Generator, height: float, style: str | None = None,
                  slant: float | None = None) -> list[np.ndarray]:
    """One hand-written ``digit`` as pen paths in pixels: a list of n x 2 arrays (x, y), the digit
    about ``height`` px tall with its top-left near (0, 0). ``style``: a key of ``STYLES[digit]``
    (random if None); ``slant``: shear of x by height (random, mostly forward, if None).

    The writer's hand: control points jittered by 2-4.5% of the height, the proportions warped
    (a larger top or bottom half, wider top or bottom), a random-walk wobble, strokes sometimes
    overshooting their ends or broken where the pen skipped, then slant, rotation and aspect.
    """
    styles = STYLES[digit]
    style = style if style is not None else list(styles)[rng.integers(len(styles))]
    slant = float(np.clip(rng.normal(0.12, 0.2), -0.4, 0.6)) if slant is None else slant
    angle = math.radians(rng.normal(0.0, 7.0))
    aspect = rng.uniform(0.65, 1.25)
    jitter = rng.uniform(0.02, 0.045)
    middle = rng.uniform(-0.3, 0.3)  # moves the waist of a 3, 8, ... up or down
    taper = rng.uniform(-0.3, 0.3)  # wider at the top or at the bottom
    wobble = rng.uniform(0.005, 0.02)
    skeleton = styles[style]
    paths = []
    for stroke in skeleton:
        points = np.asarray(stroke, dtype=np.float64) + rng.normal(0.0, jitter, (len(stroke), 2))
        path = _catmull_rom(points, spacing=min(0.02, 2.0 / height))
        n = len(path)
        path = path + np.stack([_smooth_noise(rng, n, wobble, 7), _smooth_noise(rng, n, wobble, 7)], 1)
        paths.append(path)
    # Strokes were jittered independently: pull each stroke's start onto the previous stroke's end
    # where the skeleton has them meet, so that corners stay joined.
    for prev, cur, (a, b) in zip(paths, paths[1:], zip(skeleton, skeleton[1:])):
        if np.allclose(a[-1], b[0]):
            cur += (prev[-1] - cur[0]) * np.linspace(1.0, 0.0, len(cur))[:, None]
    out = []
    cos, sin = math.cos(angle), math.sin(angle)
    for path in _pen_habits(paths, rng):
        x, y = path[:, 0] - 0.5, path[:, 1]
        y = y + middle * y * (1 - y)
        x = x * (1 + taper * (y - 0.5)) * aspect
        y = y - 0.5
        x = x - slant * y
        x, y = cos * x - sin * y, sin * x + cos * y
        out.append(np.stack([x, y], 1) * height)
    lo = np.vstack(out).min(axis=0)
    return [p - lo for p in out]


def _pen_habits(paths: list[np.ndarray], rng) -> list[np.ndarray]:
    """Overshoot: a stroke's end carried on a little past its point; skip: a short gap in a stroke
    where the pen lost contact with the paper."""
    out = []
    for path in paths:
        if len(path) > 3 and rng.random() < 0.3:
            direction = path[-1] - path[-3]
            norm = np.linalg.norm(direction)
            if norm > 0:
                extra = rng.uniform(0.02, 0.08) * direction / norm
                path = np.vstack([path, path[-1] + extra])
        if len(path) > 20 and rng.random() < 0.08:
            cut = int(rng.integers(5, len(path) - 8))
            gap = max(1, int(len(path) * rng.uniform(0.02, 0.05)))
            out += [path[:cut], path[cut + gap:]]
            continue
        out.append(path)
    return out


def draw_strokes(paths: list[np.ndarray], width: float, rng: np.random.Generator,
                 pressure: float = 0.25) -> np.ndarray:
    """Anti-aliased coverage (float32 H x W in 0..1) of pen ``paths`` (pixel coordinates, starting
    near 0) drawn ``width`` px wide, the width varying by up to ``pressure`` along each stroke."""
    pad = width + 3
    extent = np.vstack(paths).max(axis=0) + 2 * pad
    size = (int(math.ceil(extent[0])) * _SUPER, int(math.ceil(extent[1])) * _SUPER)
    canvas = Image.new("L", size, 0)
    draw = ImageDraw.Draw(canvas)
    for path in paths:
        xy = (path + pad) * _SUPER
        n = len(xy)
        widths = width * _SUPER * (1.0 + _smooth_noise(rng, n, pressure, 9) if n > 2 else np.ones(n))
        widths = np.maximum(widths, 0.6 * _SUPER)
        for i in range(n):
            r = widths[i] / 2
            draw.ellipse([xy[i, 0] - r, xy[i, 1] - r, xy[i, 0] + r, xy[i, 1] + r], fill=255)
            if i + 1 < n:
                draw.line([tuple(xy[i]), tuple(xy[i + 1])], fill=255, width=max(1, int(round(widths[i]))))
    small = canvas.reduce(_SUPER)
    return np.asarray(small, dtype=np.float32) / 255.0


# ---------------------------------------------------------------------------------------- scenes


def _lowfreq(rng, shape, cells: int) -> np.ndarray:
    """Smooth noise in about -1..1 over an H x W image, varying over ~1/cells of its size."""
    h, w = shape
    grid = rng.normal(0.0, 1.0, (cells + 3, cells + 3)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((w, h), Image.Resampling.BICUBIC)) / 1.5


def _paper(rng, shape, tone: float, tint, light: float = 0.15, texture: float = 0.03,
           noise: float = 0.01) -> np.ndarray:
    """A sheet: float32 H x W x 3 in 0..1 with a tint, a lighting gradient (up to ``light``),
    blotchy texture and fine noise."""
    h, w = shape
    angle = rng.uniform(0, 2 * math.pi)
    yy = np.linspace(-0.5, 0.5, h, dtype=np.float32)[:, None]
    xx = np.linspace(-0.5, 0.5, w, dtype=np.float32)[None, :]
    gradient = 1.0 + rng.uniform(0, light) * (math.cos(angle) * xx + math.sin(angle) * yy) * 2
    base = tone * gradient + texture * (_lowfreq(rng, shape, 4) + 0.5 * _lowfreq(rng, shape, 16))
    base = base + rng.normal(0.0, noise, shape).astype(np.float32)
    return np.clip(base[:, :, None] * np.asarray(tint, np.float32), 0, 1)


def _photo_light(rng, shape) -> np.ndarray:
    """Multiplicative lighting of a hand-held photo: vignette, a soft shadow, a hot spot."""
    h, w = shape
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    light = 1.0 - rng.uniform(0.0, 0.35) * (xx**2 + yy**2) / 2
    if rng.random() < 0.5:  # the phone's or the hand's shadow across one side
        angle = rng.uniform(0, 2 * math.pi)
        d = math.cos(angle) * xx + math.sin(angle) * yy - rng.uniform(0.3, 0.9)
        light = light * (1.0 - rng.uniform(0.15, 0.4) / (1 + np.exp(-d / rng.uniform(0.05, 0.25))))
    cy, cx = rng.uniform(-0.8, 0.8, 2)
    light = light + rng.uniform(0.0, 0.15) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.3)
    return light


def _grain(rng, shape, amount: float) -> np.ndarray:
    """Multiplier in 0..1 that breaks a stroke into grains (chalk, pencil on rough paper)."""
    fine = rng.random(shape).astype(np.float32)
    blotch = 0.5 + 0.5 * _lowfreq(rng, shape, max(2, min(shape) // 6))
    return np.clip(1.0 - amount * (fine * 0.7 + (1 - blotch) * 0.6), 0, 1)


def _specks(rng, shape, count: int, size: float) -> np.ndarray:
    """Coverage of ``count`` dust specks and dots, about ``size`` px across, anywhere on the page."""
    h, w = shape
    im = Image.new("L", (w * _SUPER, h * _SUPER), 0)
    draw = ImageDraw.Draw(im)
    for _ in range(count):
        x, y = rng.uniform(0, w), rng.uniform(0, h)
        r = rng.uniform(0.25, 0.5) * size * _SUPER
        draw.ellipse([x * _SUPER - r, y * _SUPER - r, x * _SUPER + r, y * _SUPER + r], fill=int(rng.uniform(80, 255)))
    return np.asarray(im.reduce(_SUPER), np.float32) / 255


def _place(alpha: np.ndarray, shape, rng, margin: float = 0.0) -> np.ndarray:
    """Put a coverage map at a random position on an H x W canvas, at least ``margin`` (a fraction
    of the canvas) from its edges. The canvas grows if the digit would not fit: never clipped."""
    h, w = max(shape[0], alpha.shape[0]), max(shape[1], alpha.shape[1])
    ah, aw = alpha.shape
    top = int(rng.uniform(min(margin * h, h - ah), max(margin * h, h - ah - margin * h) + 1))
    left = int(rng.uniform(min(margin * w, w - aw), max(margin * w, w - aw - margin * w) + 1))
    top, left = min(max(top, 0), h - ah), min(max(left, 0), w - aw)
    canvas = np.zeros((h, w), dtype=np.float32)
    canvas[top:top + ah, left:left + aw] = alpha
    return canvas


def _ruled(rng, paper: np.ndarray, spacing: float) -> np.ndarray:
    """Faint blue ruling every ``spacing`` px (a notebook page)."""
    h = paper.shape[0]
    spacing = max(4, int(spacing))
    line = np.zeros(paper.shape[:2], np.float32)
    thickness = max(1, int(round(h / 250)))
    for r in range(int(rng.integers(0, spacing)), h, spacing):
        line[r:r + thickness] = rng.uniform(0.25, 0.55)
    return _composite(paper, line, [0.55, 0.7, 0.95])


def _composite(paper: np.ndarray, alpha: np.ndarray, ink) -> np.ndarray:
    return paper * (1 - alpha[:, :, None]) + np.asarray(ink, np.float32) * alpha[:, :, None]


def _to_image(rgb: np.ndarray, grey: bool = False) -> Image.Image:
    arr = np.clip(rgb * 255 + 0.5, 0, 255).astype(np.uint8)
    im = Image.fromarray(arr, "RGB")
    return im.convert("L") if grey else im


def _jpeg(im: Image.Image, quality: int) -> Image.Image:
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=int(quality))
    out = Image.open(io.BytesIO(buf.getvalue()))
    out.load()
    return out


def _canvas_shape(rng, lo: int, hi: int) -> tuple[int, int]:
    side = rng.uniform(lo, hi)
    aspect = rng.choice([1.0, 0.75, 4 / 3, rng.uniform(0.7, 1.4)])
    return max(8, int(side * min(1.0, 1 / aspect))), max(8, int(side * min(1.0, aspect)))


def _pen_ink(rng):
    """An ink colour (RGB 0..1) for dark writing: black, blue or dark grey pencil."""
    kind = rng.choice(["black", "blue", "pencil", "red"], p=[0.4, 0.35, 0.17, 0.08])
    if kind == "black":
        return rng.uniform(0.02, 0.2, 3), 0.0
    if kind == "blue":
        return np.array([rng.uniform(0.05, 0.2), rng.uniform(0.1, 0.25), rng.uniform(0.35, 0.6)]), 0.0
    if kind == "red":
        return np.array([rng.uniform(0.6, 0.8), rng.uniform(0.05, 0.2), rng.uniform(0.05, 0.2)]), 0.0
    g = rng.uniform(0.25, 0.45)
    return np.array([g, g, g * 1.05]), rng.uniform(0.2, 0.5)


def _drawn(rng, digit, height, width, pressure=0.25):
    return draw_strokes(digit_strokes(digit, rng, height), width, rng, pressure)


def _pen_written(rng, digit, shape, tallest: float, thickest: float):
    """A digit written with a pen (`_pen_ink`) on a canvas of ``shape``: up to ``tallest`` of its
    height tall, its stroke up to ``thickest`` of the digit's height wide. Returns (coverage, ink
    colour, the digit's height)."""
    height = rng.uniform(0.35, tallest) * shape[0]
    alpha = _drawn(rng, digit, height, max(1.2, height * rng.uniform(0.06, thickest)))
    ink, grain = _pen_ink(rng)
    if grain:
        alpha = alpha * _grain(rng, alpha.shape, grain)
    return alpha, ink, height


def _pen_on_paper(rng, digit):
    shape = _canvas_shape(rng, 56, 360)
    alpha, ink, height = _pen_written(rng, digit, shape, 0.75, 0.14)
    alpha = _place(alpha, shape, rng)
    shape = alpha.shape
    tone = rng.uniform(0.82, 0.98)
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.88, 1.0)])
    paper = _paper(rng, shape, tone, tint, light=0.15, texture=rng.uniform(0.005, 0.03),
                   noise=rng.uniform(0.003, 0.02))
    if rng.random() < 0.4:
        paper = _ruled(rng, paper, rng.uniform(1.1, 1.6) * height)
    paper = _composite(paper, _specks(rng, shape, int(rng.integers(0, 12)), rng.uniform(1, 3)), ink)
    return _to_image(_composite(paper, alpha, ink), grey=rng.random() < 0.3)


def _chalk(rng, digit):
    shape = _canvas_shape(rng, 64, 400)
    height = rng.uniform(0.35, 0.75) * shape[0]
    alpha = _drawn(rng, digit, height, max(1.5, height * rng.uniform(0.07, 0.16)), pressure=0.35)
    alpha = alpha * _grain(rng, alpha.shape, rng.uniform(0.3, 0.7))
    alpha = _place(alpha, shape, rng)
    shape = alpha.shape
    tint = rng.choice([[0.8, 1.0, 0.85], [1.0, 1.0, 1.0], [0.85, 0.9, 1.0]])
    board = _paper(rng, shape, rng.uniform(0.1, 0.3), tint, light=0.3, texture=0.03, noise=0.015)
    smudge = np.clip(_lowfreq(rng, shape, 3), 0, None) * rng.uniform(0.0, 0.12)
    board = np.clip(board + smudge[:, :, None], 0, 1)
    chalk = rng.uniform(0.75, 0.97) * np.array([1.0, 1.0, rng.uniform(0.9, 1.0)])
    board = _composite(board, 0.6 * _specks(rng, shape, int(rng.integers(0, 20)), rng.uniform(1, 3)), chalk)
    return _to_image(_composite(board, alpha, chalk), grey=rng.random() < 0.3)


def _photo_jpeg(rng, digit):
    shape = _canvas_shape(rng, 320, 1000)
    height = rng.uniform(0.2, 0.6) * shape[0]
    alpha = _drawn(rng, digit, height, max(1.5, height * rng.uniform(0.05, 0.12)))
    board = rng.random() < 0.15
    ink, grain = (np.array([0.9, 0.9, 0.9]), 0.4) if board else _pen_ink(rng)
    if grain:
        alpha = alpha * _grain(rng, alpha.shape, grain)
    alpha = _place(alpha, shape, rng)
    shape = alpha.shape
    cast = np.array([1.0, rng.uniform(0.9, 1.02), rng.uniform(0.75, 1.0)])  # warm indoor light
    tone = rng.uniform(0.15, 0.3) if board else rng.uniform(0.6, 0.9)
    paper = _paper(rng, shape, tone, cast, light=0.35, texture=rng.uniform(0.01, 0.04), noise=0.0)
    if not board and rng.random() < 0.3:
        paper = _ruled(rng, paper, rng.uniform(1.1, 1.6) * height)
    paper = _composite(paper, _specks(rng, shape, int(rng.integers(0, 8)), rng.uniform(1, 4)), ink)
    rgb = _composite(paper, alpha, ink * cast) * _photo_light(rng, shape)[:, :, None]
    im = _to_image(rgb)
    im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2) * max(shape) / 500))
    rgb = np.asarray(im, np.float32) / 255 + rng.normal(0, rng.uniform(0.005, 0.03), (*shape, 3))
    return _jpeg(_to_image(rgb.astype(np.float32)), rng.integers(15, 60))


def _large_canvas(rng, digit):
    side = rng.uniform(600, 1200)
    shape = (int(side * rng.uniform(0.6, 1.0)), int(side))
    height = rng.uniform(0.08, 0.25) * shape[0]
    brush = rng.uniform(3, 16)
    alpha = _place(_drawn(rng, digit, height, max(brush, 0.04 * height), pressure=0.1), shape, rng, margin=0.05)
    shape = alpha.shape
    dark_ink = rng.random() < 0.5
    paper, ink = (1.0, 0.0) if dark_ink else (0.0, 1.0)
    if rng.random() < 0.5:  # a tinted or slightly uneven page rather than a flat canvas
        tone = rng.uniform(0.85, 1.0) if dark_ink else rng.uniform(0.0, 0.2)
        bg = _paper(rng, shape, tone, [1, 1, 1], light=0.1, texture=0.01, noise=0.005)[:, :, 0]
    else:
        bg = np.full(shape, paper, np.float32)
    grey = bg * (1 - alpha) + ink * alpha
    return Image.fromarray(np.clip(grey * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def _thin_pen(rng, digit):
    shape = _canvas_shape(rng, 150, 600)
    height = rng.uniform(0.4, 0.8) * shape[0]
    alpha = _place(_drawn(rng, digit, height, rng.uniform(1.0, 2.5), pressure=0.2), shape, rng)
    shape = alpha.shape
    ink, _ = _pen_ink(rng)
    paper = _paper(rng, shape, rng.uniform(0.85, 0.98), [1, 1, rng.uniform(0.9, 1)], light=0.1,
                   texture=0.01, noise=rng.uniform(0.003, 0.015))
    return _to_image(_composite(paper, alpha, ink))


def _canvas_rgba(rng, digit):
    side = int(rng.uniform(200, 420))
    height = rng.uniform(0.5, 0.85) * side
    alpha = _place(_drawn(rng, digit, height, rng.uniform(8, 25) * side / 280, pressure=0.05), (side, side), rng)
    side = alpha.shape  # grown if the digit did not fit
    colour = 0 if rng.random() < 0.7 else 255  # the stroke colour; transparent pixels are black
    rgba = np.zeros((*side, 4), np.uint8)
    rgba[:, :, :3] = np.where(alpha[:, :, None] > 0, colour, 0)
    rgba[:, :, 3] = np.clip(alpha * 255 + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


_SKLEARN = {}


def _sklearn_digits():
    if not _SKLEARN:
        from digitlab.data import load_sklearn_digits

        ds = load_sklearn_digits("all")
        _SKLEARN["images"], _SKLEARN["labels"] = ds.images, ds.labels
    return _SKLEARN["images"], _SKLEARN["labels"]


def _sklearn_8x8(rng, digit):
    images, labels = _sklearn_digits()
    choices = np.flatnonzero(labels == digit)
    img = images[choices[rng.integers(len(choices))]].astype(np.float32) / 255
    side = int(rng.uniform(64, 256))
    method = Image.Resampling.NEAREST if rng.random() < 0.5 else Image.Resampling.BILINEAR
    big = np.asarray(Image.fromarray(img, "F").resize((side, side), method))
    m = int(side * rng.uniform(0.0, 0.3))
    big = np.pad(big, ((m, m), (m, m)))
    if rng.random() < 0.5:
        big = 1.0 - big
    return Image.fromarray(np.clip(big * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def _frame_filling(rng, digit):
    return _filling_the_frame(rng, digit, 16 if rng.random() < 0.5 else 28, oversample=6)


def _frame_filling_large(rng, digit):
    return _filling_the_frame(rng, digit, int(rng.integers(48, 257)), oversample=2)


def _filling_the_frame(rng, digit, side: int, oversample: int):
    """A size-normalised scan ``side`` px square of a digit drawn ``oversample`` times larger."""
    height = float(oversample * side)  # drawn large, then squeezed into the frame
    alpha = _drawn(rng, digit, height, height * rng.uniform(0.09, 0.16))
    rows, cols = np.nonzero(alpha > 0.05)
    alpha = alpha[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    # Size-normalised: stretched to touch all four sides of the frame; a narrow digit (a 1) keeps
    # its proportions, its height filling the frame.
    aspect = alpha.shape[1] / alpha.shape[0]
    width = side if aspect > 0.6 else max(2, round(side * aspect))
    fitted = np.asarray(Image.fromarray(alpha, "F").resize((width, side), Image.Resampling.BOX), np.float32)
    alpha = np.zeros((side, side), np.float32)
    left = (side - width) // 2
    alpha[:, left:left + width] = np.clip(fitted * rng.uniform(1.0, 1.6), 0, 1)
    paper, ink = (rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.25))
    if rng.random() < 0.5:
        paper, ink = ink, paper
    grey = paper * (1 - alpha) + ink * alpha + rng.normal(0, rng.uniform(0.0, 0.04), alpha.shape)
    return Image.fromarray(np.clip(grey * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def _canvas_marks(rng, digit):
    side = rng.uniform(600, 1200)
    shape = (int(side * rng.uniform(0.6, 1.0)), int(side))
    height = rng.uniform(0.1, 0.25) * shape[0]
    stroke = max(rng.uniform(3, 12), 0.06 * height)
    alpha = _place(_drawn(rng, digit, height, stroke, pressure=0.1), shape, rng, margin=0.15)
    shape = alpha.shape
    marks = _specks(rng, shape, int(rng.integers(2, 10)), rng.uniform(2, 0.3 * stroke + 3))
    for _ in range(int(rng.integers(0, 3))):  # short scribbles, well under the digit's size
        length = rng.uniform(0.1, 0.3) * height
        start = rng.uniform(0, 1, 2) * (np.array(shape[::-1]) - length)
        path = start + np.cumsum(rng.normal(0, length / 6, (6, 2)), axis=0)
        scribble = draw_strokes([path - path.min(axis=0)], rng.uniform(2, stroke), rng)
        top, left = (np.clip(path.min(axis=0)[::-1], 0, None)).astype(int)
        h, w = min(scribble.shape[0], shape[0] - top), min(scribble.shape[1], shape[1] - left)
        marks[top:top + h, left:left + w] = np.maximum(marks[top:top + h, left:left + w], scribble[:h, :w])
    if rng.random() < 0.4:  # part of a neighbouring digit, cut by the canvas edge
        other = _drawn(rng, int(rng.integers(10)), height, stroke, pressure=0.1)
        keep = int(other.shape[1] * rng.uniform(0.2, 0.45))
        piece = other[:, -keep:] if rng.random() < 0.5 else other[:, :keep]
        top = int(rng.uniform(0, max(1, shape[0] - piece.shape[0])))
        h = min(piece.shape[0], shape[0] - top)
        at_left = piece is not None and rng.random() < 0.5
        cols = slice(0, keep) if at_left else slice(shape[1] - keep, shape[1])
        marks[top:top + h, cols] = np.maximum(marks[top:top + h, cols], piece[:h])
    dark_ink = rng.random() < 0.5
    paper, ink = (1.0, 0.0) if dark_ink else (0.0, 1.0)
    coverage = np.maximum(alpha, marks)
    grey = paper * (1 - coverage) + ink * coverage
    return Image.fromarray(np.clip(grey * 255 + 0.5, 0, 255).astype(np.uint8), "L")


def _ballpoint_shadow(rng, digit):
    shape = _canvas_shape(rng, 200, 800)
    height = rng.uniform(0.3, 0.7) * shape[0]
    alpha = _place(_drawn(rng, digit, height, rng.uniform(1.0, 2.2) * max(1.0, shape[0] / 400), pressure=0.2),
                   shape, rng)
    shape = alpha.shape
    ink = np.array([rng.uniform(0.05, 0.15), rng.uniform(0.05, 0.2), rng.uniform(0.15, 0.5)])
    paper = _paper(rng, shape, rng.uniform(0.5, 0.75), [1, 1, rng.uniform(0.92, 1)], light=0.5,
                   texture=rng.uniform(0.01, 0.03), noise=rng.uniform(0.005, 0.015))
    h, w = shape
    yy = np.linspace(-1, 1, h, dtype=np.float32)[:, None]
    xx = np.linspace(-1, 1, w, dtype=np.float32)[None, :]
    angle = rng.uniform(0, 2 * math.pi)
    edge = math.cos(angle) * xx + math.sin(angle) * yy - rng.uniform(-0.6, 0.6)  # across the sheet
    shadow = 1.0 - rng.uniform(0.25, 0.5) * 0.5 * (1 + np.tanh(edge / rng.uniform(0.02, 0.12)))  # a soft step
    rgb = _composite(paper, alpha, ink) * shadow[:, :, None]
    return _to_image(rgb, grey=rng.random() < 0.3)


def _on_a_form(rng, digit, printed, askew: bool = False):
    """A pen digit on a form: ``printed(rng, shape, rows, cols)`` gives the form's printed lines
    (0..1, the shape of the page) around the digit's ink at ``rows``, ``cols``; they are printed in
    black, grey or a drop-out colour. ``askew``: the sheet photographed turned 1-5 degrees either
    way (the corners show more paper)."""
    shape = _canvas_shape(rng, 80, 400)
    alpha, ink, _ = _pen_written(rng, digit, shape, 0.65, 0.13)
    ah, aw = alpha.shape
    pad = int(0.4 * max(ah, aw))  # room for the form's lines around the digit
    alpha = _place(np.pad(alpha, pad), shape, rng)
    shape = alpha.shape
    rows, cols = np.nonzero(alpha > 0.05)
    lines = printed(rng, shape, rows, cols)
    colour = [[0.1, 0.1, 0.1], [0.45, 0.45, 0.45], [0.95, 0.5, 0.3], [0.5, 0.65, 0.95]][rng.integers(4)]
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.9, 1.0)])
    paper = _paper(rng, shape, rng.uniform(0.85, 0.98), tint, light=0.15, texture=rng.uniform(0.005, 0.02),
                   noise=rng.uniform(0.003, 0.015))
    page = _composite(_composite(paper, lines, colour), alpha, ink)
    im = _to_image(page, grey=rng.random() < 0.3)
    if askew:
        edge = np.concatenate([page[0], page[-1], page[:, 0], page[:, -1]])
        im = im.rotate(rng.choice([-1, 1]) * rng.uniform(1, 5), Image.BICUBIC,
                       fillcolor=tuple(int(v * 255 + 0.5) for v in np.median(edge, axis=0))[: len(im.getbands())])
    return _jpeg(im, rng.uniform(60, 90)) if rng.random() < 0.3 else im


def _box(rng, shape, rows, cols):
    """A form's box around the digit, from well inside it to touching or crossing it."""
    margin = int(rng.uniform(-0.03, 0.25) * max(np.ptp(rows), np.ptp(cols)))  # below 0: the digit crosses the box
    line = max(1, int(round(rng.uniform(0.004, 0.012) * max(shape))))
    top, left = max(0, rows.min() - margin), max(0, cols.min() - margin)
    bottom, right = min(shape[0], rows.max() + margin + 1), min(shape[1], cols.max() + margin + 1)
    box = np.zeros(shape, np.float32)
    box[top:bottom, left:right] = 1.0
    box[top + line:bottom - line, left + line:right - line] = 0.0
    return box


def _line_under(rng, shape, rows, cols):
    """A line to write on: under the digit, touching it or crossed by it, running 0.3-1.5 digit
    widths beyond it on each side."""
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    y = rows.max() + int(rng.uniform(-0.06, 0.1) * height)
    reach = rng.uniform(0.3, 1.5) * width
    line = max(1, int(round(rng.uniform(0.004, 0.012) * max(shape))))
    rule = np.zeros(shape, np.float32)
    rule[max(0, y - line // 2):y - line // 2 + line, max(0, int(cols.min() - reach)):int(cols.max() + reach) + 1] = 1.0
    return rule


def _notebook(rng, digit):
    """A digit on a notebook page: ruled lines every 1.1-1.6 digit heights across the page, the
    digit on one of them (touching or crossing it), and the page's margin line down the whole page,
    beside the digit or through its edge."""
    shape = _canvas_shape(rng, 100, 400)
    alpha, ink, _ = _pen_written(rng, digit, shape, 0.55, 0.13)
    alpha = _place(alpha, shape, rng, margin=0.1)
    shape = alpha.shape
    rows, cols = np.nonzero(alpha > 0.05)
    height, width = np.ptp(rows) + 1, np.ptp(cols) + 1
    line = max(1, int(round(rng.uniform(0.004, 0.01) * max(shape))))
    spacing = rng.uniform(1.1, 1.6) * height
    ruling = np.zeros(shape, np.float32)
    for y in np.arange((rows.max() + rng.uniform(-0.06, 0.1) * height) % spacing, shape[0], spacing).astype(int):
        ruling[y:y + line] = 1.0
    margin = np.zeros(shape, np.float32)
    x = max(1, cols.min() - int(rng.uniform(-0.1, 0.8) * width))
    margin[:, x:x + line] = 1.0
    tint = np.array([1.0, rng.uniform(0.96, 1.0), rng.uniform(0.9, 1.0)])
    paper = _paper(rng, shape, rng.uniform(0.85, 0.98), tint, light=0.15, texture=rng.uniform(0.005, 0.02),
                   noise=rng.uniform(0.003, 0.015))
    blue, grey = [0.35, 0.5, 0.9], [rng.uniform(0.2, 0.6)] * 3
    page = _composite(paper, ruling * rng.uniform(0.5, 1.0), blue if rng.random() < 0.6 else grey)
    page = _composite(page, margin * rng.uniform(0.5, 1.0), [0.9, 0.3, 0.35] if rng.random() < 0.6 else grey)
    im = _to_image(_composite(page, alpha, ink), grey=rng.random() < 0.3)
    return _jpeg(im, rng.uniform(60, 90)) if rng.random() < 0.3 else im


def _pen_in_view(rng, digit):
    """A photo of a digit on paper with the pen that wrote it (or a finger) lying on the sheet:
    a thick dark bar coming in from an edge, clear of the digit."""
    shape = _canvas_shape(rng, 120, 400)
    alpha, ink, height = _pen_written(rng, digit, shape, 0.55, 0.13)
    alpha = _place(alpha, shape, rng, margin=0.12)
    shape = alpha.shape
    rows, cols = np.nonzero(alpha > 0.05)
    paper = _paper(rng, shape, rng.uniform(0.8, 0.97), [1.0, rng.uniform(0.95, 1.0), rng.uniform(0.88, 1.0)],
                   light=0.2, texture=rng.uniform(0.005, 0.02), noise=rng.uniform(0.003, 0.015))
    page = _composite(paper, alpha, ink)
    pen = _pen_body(rng, shape, (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1), height)
    body = [rng.uniform(0.05, 0.3)] * 3 if rng.random() < 0.6 else [0.1, 0.15, rng.uniform(0.4, 0.6)]
    rgb = _composite(page, pen, body) * _photo_light(rng, shape)[:, :, None]
    im = _to_image(np.clip(rgb, 0, 1), grey=rng.random() < 0.3)
    return _jpeg(im, rng.uniform(60, 90)) if rng.random() < 0.5 else im


def _pen_body(rng, shape, box, height: float) -> np.ndarray:
    """Coverage of a pen lying on the page: a bar 0.25-0.45 digit heights thick from the edge with
    the most room beside the digit's ``box`` (top, left, bottom, right), pointing roughly away
    from that edge, and shortened until it is at least a tenth of a digit height clear of it."""
    h, w = shape
    top, left, bottom, right = box
    room = {"top": top, "bottom": h - bottom, "left": left, "right": w - right}
    edge = max(room, key=room.get)
    thick = rng.uniform(0.25, 0.45) * height
    clear = 0.1 * height + thick / 2
    # where it enters, along the edge (anywhere), and its direction (away from the edge, +-25 deg)
    across = w if edge in ("top", "bottom") else h
    at = rng.uniform(0.1, 0.9) * across
    inward = {"top": (0, 1), "bottom": (0, -1), "left": (1, 0), "right": (-1, 0)}[edge]
    start = {"top": (at, -thick), "bottom": (at, h + thick), "left": (-thick, at), "right": (w + thick, at)}[edge]
    turn = math.radians(rng.uniform(-25, 25))
    dx = inward[0] * math.cos(turn) - inward[1] * math.sin(turn)
    dy = inward[0] * math.sin(turn) + inward[1] * math.cos(turn)
    grown = (top - clear, left - clear, bottom + clear, right + clear)
    length = rng.uniform(0.3, 0.8) * max(h, w)
    for length in np.linspace(length, thick, 12):
        # the bar's axis, sampled: clear of the digit's box grown by ``clear``
        xs = start[0] + dx * np.linspace(0, length, 50)
        ys = start[1] + dy * np.linspace(0, length, 50)
        if not ((ys > grown[0]) & (xs > grown[1]) & (ys < grown[2]) & (xs < grown[3])).any():
            break
    im = Image.new("L", (w * _SUPER, h * _SUPER), 0)
    end = (start[0] + dx * length, start[1] + dy * length)
    ImageDraw.Draw(im).line([(start[0] * _SUPER, start[1] * _SUPER), (end[0] * _SUPER, end[1] * _SUPER)],
                            fill=255, width=max(1, int(thick * _SUPER)))
    r = thick * _SUPER / 2  # a rounded end
    ImageDraw.Draw(im).ellipse([end[0] * _SUPER - r, end[1] * _SUPER - r, end[0] * _SUPER + r, end[1] * _SUPER + r], fill=255)
    return np.asarray(im.reduce(_SUPER), np.float32) / 255


_SCENES = {
    "pen-on-paper": _pen_on_paper,
    "chalk": _chalk,
    "photo-jpeg": _photo_jpeg,
    "large-canvas": _large_canvas,
    "thin-pen": _thin_pen,
    "canvas-rgba": _canvas_rgba,
    "sklearn-8x8": _sklearn_8x8,
    "frame-filling": _frame_filling,
    "frame-filling-large": _frame_filling_large,
    "canvas-marks": _canvas_marks,
    "ballpoint-shadow": _ballpoint_shadow,
    "form-box": lambda rng, digit: _on_a_form(rng, digit, _box),
    "form-askew": lambda rng, digit: _on_a_form(rng, digit, _box, askew=True),
    "on-a-line": lambda rng, digit: _on_a_form(rng, digit, _line_under),
    "line-askew": lambda rng, digit: _on_a_form(rng, digit, _line_under, askew=True),
    "notebook": _notebook,
    "pen-in-view": _pen_in_view,
}


def make_handwriting_set(n_per_kind: int = 100, seed: int = 0, kinds=KINDS) -> list[tuple[Image.Image, int, str]]:
    """A labelled set of realistic, non-MNIST handwritten digits: ``n_per_kind`` images of each of
    ``kinds`` (see `KINDS`), labels cycling 0..9. Returns a list of (PIL image, label, kind).

    Image i of a kind depends only on (seed, kind, i). ``sklearn-8x8`` needs scikit-learn.
    """
    out = []
    for kind in kinds:
        if kind not in _SCENES:
            raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
        k = KINDS.index(kind)
        for i in range(n_per_kind):
            rng = np.random.default_rng([seed, k, i])
            out.append((_SCENES[kind](rng, i % 10), i % 10, kind))
    return out


def render_number(text: str, touching: bool = False, seed: int = 0,
                  styles: dict[str, str] | None = None, height: int = 60, boxes: bool = False,
                  degrees: float = 0.0, ruled: bool = False) -> Image.Image:
    """A written number, e.g. ``render_number("2026")``: one writer's digits ``height`` px tall
    left to right on light paper, as a greyscale PIL image.

    ``touching``: each digit is pushed left until its ink overlaps its neighbour's by a quarter of
    a stroke (at least 1 px) where they come closest; otherwise digits are separated by a gap of
    0.3-0.6 digit heights. ``styles`` maps a
    character to a style of `STYLES` (e.g. ``{"5": "broken"}``). ``boxes``: the digits (apart)
    are written in a comb of printed boxes, one for each (a postal code's field), the walls
    halfway between them. ``ruled``: the digits are written on a printed line, which runs under
    them (touching the lowest) and a third of a digit height beyond them on each side.
    ``degrees``: the page photographed turned this much counter-clockwise (the image grows to hold
    it; the corners show more paper).
    """
    if boxes and touching:
        raise ValueError("render_number writes digits in boxes apart, not touching")
    rng = np.random.default_rng(seed)
    slant = rng.normal(0.15, 0.1)
    width = max(1.5, height * rng.uniform(0.08, 0.12))
    styles = styles or {}
    digits = []
    for ch in text:
        if not ch.isdigit():
            raise ValueError(f"render_number draws digits only; got {ch!r} in {text!r}")
        h = height * rng.uniform(0.9, 1.1)
        digits.append(draw_strokes(digit_strokes(int(ch), rng, h, styles.get(ch), slant), width, rng, 0.2))
    margin = height // 2
    rows = max(d.shape[0] for d in digits) + 2 * margin
    canvas = np.zeros((rows, sum(d.shape[1] for d in digits) + 2 * margin + len(digits) * height), np.float32)
    x = margin
    spans = []  # each digit's columns
    for d in digits:
        top = margin + int(rng.integers(0, rows - 2 * margin - d.shape[0] + 1))
        if x > margin:
            x = _next_x(canvas, d, top, x, touching, width, rng, height)
        region = canvas[top:top + d.shape[0], x:x + d.shape[1]]
        np.maximum(region, d, out=region)
        spans.append((x, x + d.shape[1]))
        x += d.shape[1]
    canvas = canvas[:, : x + margin]
    if ruled:
        bottom = np.flatnonzero(canvas.max(axis=1) > 0.05)[-1]
        line = max(1, round(height / 30))
        canvas[bottom:bottom + line, spans[0][0] - height // 3:spans[-1][1] + height // 3] = 1.0
    if boxes:
        ink_rows = np.flatnonzero(canvas.max(axis=1) > 0.05)
        top, bottom = ink_rows[0] - margin // 3, ink_rows[-1] + margin // 3
        walls = [spans[0][0] - margin // 3, *((a[1] + b[0]) // 2 for a, b in zip(spans, spans[1:])), spans[-1][1] + margin // 3]
        line = max(1, round(height / 30))
        canvas[top:top + line, walls[0]:walls[-1] + line] = 1.0
        canvas[bottom:bottom + line, walls[0]:walls[-1] + line] = 1.0
        for wall in walls:
            canvas[top:bottom + line, wall:wall + line] = 1.0
    paper = _paper(rng, canvas.shape, rng.uniform(0.85, 0.97), [1, 1, 1], light=0.1, texture=0.01, noise=0.01)
    page = _to_image(_composite(paper, canvas, [0.1, 0.1, 0.15]), grey=True)
    if not degrees:
        return page
    grey = np.asarray(page)
    edge = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    return page.rotate(degrees, Image.BICUBIC, expand=True, fillcolor=int(np.median(edge)))


def _next_x(canvas, d, top, x, touching, width, rng, height) -> int:
    """Where the next digit's box starts: a clear gap, or so that its ink overlaps the ink before."""
    rows = slice(top, top + d.shape[0])
    ink_before = canvas[rows, :x] > 0.5
    ink_next = d > 0.5
    both = ink_before.any(axis=1) & ink_next.any(axis=1)
    right = np.where(ink_before.any(axis=1), x - 1 - np.argmax(ink_before[:, ::-1], axis=1), -1)
    left = np.argmax(ink_next, axis=1)
    if not both.any():
        return x
    gap = int(np.min(left[both] + x - right[both])) - 1  # clear columns between the inks now
    if touching:
        return x - gap - max(1, int(round(width / 4)))
    return x - gap + int(rng.uniform(0.3, 0.6) * height)
