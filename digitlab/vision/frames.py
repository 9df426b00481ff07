"""Frames around a digit: a form's printed box, or a comb of boxes around a number (a postal
code's field), and ruled lines, a line to write on: upright or photographed a few degrees askew;
and the line down a page's margin.
`find_frames` and `find_rules` give their pixels, so that `preprocess.find_ink` can take them out
and threshold the ink again without them.

A frame is four thin, straight lines around the digit, which the digit may touch or cross. A
box askew is turned upright to find them (`_tilt` measures how far), and they are turned back;
so is a ruled line askew (`_line_tilt`).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from .components import Components, dilate, label
from .stats import median, quantile

_FRAME_SIDE = 0.9  # a frame around the digit (a form's box) runs along this share of each side,
_FRAME_RUN = 0.3  # ... in straight runs at least this share of the side long,
_FRAME_LINE = 0.05  # ... of lines at most this share of the longer side thick
_ASKEW = (0.25, 6.0)  # a frame turned up to 6 degrees is turned upright (if it passes as upright, from 0.25)
_RULE = 0.6  # a ruled line (a line to write on) is straight, thin, at least this many digit heights long,
_BEYOND = 0.05  # ... and reaches beyond the writing on both sides by this many digit heights
_SPECK = 0.05  # ink under this share of the largest piece is not writing (dust) for a ruled line to pass
_MARGIN = 16  # a part's box holds its ink and less than this margin (`preprocess` groups ink up to 12 px apart)
_UNDER = 0.25  # a line askew is not a 7's bar: its part's ink hangs no more than this many digit heights more under it than on it
_EDGE = 0.02  # a page's margin line runs from within this share of the picture's height of its top to its bottom


def find_frames(mask: np.ndarray, parts: Components) -> np.ndarray | None:
    """The pixels of frames, or None: the box of a form's field, printed or ruled by hand around
    the digit, which the digit may touch or cross (`_frame_lines`), upright or photographed a few
    degrees askew. Only parts at least as tall and as wide as the largest are looked at: a frame
    holds the digit, or is it."""
    frames = None
    box = parts.box
    size = box[:, 2:] - box[:, :2]
    for i in np.flatnonzero((size >= size[np.argmax(parts.area)]).all(axis=1)):
        t, l, b, r = box[i]
        crop = mask[t:b, l:r]
        lined = _lines_around(crop)
        if not (lined or _corners_inked(crop)):
            continue
        own = crop & (parts.labels[t:b, l:r] == i + 1)
        lines = None
        if _corners_inked(own):  # a box askew, turned upright; or one whose lines step aside
            angle = _tilt(own)
            if abs(angle) <= _ASKEW[1] and not (lined and abs(angle) < _ASKEW[0]):
                lines = _frame_lines_askew(own, crop, angle)
        if lines is None and lined:
            lines = _frame_lines(own, crop)
        if lines is not None:
            frames = np.zeros_like(mask) if frames is None else frames
            frames[t:b, l:r] |= lines
    return frames


def find_rules(mask: np.ndarray, parts: Components) -> np.ndarray | None:
    """The pixels of ruled lines, or None: a line to write on under a digit or a number, or the
    lines of ruled paper, which the writing may touch or cross; upright, or photographed a few
    degrees askew (the ends of the widest part say how far, `_line_tilt`, and the ink is turned
    upright to find the lines).

    A ruled line is a straight horizontal line (stepping a pixel aside as often as it likes), at
    most `_FRAME_LINE` of its length thick, at least `_RULE` times as long as the tallest part is
    tall, and reaching beyond the rest of the ink (specks left out) on both sides by `_BEYOND`
    times that height. A digit's longest stroke (a 2's base, a 7's bar) is shorter than the digit
    is tall, and digits written touching, whose strokes join into longer ones, have ink above them
    as far left and right. And a page's margin, a vertical line (`_margin`)."""
    tallest = int((parts.box[:, 2] - parts.box[:, 0]).max())
    big = parts.area >= _SPECK * parts.area.max()
    spanned = (int(parts.box[big, 1].min()), int(parts.box[big, 3].max()))  # the columns the writing spans
    rules = _rules(mask, tallest, spanned[1] - spanned[0])
    if rules is None:
        tilt = _line_tilt(mask, parts, tallest, spanned)
        if tilt is not None:
            angle, centre = tilt
            rules = _turned_upright(lambda upright: _rules(upright, tallest, spanned[1] - spanned[0], askew=True),
                                    mask, angle, centre)
    margin = _margin(mask, rules)
    if margin is None:
        return rules
    return margin if rules is None else rules | margin


def _rules(mask: np.ndarray, tallest: int, spanned: int, askew: bool = False) -> np.ndarray | None:
    """`find_rules`' upright lines, the writing ``tallest`` px tall at most and ``spanned`` px
    wide. ``askew``: the ink was turned upright by an estimate of its tilt, and a line may still
    drift a row or two over its length."""
    shortest = math.ceil(_RULE * tallest)
    # Cheap first: a ruled line spans the writing, so only thin runs of rows with ink along most
    # of it and that long, and the rows either side of them, are searched (a line of one row, or
    # two where it steps aside once; a line that drifts is counted three rows at a time).
    ink = mask.view(np.uint8)
    ink = cv2.dilate(ink, np.ones((3, 1), np.uint8)) if askew else ink
    rows = cv2.reduce(ink, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    band = _band(rows, max(0.8 * shortest, 0.85 * spanned), mask.shape[1], spread=int(askew))
    if band is None:
        return None
    along = np.zeros_like(mask)
    along[band] = _straight(mask[band], (1, shortest), aside=1).view(bool)
    if not along[band].any():
        return None
    lines = label(along[band])
    rules, writing = None, None
    for i in range(len(lines)):
        t, l, b, r = lines.box[i]
        length = r - l
        line = lines.labels[t:b, l:r] == i + 1
        t, b = t + band.start, b + band.start
        if median(np.count_nonzero(line, axis=0)) > max(2, _FRAME_LINE * length):
            continue  # a bar, not a line
        if writing is None:
            writing = _writing(mask, along, across=True)
        beyond = math.ceil(_BEYOND * tallest)
        if writing[l + beyond : r - beyond].sum() < writing.sum():
            continue  # it does not reach beyond the writing on both sides
        rules = np.zeros_like(mask) if rules is None else rules
        rules[t:b, l:r] |= line
    return rules


def _band(counts: np.ndarray, least: float, length: int, spread: int = 0) -> slice | None:
    """Where to look for thin lines up to ``length`` px long: from the first to the last run of
    ``counts`` (of ink in each row, or column) at least ``least`` that is no thicker than such a
    line (`_FRAME_LINE` of its length, a step aside and a fringe, and ``spread`` rows either side
    where each count was taken over several rows): a thicker run is a stroke's body. With two
    rows and ``spread`` either side; None if there is none."""
    if counts.max() < least:
        return None
    thick = max(2, _FRAME_LINE * length) + 2 + 2 * spread
    runs = [(a, z) for a, z in _runs(counts >= least) if z - a <= thick]
    return slice(max(0, runs[0][0] - 2 - spread), runs[-1][1] + 2 + spread) if runs else None


def _margin(mask: np.ndarray, rules: np.ndarray | None) -> np.ndarray | None:
    """The line of a page's margin, or None: a thin, straight vertical line (stepping a pixel
    aside as often as it likes) from the picture's top edge to its bottom edge (within `_EDGE` of
    its height), at most `_FRAME_LINE` of its length thick, with the writing (the ink away from it
    and from the ruled lines ``rules``, specks left out) `_BEYOND` of the height clear of both
    edges. A digit's stroke runs from edge to edge only in a scan cut around it."""
    height = mask.shape[0]
    longest = math.ceil((1 - 2 * _EDGE) * height)
    # Cheap first: only thin runs of columns with ink along that much of the height, and the
    # columns beside them.
    cols = cv2.reduce(mask.view(np.uint8), 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel()
    band = _band(cols, longest, height)
    if band is None:
        return None
    along = np.zeros_like(mask)
    along[:, band] = _straight(mask[:, band], (longest, 1), aside=1).view(bool)
    lines = label(along[:, band])
    margin, writing = None, None
    for i in range(len(lines)):
        t, l, b, r = lines.box[i]
        line = lines.labels[t:b, l:r] == i + 1
        if t > _EDGE * height or b < (1 - _EDGE) * height:
            continue  # not from edge to edge
        if median(np.count_nonzero(line, axis=1)) > max(2, _FRAME_LINE * (b - t)):
            continue  # a bar, not a line
        if writing is None:
            writing = _writing(mask, along if rules is None else along | rules, across=False)
        beyond = math.ceil(_BEYOND * height)
        if writing[beyond : height - beyond].sum() < writing.sum():
            continue  # the writing comes as near the edges as the line
        margin = np.zeros_like(mask) if margin is None else margin
        margin[t:b, l + band.start : r + band.start] |= line
    return margin


def _writing(mask: np.ndarray, lines: np.ndarray, across: bool) -> np.ndarray:
    """The columns (``across``; else the rows) that the ink away from ``lines`` spans, specks
    left out: boolean."""
    rest = label(mask & ~dilate(lines, 2))
    writing = np.zeros(mask.shape[1 if across else 0], bool)
    lo, hi = (1, 3) if across else (0, 2)
    for k in np.flatnonzero(rest.area >= _SPECK * rest.area.max()) if len(rest) else []:
        writing[rest.box[k, lo] : rest.box[k, hi]] = True
    return writing


def _line_tilt(mask: np.ndarray, parts: Components, tallest: int, spanned: tuple[int, int]) -> tuple[float, tuple[float, float]] | None:
    """Cheap first: whether the widest part may hold a ruled line up to `_ASKEW` degrees askew, and
    if so how far it is turned (degrees clockwise as the image is seen, as `_tilt`) and the middle
    of the line (x, y), or None. A ruled line reaches beyond the writing on both sides: the part
    runs from the writing's first column to its last, and its ink at each end is a thin line's
    end (a few rows deep); the line runs between the middles of its two ends."""
    widest = int(np.argmax(parts.box[:, 3] - parts.box[:, 1]))
    t, l, b, r = (int(v) for v in parts.box[widest])
    if (l, r) != spanned or r - l < _RULE * tallest:
        return None
    ends = []
    reach = max(2, math.ceil(_BEYOND * tallest))  # the columns at each end that are the line's alone
    strip = min(r - l, reach + _MARGIN)  # the line's end is in the box's first and last columns
    for side in (1, -1):  # the left end, then the right end (its columns read leftwards)
        cols = slice(l, l + strip) if side == 1 else slice(r - strip, r)
        own = (mask[t:b, cols] & (parts.labels[t:b, cols] == widest + 1))[:, ::side]
        inked = own.any(axis=0)
        if not inked.any():
            return None
        first = int(np.argmax(inked))
        rows, at = np.nonzero(own[:, first : first + reach])
        if np.ptp(rows) + 1 > max(3, _FRAME_LINE * (r - l)) + reach * math.tan(math.radians(_ASKEW[1])):
            return None  # a stroke's end, not a thin line's
        x = first + float(at.mean())
        ends.append((l + x if side == 1 else r - 1 - x, t + float(rows.mean())))
    (x0, y0), (x1, y1) = ends
    if abs(y1 - y0) < 1.0:
        return None  # level: the upright search has seen it
    if b - max(y0, y1) > min(y0, y1) - t + _UNDER * tallest:
        return None  # its part's ink hangs under it, with none on it: a 7's bar
    angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
    return (angle, ((x0 + x1) / 2, (y0 + y1) / 2)) if abs(angle) <= _ASKEW[1] else None


def _frame_lines_askew(own: np.ndarray, ink: np.ndarray, angle: float) -> np.ndarray | None:
    """`_frame_lines` of a part turned ``angle`` degrees (its ink ``own``, all the ``ink`` in its
    box): the part is turned upright about its middle, its lines found, and turned back."""
    height, width = own.shape
    turn = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
    upright_ink = _turn(ink, turn)
    if not _lines_around(upright_ink):
        return None
    return _turned_upright(lambda upright: _frame_lines(upright, upright_ink, aside=1), own, angle, ((width - 1) / 2, (height - 1) / 2))


def _turned_upright(find, ink: np.ndarray, angle: float, centre: tuple[float, float]) -> np.ndarray | None:
    """``find`` (a function of a mask, giving the pixels of lines, or None) on ``ink`` turned
    ``angle`` degrees counter-clockwise about ``centre`` (x, y), which makes lines turned that much
    clockwise upright; the lines found, turned back: the pixels of ``ink`` they touch."""
    height, width = ink.shape
    turn = cv2.getRotationMatrix2D(centre, angle, 1.0)
    lines = find(_turn(ink, turn))
    if lines is None:
        return None
    back = cv2.warpAffine(lines.view(np.uint8) * np.uint8(255), turn, (width, height), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    return (back > 0) & ink


def _turn(mask: np.ndarray, turn: np.ndarray) -> np.ndarray:
    """A mask moved by the affine map ``turn`` (nearest pixel), in a frame of its size."""
    height, width = mask.shape
    return cv2.warpAffine(mask.view(np.uint8), turn, (width, height), flags=cv2.INTER_NEAREST).view(bool)


def _lines_around(crop: np.ndarray) -> bool:
    """Cheap first: whether a part's box may be a frame. A frame's top and bottom lines are thin
    runs of rows with ink along at least half the part's width, over half its height apart; and
    its sides are such columns."""
    ink = crop.view(np.uint8)
    height, width = crop.shape
    return (_thin_lines_apart(cv2.reduce(ink, 1, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() >= 0.5 * width)
            and _thin_lines_apart(cv2.reduce(ink, 0, cv2.REDUCE_SUM, dtype=cv2.CV_32S).ravel() >= 0.5 * height))


def _corners_inked(mask: np.ndarray) -> bool:
    """Whether a part's box has ink near each of its corners, as a frame turned up to `_ASKEW`
    degrees has: each of its corners is within an eighth of the longer side of one of the box's."""
    c = max(mask.shape) // 8 + 2
    return bool(mask[:c, :c].any() and mask[:c, -c:].any() and mask[-c:, :c].any() and mask[-c:, -c:].any())


def _tilt(own: np.ndarray) -> float:
    """How far (degrees, clockwise as the image is seen: rows run down) a part's outline is turned
    from upright: the median slope of its outermost ink seen from each of its four sides. A digit
    sticking out of one side is outvoted."""
    slopes = []
    for ink, sign in ((own, 1), (own.T, -1)):  # the top and bottom sides, then the left and right
        where = np.flatnonzero(ink.any(axis=0))
        half = len(where) // 2
        run = where[half : 2 * half] - where[:half]
        for first in (np.argmax(ink[:, where], axis=0), -np.argmax(ink[::-1, where], axis=0)):
            slopes.append(sign * (first[half : 2 * half] - first[:half]) / run)
    slopes = np.concatenate(slopes)
    return math.degrees(math.atan(quantile(slopes, 0.5))) if slopes.size else 0.0


def _frame_lines(own: np.ndarray, ink: np.ndarray, aside: int = 0) -> np.ndarray | None:
    """A frame's lines among a part's pixels ``own`` (all the ``ink`` in the part's box: the
    digit inside), or None if the part is not a frame.

    A frame is four thin, straight lines: runs of ink at least `_FRAME_RUN` of the side long, the
    outermost ones the part has across and down, which cover at least `_FRAME_SIDE` of the sides
    of the box they make (within 6% of its side, for a box photographed a little askew), and are
    at most `_FRAME_LINE` of its longer side thick. A written 0 meets its box at four points only.
    Ink may stick out of the box. ``aside``: the lines may step this many pixels aside (what is
    left of a box askew once it is turned upright)."""
    height, width = own.shape
    across = _straight(own, (1, math.ceil(_FRAME_RUN * width)), aside)
    down = _straight(own, (math.ceil(_FRAME_RUN * height), 1), aside)
    rows, cols = np.flatnonzero(across.any(axis=1)), np.flatnonzero(down.any(axis=0))
    if not rows.size or not cols.size:
        return None
    inner = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # the box the lines make
    own, across, down = own[inner], across[inner].view(bool), down[inner].view(bool)
    h, w = own.shape
    band = max(2, math.ceil(0.06 * min(h, w)))
    if min(h, w) <= 3 * band or not _along_sides(across, down, band):
        return None
    # The lines are the outermost run of ink across each side, as thick as the line typically is
    # (the median run): a stroke that touches or crosses the frame keeps what lies inside it. They
    # are thin (the straight sides of a blocky, enlarged 8x8 0 are strokes as thick as the
    # digit's). Each side is a strip: a row for each point along it, going inwards (top, right,
    # bottom, left: the image turned a quarter at a time).
    strips = [np.rot90(own, turn)[:band].T for turn in range(4)]
    first, end = _first_runs(np.concatenate(strips))
    depth = np.arange(band)
    lines, at, thickest = np.zeros_like(own), 0, 0.0
    for turn, strip in enumerate(strips):
        f, e = first[at : at + len(strip), None], end[at : at + len(strip), None]
        at += len(strip)
        thickness = median((e - f)[e > f])
        if thickness > _FRAME_LINE * max(h, w):
            return None
        np.rot90(lines, turn)[:band] |= ((depth >= f) & (depth < np.minimum(e, f + thickness))).T
        thickest = max(thickest, thickness)
    # A comb of boxes (a postal code's field): the walls between them run from the top line to
    # the bottom one (counted ``aside`` columns either side for walls that step aside), and are as
    # thin as the frame's lines. A lone wall with no ink on one side is a 1 written from the top
    # line to the bottom one.
    full = np.count_nonzero(cv2.dilate(down.view(np.uint8), np.ones((1, 2 * aside + 1), np.uint8)), axis=0) >= _FRAME_SIDE * h
    walls = [(a, z) for a, z in _runs(full) if z - a <= thickest + 1 + 2 * aside and a >= band and z <= w - band]
    if len(walls) == 1:
        a, z = walls[0]
        inside = ink[inner] & ~lines
        if not (inside[:, band : max(band, a - band)].any() and inside[:, z + band : w - band].any()):
            walls = []
    for a, z in walls:
        lines[:, a:z] |= down[:, a:z]
    out = np.zeros((height, width), bool)
    out[inner] = lines
    return out


def _straight(own: np.ndarray, run: tuple[int, int], aside: int = 0) -> np.ndarray:
    """The pixels of ``own`` on straight lines at least ``run`` (rows, columns: a row or a column)
    long, the line allowed to step ``aside`` pixels aside as often as it likes (a line a little
    askew). As uint8, 0 or 1."""
    ink = own.view(np.uint8)
    steps = np.ones((2 * aside + 1, 1) if run[0] == 1 else (1, 2 * aside + 1), np.uint8)
    return cv2.morphologyEx(cv2.dilate(ink, steps), cv2.MORPH_OPEN, np.ones(run, np.uint8)) & ink


def _runs(flags: np.ndarray) -> list[tuple[int, int]]:
    """The runs of set ``flags`` (1-D, boolean): (start, stop) each, in order."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], flags, [False]]).view(np.int8)))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def _thin_lines_apart(flags: np.ndarray) -> bool:
    """Whether the first and the last of ``flags`` set are over half its length apart, and each
    begins a run of flags no longer than a frame's line is thick (`_FRAME_LINE`, at least 2). On
    every picture: by slices, not `_runs`, which takes twice as long."""
    where = np.flatnonzero(flags)
    if where.size < 2 or where[-1] - where[0] <= 0.5 * len(flags):
        return False
    thick = max(2, math.ceil(_FRAME_LINE * len(flags)))
    return not flags[where[0] : where[0] + thick + 1].all() and not flags[where[-1] - thick : where[-1] + 1].all()


def _first_runs(strip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each row's first run of ink starts and ends (exclusive); both 0 in a row without ink."""
    depth = np.arange(strip.shape[1])
    first = np.argmax(strip, axis=1)
    gap = (depth >= first[:, None]) & ~strip
    end = np.where(gap.any(axis=1), np.argmax(gap, axis=1), strip.shape[1])
    return first, np.where(strip.any(axis=1), end, 0)


def _along_sides(across: np.ndarray, down: np.ndarray, band: int) -> bool:
    """Whether ``across`` has ink within ``band`` of a box's top and bottom sides along at least
    `_FRAME_SIDE` of them, and ``down`` of its left and right sides."""
    sides = (lambda: across[:band].any(axis=0), lambda: across[-band:].any(axis=0),
             lambda: down[:, :band].any(axis=1), lambda: down[:, -band:].any(axis=1))
    return all(side().mean() >= _FRAME_SIDE for side in sides)
