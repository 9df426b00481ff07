"""`to_mnist`: a photo, scan or canvas drawing of one digit -> the 28x28 image MNIST would have made.

MNIST's digits were fitted into a 20x20 box keeping their aspect ratio, anti-aliased, and pasted
into 28x28 at the whole-pixel offset that puts their centre of mass nearest pixel (14, 14) (row,
column; within about half a pixel on each axis). A picture of a digit is far from that, so it goes
through:

1. `load.read_grey`: read and check the input, alpha composited, grey, huge images shrunk;
2. `find_ink`: decide which side is ink (dark on light or light on dark) from the border and the
   balance of light and dark; take the paper's level away, as it varies across the sheet (a
   morphological closing, which keeps a shadow's edge but not a pen stroke, or for a scan cut
   around its digit one level); threshold with Otsu and hysteresis to find the strokes; group
   stroke fragments into parts (connected components); take out a form's printed box around the
   digit, or a comb of boxes around a number, or the lines it is written on and a page's margin
   (thin straight lines, upright or a few degrees askew: `frames`), and threshold again without
   them;
3. `find_digit` keeps the largest part and the parts near it (specks, far marks, pieces cut by
   the frame and a pen lying on the page are dropped), and `fit_mnist` fits them: the longer
   side to 20 px by area-averaging (anti-aliasing), strokes much thinner than MNIST's thickened,
   pasted into 28x28 by the centre of mass.

The image operations are OpenCV's (``cv2``), on uint8 images. bench/handwriting.py measures what
these steps are worth against the usual tutorial shortcut (grey, plain resize to 28x28, invert)
and against a short OpenCV pipeline without them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from ..errors import ImageError
from .components import Components, dilate, label
from .frames import find_frames, find_rules
from .load import WORK_SIDE, read_grey
from .stats import median, quantile

SIDE = 28  # MNIST's image side
BOX = 20  # the box the digit's longer side is fitted into
CENTRE = 14.0  # where MNIST puts the centre of mass (row and column index)
SUPER = 4  # supersampling factor for the fit: work at 80 px, area-average down to 20
MNIST_STROKE = 2.0  # MNIST's median stroke width at 28x28 (2 * area / perimeter of pixels > 127)
THIN = 1.4  # strokes thinner than this (in 28x28 pixels) are thickened to MNIST_STROKE

BLANK_MESSAGE = "no digit found (the image is blank)"
DOT_MESSAGE = "no digit found (only a dot: a digit is drawn with at least one stroke)"
_SMALL = 64  # the polarity and the paper's level are judged on a copy shrunk to about this side
_TIGHT = 48  # smaller images are tight crops (a scan, an 8x8 digit): one paper level, all ink the digit
_MIN_CONTRAST = 25  # ink must differ from the paper by this many grey levels ...
_MIN_SNR = 6.0  # ... and by this many times the paper's noise
_NOISY = 5.0  # paper noise above this (grey levels) is smoothed before thresholding
_TWO_LEVELS = 0.94  # a scan cut around its digit: two levels explain this share of its variance,
_BEYOND = 0.0005  # ... and at most this share of its pixels lie beyond them
_KEEP_RATIO = 0.05  # parts smaller than this fraction of the largest are specks
_BIG_RATIO = 0.3  # ... and parts under this fraction must lie close to the digit to belong to it
_BULKY = 2.5  # a solid part cut by the edge this many times as thick as the writing's strokes is not writing
_SOLID = 0.8  # ... solid: filling this share of its convex hull


@dataclass(frozen=True)
class Ink:
    """What `find_ink` sees in an image, at working resolution (at most `WORK_SIDE` px a side).

    Attributes:
        residual: uint8 H x W, how far each pixel is from the paper towards the ink (0 on paper).
        floor, level: the residual of the faintest ink kept and of full ink (its 75th percentile).
        parts: the connected pieces of ink (`Components`); fragments closer than about a stroke
            width are one part, so a grainy chalk line stays whole. ``parts.labels`` covers each
            part's pixels and a small margin around them (the anti-aliased fringe), and ``box`` is
            the box of that; ``area`` counts the ink itself.
        stroke: estimated stroke width in working pixels (2 * area / perimeter of the ink mask).
        scale: input pixels per working pixel (1.0 unless the image was shrunk).
        polarity: +1 for dark ink on light paper, -1 for light ink on dark.
        threshold: the residual above which a pixel is surely ink (Otsu's, on the ink side).
    """

    residual: np.ndarray
    floor: float
    level: float
    parts: Components
    stroke: float
    scale: float
    polarity: int
    threshold: float

    def soft(self, top: int = 0, left: int = 0, bottom: int | None = None, right: int | None = None) -> np.ndarray:
        """Ink strength in 0..1 (float32; 0 = paper, 1 = full ink, anti-aliased edges between) of a
        region, by default the whole image."""
        region = self.residual[top:bottom, left:right].astype(np.float32)
        return np.clip((region - self.floor) / max(self.level - self.floor, 1.0), 0.0, 1.0)

    @cached_property
    def strength(self) -> np.ndarray:
        """`soft` of the whole image."""
        return self.soft()


@dataclass(frozen=True)
class Found:
    """What `find_digit` found in an image and how.

    Attributes:
        image: uint8 28 x 28, the MNIST-like digit (0 = background, 255 = ink).
        box: (left, top, right, bottom) of the digit in the input image's pixels, right and bottom
            exclusive.
        polarity: +1 if the ink was dark on light paper, -1 if light on dark.
        threshold: how far from the paper a pixel had to be to be surely ink, as a fraction of full
            contrast (0..1).
    """

    image: np.ndarray
    box: tuple[int, int, int, int]
    polarity: int
    threshold: float


def to_mnist(image) -> np.ndarray:
    """Turn an image of one handwritten digit into an MNIST-like uint8 28 x 28 array (0 = background,
    255 = ink), the digit's longer side 20 px, its centre of mass at (14, 14).

    ``image``: a path, bytes, binary file object, ``PIL.Image.Image`` or numpy array (uint8 or
    0..255 integers, or floats 0..1; H x W, H x W x 3 or H x W x 4) of any size up to
    `load.MAX_PIXELS`. Dark ink on light paper or light on dark; uneven lighting, shadows, paper
    texture, noise and specks are removed. If the image holds several digits, the largest one (with
    the pieces near it) is taken: use `segment` to read a number. `find_digit` also says where the
    digit was found and how.

    Raises `ImageError`: not an image, truncated file, empty or too large image, or a blank one.
    """
    return find_digit(image).image


def find_digit(image) -> Found:
    """`to_mnist`, with where the digit was found (its box in the input's pixels) and how (the
    polarity and the threshold chosen)."""
    ink = find_ink(image)
    crop, (top, left, bottom, right) = _crop(ink, _main_parts(ink))
    box = tuple(int(round(v * ink.scale)) for v in (left, top, right, bottom))
    return Found(fit_mnist(crop, ink.stroke), box, ink.polarity, ink.threshold / 255)


def find_ink(image) -> Ink:
    """Find the ink in an image: paper taken away, polarity decided, strokes grouped into parts, a
    form's box around the digit taken out.

    Raises `ImageError` (`BLANK_MESSAGE`) when nothing stands out from the paper.
    """
    grey, scale = read_grey(image, WORK_SIDE)
    tight = max(grey.shape) < _TIGHT
    scan = tight  # the paper is one level: a small scan, or a larger one cut around its digit
    if not tight:
        small, dark = _shrink(grey)
        scan = _fills_frame(grey, small, dark)
    residual, polarity, noise = _scan_residual(grey) if scan else ink_residual(grey, small, dark)
    # A noisy picture is averaged 3x3 before thresholding, as the eye does: its strokes are several
    # pixels wide, and clean images and small scans keep their one-pixel lines. Averaging 9 pixels
    # divides independent noise by 3, and JPEG's by 2.
    if not tight and noise > _NOISY:
        residual, noise = cv2.blur(residual, (3, 3)), noise / 2
    hist = _histogram(residual)
    # The paper: a picture's median pixel; a scan's level was taken away, so 0.
    paper = 0.0 if scan else float(np.searchsorted(np.cumsum(hist), hist.sum() / 2))
    floor = max(paper + 3.0 * noise, 5.0)
    residual, high, level, stroke, parts = _strokes(residual, hist, paper, floor, noise, tight)
    if not scan:  # a picture, not a scan: below a tenth of full ink is no ink
        floor = max(floor, 0.1 * level)  # (JPEG's ringing around a stroke, a faint halo)
    return Ink(residual, floor, level, parts, stroke, scale, polarity, high)


def _strokes(residual: np.ndarray, hist: np.ndarray, paper: float, floor: float, noise: float,
             tight: bool, boxes: int = 2) -> tuple[np.ndarray, float, float, float, Components]:
    """The strokes of a residual (its `_histogram` ``hist``): the pixels surely ink and the
    fainter ones near them, grouped into parts; frames around the digit (a form's box, a box in a
    box: at most ``boxes`` times), or the lines it is written on and a page's margin, taken out
    (not in a picture under `_TIGHT` px: all its ink is the digit). Returns (residual, the
    threshold, the level of full ink, the stroke width, the parts).

    Raises `ImageError` when there is no digit: nothing off the paper, too faint, or only a dot."""
    # Hysteresis: strokes are the pixels over the Otsu threshold of the pixels off the paper, plus
    # the weaker pixels near them (the faint parts of a pencil line or a chalk stroke, the grey
    # stems of an 8x8 digit), no further than a stroke width from strong ink: a faint ruled line
    # crossing the digit must not come with it.
    candidates = hist.copy()
    candidates[: int(floor) + 1] = 0
    if candidates.sum() == 0:
        raise ImageError(BLANK_MESSAGE)
    high = max(otsu(candidates), 4.0 * noise + paper, 0.5 * _MIN_CONTRAST)
    strong = residual >= high
    reach = min(max(round(stroke_width(strong)), 1), 20)
    mask = (residual >= max(0.4 * high, floor)) & dilate(strong, reach)
    stroke = stroke_width(mask)
    if tight:  # a scan of one digit: all its ink, anti-aliased fringe included, is the digit
        x, y, w, h = cv2.boundingRect(dilate(mask, 1).view(np.uint8))
        parts = Components(np.ones(mask.shape, np.int32), np.array([np.count_nonzero(mask)]),
                           np.array([[y, x, y + h, x + w]]))
    else:
        parts = _group(mask, min(max(round(0.5 * stroke), 1), 12))
        parts = Components(parts.labels, np.bincount(parts.labels[mask], minlength=len(parts) + 1)[1:], parts.box)
        printed = None  # the form's lines
        if boxes and len(parts):
            printed = find_frames(mask, parts)
            if printed is None:
                printed = find_rules(mask, parts)
        if printed is not None:
            # A form's box around the digit, or the line it is written on, is not part of it. Its
            # ink is also taken out of the threshold: a printed box darker than a pencil digit
            # would put Otsu's threshold between them. With nothing left inside, the box was the
            # digit (a square 0).
            without = residual * ~dilate(printed, 1)
            try:
                return _strokes(without, _histogram(without), paper, floor, noise, tight, boxes - 1)
            except ImageError:
                pass
    if not len(parts):
        raise ImageError(BLANK_MESSAGE)
    main = int(np.argmax(parts.area))
    t, l, b, r = parts.box[main]
    main_ink = mask[t:b, l:r] & (parts.labels[t:b, l:r] == main + 1)
    level = _percentile(residual[t:b, l:r], main_ink, 0.75)
    if parts.area[main] < max(4.0, 2e-5 * residual.size) or level < _MIN_CONTRAST or level - paper < _MIN_SNR * noise:
        raise ImageError(BLANK_MESSAGE)
    _, _, w, h = cv2.boundingRect(main_ink.view(np.uint8))
    # A disk is 2 stroke widths across (its 2 area / perimeter is its radius). But a scan is cut
    # around its digit: a mark across most of its frame is the digit (a thick 1 in an 8x8 scan).
    spans_frame = tight and (h >= 0.75 * residual.shape[0] or w >= 0.75 * residual.shape[1])
    if max(w, h) < 3 * stroke and not spans_frame:
        raise ImageError(DOT_MESSAGE)
    return residual, high, level, stroke, parts


def _shrink(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A copy of a uint8 grey image shrunk to about `_SMALL` px a side (area-averaged), and its
    pixels at or below Otsu's threshold (the darker class)."""
    height, width = grey.shape
    k = max(1, math.ceil(max(height, width) / _SMALL))
    small = cv2.resize(grey, (max(1, width // k), max(1, height // k)), interpolation=cv2.INTER_AREA) if k > 1 else grey
    threshold, _ = cv2.threshold(small, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    return small, small <= threshold


def _fills_frame(grey: np.ndarray, small: np.ndarray, dark: np.ndarray) -> bool:
    """Whether a picture is a scan cut around its digit, whatever its size (a size-normalised
    digit at 64 or 128 px, its ink touching the frame). Three tests, each of which a page under a
    shadow's straight edge, the picture most like such a scan, mostly fails:

    - the rarer of Otsu's two classes of the small copy runs from edge to edge, and it is strokes,
      not a region (2 x area / perimeter at most a fifth of the side; a shadow is a region);
    - away from the edges between them, the two classes explain at least `_TWO_LEVELS` of the
      variance that is not noise (no gradient; a blurred or noisy scan is still two levels);
    - at full size, at most `_BEYOND` of the pixels lie beyond the two levels by half the gap
      between them (a page's thin ink is darker than the shadow; a scan's ink is a level)."""
    share = np.count_nonzero(dark) / dark.size  # of the darker class
    rarer = dark if share < 0.5 else ~dark
    if not rarer.any():
        return False
    _, _, w, h = cv2.boundingRect(rarer.view(np.uint8))
    if h < small.shape[0] and w < small.shape[1]:
        return False
    if stroke_width(rarer) > 0.2 * min(small.shape):
        return False
    inner_dark = cv2.erode(dark.view(np.uint8), _SQUARE3)
    inner_light = cv2.erode((~dark).view(np.uint8), _SQUARE3)
    if not inner_dark.any() or not inner_light.any():
        return False
    mean_dark, sd_dark = (v[0, 0] for v in cv2.meanStdDev(small, mask=inner_dark))
    mean_light, sd_light = (v[0, 0] for v in cv2.meanStdDev(small, mask=inner_light))
    within = share * sd_dark**2 + (1 - share) * sd_light**2
    total = within + share * (1 - share) * (mean_light - mean_dark) ** 2
    noise = noise_level(small) ** 2
    if within - noise > (1 - _TWO_LEVELS) * (total - noise):
        return False
    reach = 0.5 * (mean_light - mean_dark)
    beyond = np.count_nonzero(grey < mean_dark - reach) + np.count_nonzero(grey > mean_light + reach)
    return beyond <= _BEYOND * grey.size


def ink_residual(grey: np.ndarray, small: np.ndarray, dark: np.ndarray) -> tuple[np.ndarray, int, float]:
    """Separate ink from paper in a uint8 grey H x W image.

    The polarity is judged on a copy shrunk to about `_SMALL` px (`_polarity`).

    The paper's level (`_scan_residual` does scans): a morphological closing of the shrunk
    copy (an opening for light ink) with a kernel a third of its side, smoothed and enlarged back:
    it removes strokes, which are narrower than the kernel, and keeps what varies over larger
    distances (lighting gradients, vignetting, a shadow and its edge).

    Returns (residual, polarity, noise): residual uint8 H x W, each pixel's distance from the
    paper towards the ink (about 0 on paper); polarity +1 for dark ink, -1 for light ink; the
    residual's noise (`noise_level`).
    """
    height, width = grey.shape
    noise = noise_level(grey)
    polarity = _thin_line_polarity(grey, noise) or _polarity(small, dark, scan=False)
    size = max(3, min(small.shape) // 3) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_RECT, (size, size))
    # Beyond the border the paper is extrapolated (an odd reflection keeps its slope): repeating
    # the edge would make the darker edge of a vignette look like ink to the closing.
    pad = size // 2 + 1
    edge = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REPLICATE).astype(np.int16)
    mirror = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_REFLECT_101).astype(np.int16)
    extended = np.clip(2 * edge - mirror, 0, 255).astype(np.uint8)  # 2 f(0) - f(d) beyond the edge
    paper = cv2.morphologyEx(extended, cv2.MORPH_CLOSE if polarity == 1 else cv2.MORPH_OPEN, kernel)
    paper = cv2.blur(paper, (size // 2 | 1, size // 2 | 1))[pad:-pad, pad:-pad]
    paper = cv2.resize(paper, (width, height), interpolation=cv2.INTER_LINEAR)
    return _towards_ink(grey, paper, polarity), polarity, noise


def _towards_ink(grey: np.ndarray, paper, polarity: int) -> np.ndarray:
    """How far each pixel is from the ``paper`` level (an image, or one level) towards the ink,
    uint8. Dark ink is measured as a fraction of the paper's brightness, 255 * (paper - grey) /
    paper: light falling on the sheet multiplies paper and ink alike, so a stroke reads the same in
    a sheet's bright and dim parts. Light ink (chalk on a board), whose board reflects little of
    the light, is measured as the difference, grey - paper."""
    if polarity == -1:
        return cv2.subtract(grey, paper) if isinstance(paper, np.ndarray) else np.clip(grey.astype(np.float32) - paper, 0, 255).astype(np.uint8)
    paper = paper if isinstance(paper, np.ndarray) else np.full_like(grey, int(round(paper)))
    return cv2.divide(cv2.subtract(paper, grey), np.maximum(paper, 1), scale=255)


def _thin_line_polarity(grey: np.ndarray, noise: float) -> int | None:
    """+1 or -1 if the image holds thin lines (up to about 3 px, at half size beyond 500 px)
    clearly darker, or clearly lighter, than what surrounds them; None if it does not say. A
    ballpoint's strokes are such lines; a shadow's edge, the paper inside a 0 and a thick stroke's
    body are not, so this judges thin writing under uneven light where `_polarity` cannot."""
    half = cv2.pyrDown(grey) if max(grey.shape) > 500 else grey
    floor = 4 * noise + 8
    dark_lines = cv2.morphologyEx(half, cv2.MORPH_BLACKHAT, _SQUARE5) > floor
    light_lines = cv2.morphologyEx(half, cv2.MORPH_TOPHAT, _SQUARE5) > floor
    dark, light = np.count_nonzero(dark_lines), np.count_nonzero(light_lines)
    # Lines cover a fair share of the image; the other side's responses (grain, the crevice where
    # two thick strokes meet) are few.
    if max(dark, light) < 0.003 * half.size or max(dark, light) < 4 * min(dark, light):
        return None
    # And lines are ink: darker than most of the image if dark, lighter if light. Narrow gaps of
    # paper between thick strokes (the blocks of an enlarged 8x8 digit) are lines of the paper's
    # own level, and say nothing.
    polarity, lines = (1, dark_lines) if dark > light else (-1, light_lines)
    return polarity if polarity * (_percentile(half, None, 0.5) - _percentile(half, lines, 0.5)) > 0 else None


def _scan_residual(grey: np.ndarray) -> tuple[np.ndarray, int, float]:
    """`ink_residual` for a scan cut around its digit (under `_TIGHT` px, or `_fills_frame`): the
    paper is one level, the polarity is judged from the frame (`_polarity`), and the noise is the
    spread of the paper's pixels (an edge filter would take a small digit's strokes for noise)."""
    threshold, _ = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    dark = grey <= threshold
    polarity = _polarity(grey, dark, scan=True)
    paper_pixels = grey[~dark] if polarity == 1 else grey[dark]
    level = median(paper_pixels)
    noise = 1.4826 * median(np.abs(paper_pixels.astype(np.int16) - round(level)))
    return _towards_ink(grey, level, polarity), polarity, noise


def _group(mask: np.ndarray, join: int) -> Components:
    """The parts of a mask: its pixels closer than ``join`` (a dilation) are one part. Labelled
    at half size when the mask is large (the dilation keeps the pieces joined), and the labels
    enlarged back: connected components cost in proportion to the pixels."""
    grown = dilate(mask, join)
    if max(mask.shape) <= 256:
        return label(grown)
    half = label(grown[::2, ::2])
    height, width = mask.shape
    labels = cv2.resize(half.labels, (width, height), interpolation=cv2.INTER_NEAREST) * grown
    box = np.clip(2 * half.box + [-1, -1, 1, 1], 0, [height, width, height, width])  # within a pixel
    return Components(labels, 4 * half.area, box)


def _percentile(values: np.ndarray, where: np.ndarray | None, q: float) -> float:
    """The ``q`` quantile (0..1) of the uint8 ``values`` where ``where`` holds (None: everywhere)."""
    hist = cv2.calcHist([values], [0], None if where is None else where.view(np.uint8), [256], [0, 256]).ravel()
    return float(np.searchsorted(np.cumsum(hist), q * hist.sum()))


def _polarity(small: np.ndarray, dark: np.ndarray, scan: bool) -> int:
    """+1 if the ink is darker than the paper, -1 if lighter, judged on a small copy split by
    Otsu's threshold into ``dark`` and light.

    Ink is the side with the tail of outliers from the local paper level (a median over a quarter
    of the image: it follows a shadow's edge, and strokes are too thin to move it); paper inside a
    0 or an 8 is no outlier. In a ``scan`` cut around its digit, or when neither tail clearly wins
    (ink covering much of the image moves the median), the paper is the class that holds most of
    the image's border (a scan's frame: its outermost pixels, which a thick stroke touching the
    frame covers less than a deeper ring); when the border is split evenly (ink touching the frame
    all round), the class cut into more pieces; failing that, the class that holds most of the
    image."""
    if not scan:
        local = cv2.medianBlur(small, max(3, min(small.shape) // 4) | 1)
        deviation = small.astype(np.int16) - local
        spread = max(1.4826 * median(np.abs(deviation), mean_of_middle=True), 2.0)
        darker = float(np.maximum(-deviation - 3 * spread, 0).sum())
        lighter = float(np.maximum(deviation - 3 * spread, 0).sum())
        if max(darker, lighter) > 3 * min(darker, lighter):
            return 1 if darker > lighter else -1
    border = _ring_fraction(dark, 1 if scan else None)
    if abs(border - 0.5) > 0.15:
        return 1 if border < 0.5 else -1  # the border is mostly paper
    # Ink touching the frame on several sides: the strokes are one piece (or two), and they cut
    # the paper into several (the holes of an 8, the corners left of a 0).
    pieces_dark, pieces_light = _pieces(dark), _pieces(~dark)
    if pieces_dark != pieces_light:
        return 1 if pieces_dark < pieces_light else -1
    return 1 if dark.mean() < 0.5 else -1  # the image is mostly paper


def _pieces(mask: np.ndarray) -> int:
    """How many 8-connected pieces of ``mask`` hold at least 2% of the image."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    return int(np.count_nonzero(stats[1:, cv2.CC_STAT_AREA] >= 0.02 * mask.size))


def _histogram(a: np.ndarray) -> np.ndarray:
    """Counts of each grey level 0..255 of a uint8 image, float64."""
    return cv2.calcHist([a], [0], None, [256], [0, 256]).ravel().astype(np.float64)


def noise_level(grey: np.ndarray) -> float:
    """The standard deviation of the image's noise, in grey levels (Immerkaer's estimator): a 3x3
    filter that cancels every plane, so that it sees the noise and the edges only, and the median
    of its magnitude, which the edges (a minority of the pixels) do not move. Measured on the
    central 128 x 128 pixels at most."""
    h, w = grey.shape
    top, left = max(0, h // 2 - 64), max(0, w // 2 - 64)
    sample = grey[top : top + 128, left : left + 128]
    magnitude = np.abs(cv2.filter2D(sample, cv2.CV_16S, _NOISE_FILTER, borderType=cv2.BORDER_REFLECT))
    return median(magnitude) / (0.6745 * 6.0)


_SQUARE3 = np.ones((3, 3), np.uint8)
_SQUARE5 = np.ones((5, 5), np.uint8)
_NOISE_FILTER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)  # noise x 6, planes x 0


def otsu(hist: np.ndarray) -> float:
    """Otsu's threshold t for a histogram of levels 0..n-1: levels >= t and < t are the two
    classes of least within-class variance."""
    levels = np.arange(len(hist), dtype=np.float64)
    weight = np.cumsum(hist)
    mass = np.cumsum(hist * levels)
    total, total_mass = weight[-1], mass[-1]
    w0, w1 = weight[:-1], total - weight[:-1]
    valid = (w0 > 0) & (w1 > 0)
    if not valid.any():
        return float(np.flatnonzero(hist)[0]) if total else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty class: its level is not a candidate
        between = w0 * w1 * (mass[:-1] / w0 - (total_mass - mass[:-1]) / w1) ** 2
    between[~valid] = -1.0
    return float(np.argmax(between) + 1)


def stroke_width(mask: np.ndarray) -> float:
    """Mean stroke width of a boolean mask, 2 x area / perimeter (exact for long strokes); the
    perimeter is the number of pixels on the mask's edge."""
    area = int(np.count_nonzero(mask))
    if area == 0:
        return 0.0
    m = mask.view(np.uint8)
    edge = area - int(np.count_nonzero(cv2.erode(m, _SQUARE3, borderType=cv2.BORDER_CONSTANT, borderValue=0)))
    return 2.0 * area / max(edge, 1)


def _ring_fraction(mask: np.ndarray, width: int | None = None) -> float:
    """The fraction of the outer border's pixels that are set, the border being ``width`` px wide,
    by default about 3% of the shorter side (at least 1 px)."""
    b = width or max(1, round(0.03 * min(mask.shape)))
    if min(mask.shape) <= 2 * b:
        return np.count_nonzero(mask) / mask.size
    inner = mask[b:-b, b:-b]
    return (np.count_nonzero(mask) - np.count_nonzero(inner)) / (mask.size - inner.size)


def _main_parts(ink: Ink) -> list[int]:
    """The digit: the largest part, and every part of some size near it (a 5's detached flag, a
    broken stroke); specks, far-away marks, a piece of another digit cut by the frame and a pen or
    a finger lying on the page (`_bulky`) are left out. Returns 0-based part indices."""
    if len(ink.parts) == 1:
        return [0]
    area, box = ink.parts.area.astype(np.float64), ink.parts.box
    height, width = ink.residual.shape
    # A part cut by the image's edge, in a picture where the digit has room, is likely a piece of
    # something else (a neighbouring digit, a fold): it competes at half its size.
    cut = (box[:, 0] == 0) | (box[:, 1] == 0) | (box[:, 2] == height) | (box[:, 3] == width)
    roomy = np.maximum(box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]) < 0.5 * max(height, width)
    score = np.where(cut & roomy, 0.5 * area, area)
    # A thick region cut by the edge (a pen or a finger on the sheet, the edge of a desk) is not
    # writing at all, and is left out.
    bulky = _bulky(ink, cut, area)
    score[bulky] = -1.0
    main = int(np.argmax(score))
    chosen = [main]
    top, left, bottom, right = box[main]
    candidates = [i for i in np.argsort(-area) if i != main and not bulky[i] and area[i] >= _KEEP_RATIO * area[main]]
    added = True
    while added:
        added = False
        size = max(bottom - top, right - left)
        for i in candidates:
            if i in chosen:
                continue
            # A big part may stand a little apart (a 4's second stroke); a small one must be
            # close (a pen skip, a 5's flag), or it is dust or a smudge; a dot (a few stroke
            # widths across) must touch the digit's box: a pen's stroke is longer than it is wide.
            # And when the digit lies inside the picture, a part cut by the edge comes in from
            # beyond it (a pen, a finger, the next digit) unless it reaches into the digit's box.
            t, l, b, r = box[i]
            dot = max(b - t, r - l) <= 2.5 * ink.stroke
            margin = (0.35 if area[i] >= _BIG_RATIO * area[main] else 0.0 if dot else 0.25) * size
            if cut[i] and not cut[main]:
                margin = 0.0
            if t < bottom + margin and b > top - margin and l < right + margin and r > left - margin:
                chosen.append(int(i))
                top, left, bottom, right = min(top, t), min(left, l), max(bottom, b), max(right, r)
                added = True
    return chosen


def _bulky(ink: Ink, cut: np.ndarray, area: np.ndarray) -> np.ndarray:
    """Which parts (boolean) are solid, thick regions cut by the picture's edge: parts of some
    size whose widest point (twice the radius of the largest disk inside) is over `_BULKY` times
    as wide as the strokes (2 x area / perimeter) of the thickest part of some size inside the
    picture and over a tenth of their own length, and that fill most of their convex hull (a
    digit cut by the edge is strokes, however thick)."""
    sized = area >= _KEEP_RATIO * area.max()
    bulky = np.zeros(len(area), bool)
    if (sized & cut).any() and (sized & ~cut).any():
        inside = max(stroke_width(_part_ink(ink, i)) for i in np.flatnonzero(sized & ~cut))
        for i in np.flatnonzero(sized & cut):
            part = cv2.copyMakeBorder(_part_ink(ink, i).view(np.uint8), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
            widest = 2 * float(cv2.distanceTransform(part, cv2.DIST_L2, 3).max())
            if widest > _BULKY * inside and widest > 0.1 * max(part.shape):
                outline = max(cv2.findContours(part, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)[0], key=cv2.contourArea)
                bulky[i] = np.count_nonzero(part) > _SOLID * cv2.contourArea(cv2.convexHull(outline))
    return bulky


def _part_ink(ink: Ink, i: int) -> np.ndarray:
    """The ink of part ``i`` (boolean), in its box."""
    t, l, b, r = ink.parts.box[i]
    return (ink.parts.labels[t:b, l:r] == i + 1) & (ink.residual[t:b, l:r] >= ink.threshold)


def _crop(ink: Ink, chosen: list[int]) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """The ink strength of the chosen parts only, cropped to their bounding box.

    Returns (crop float32 h x w, box (top, left, bottom, right) in working pixels)."""
    boxes = ink.parts.box[chosen]
    top, left = boxes[:, 0].min(), boxes[:, 1].min()
    bottom, right = boxes[:, 2].max(), boxes[:, 3].max()
    crop = ink.soft(top, left, bottom, right) * ink.parts.mask(chosen, top, left, bottom, right)
    # Trimmed to the ink: the parts' boxes are known to a dilation's width near the image's edge.
    x, y, w, h = cv2.boundingRect((crop > 0).view(np.uint8))
    if w == 0:
        raise ImageError(BLANK_MESSAGE)
    top, left = top + y, left + x
    return crop[y : y + h, x : x + w], (int(top), int(left), int(top + h), int(left + w))


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
        # full strength (its typical trace to 1) before widening it by a disk of radius `grow`.
        trace = fine[fine > 0.02]
        fine = np.clip(fine / max(quantile(trace, 0.9) if trace.size else 1.0, 1e-3), 0.0, 1.0)
        disk = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
        fine = cv2.dilate(cv2.copyMakeBorder(fine, grow, grow, grow, grow, cv2.BORDER_CONSTANT, value=0), disk)
    small = _to_uint8(_reduce(fine, SUPER))  # quantised first: the centre below is the output's
    moments = cv2.moments(small)
    if moments["m00"] <= 0:
        raise ImageError(BLANK_MESSAGE)
    cy, cx = moments["m01"] / moments["m00"], moments["m10"] / moments["m00"]
    top, left = math.floor(CENTRE - cy + 0.5), math.floor(CENTRE - cx + 0.5)
    out = np.zeros((SIDE, SIDE), dtype=np.uint8)
    h, w = small.shape
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + h, SIDE), min(left + w, SIDE)
    out[r0:r1, c0:c1] = small[r0 - top:r1 - top, c0 - left:c1 - left]
    return out


def _resize_longest(ink: np.ndarray, side: int) -> np.ndarray:
    """Resize so that the longer side is ``side`` px, keeping the aspect ratio: area-averaging when
    shrinking, cubic when enlarging (bilinear blurs a small scan's strokes: scikit-learn's 8x8
    digits read 81% enlarged bilinearly, 93% cubically)."""
    height, width = ink.shape
    s = side / max(height, width)
    size = (max(1, round(width * s)), max(1, round(height * s)))
    if size == (width, height):
        return ink.astype(np.float32)
    method = cv2.INTER_AREA if s < 1 else cv2.INTER_CUBIC
    return np.clip(cv2.resize(ink.astype(np.float32), size, interpolation=method), 0.0, 1.0)


def _reduce(fine: np.ndarray, k: int) -> np.ndarray:
    """Average k x k blocks, after padding each side evenly to a multiple of k."""
    h, w = fine.shape
    ph, pw = -h % k, -w % k
    fine = cv2.copyMakeBorder(fine, ph // 2, ph - ph // 2, pw // 2, pw - pw // 2, cv2.BORDER_CONSTANT, value=0)
    return cv2.resize(fine, ((w + pw) // k, (h + ph) // k), interpolation=cv2.INTER_AREA)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    return np.clip(np.floor(a * 255.0 + 0.5), 0, 255).astype(np.uint8)
