"""`segment`: a written number (one line, e.g. "2026" on a sheet) -> its digits, left to right.

The ink is found as for `to_mnist` (`find_ink`). The line's slant is measured (the shear that
lines its strokes up vertically) and everything below works in that deslanted frame, where
neighbouring digits of a slanted hand no longer overlap:

1. specks (parts under 4% of the largest) are dropped;
2. parts whose horizontal extents overlap by at least half the narrower one are one digit (a 4
   drawn in two strokes, a 5 whose flag does not touch it);
3. small, short parts (a piece left by a pen skip) join the nearest digit, or are dropped when far
   from every digit;
4. a part too wide for one digit (digits written touching) is cut where the cuts cross the fewest
   strokes while leaving digits of plausible widths (dynamic programming over the column profile;
   the number of digits comes out of it). Given a ``judge`` (a model's confidence, as `read`
   gives), the cuts are chosen again among the likeliest places so that the model also reads each
   piece as a digit.

Each digit is then fitted into MNIST's frame like `to_mnist` does.

At most `MAX_DIGITS` digits are read from one image (``max_digits``): the steps above cost more than
linearly in the number of parts, and a page of thousands of marks would take minutes. The marks are
counted as soon as the ink is found, so such a page is refused at the cost of `find_ink` alone.
"""

from __future__ import annotations

import numpy as np

from ..errors import ImageError
from .components import dilate, label, member
from .preprocess import SIDE, find_ink, fit_mnist
from .stats import quantile

MAX_DIGITS = 64  # digits read from one image at most (`segment`'s ``max_digits``)
_MARKS_PER_DIGIT = 4  # a digit is at most this many separate marks (a 4 in two strokes, a 5's flag, a pen skip)
_SPECK_RATIO = 0.04  # parts smaller than this fraction of the largest are specks
_OVERLAP = 0.5  # horizontal overlap, as a fraction of the narrower part, that makes one digit
_SHORT = 0.45  # a part shorter than this fraction of the line height is a fragment ...
_FRAGMENT_AREA = 0.5  # ... if its area is also under this fraction of the largest part
_FRAGMENT_REACH = 0.6  # fragments further than this many line heights from a digit are dropped
_WIDE = 1.3  # a group wider than this many typical digit widths may hold several digits
_WIDE_ALONE = 1.0  # ... or, with no other digits to compare, wider than this many line heights
_DIGIT_ASPECT = 0.5  # typical deslanted width / height of a handwritten digit, if the line has none
# Costs of a way to cut touching digits: a cut costs the number of strokes it crosses; a digit
# costs _PER_DIGIT, plus, if its width w (in typical widths) is outside [_NARROW, _BROAD],
# _TOO_WIDE * (w - _BROAD)**2 or _TOO_NARROW * (_NARROW - w)**2.
_NARROW, _BROAD = 0.45, 1.15
_TOO_WIDE, _TOO_NARROW = 10.0, 2.0
_PER_DIGIT = 1.0
_SHORT_PIECE, _SHORT_COST = 0.5, 5.0  # ... and a digit less than half the line's height is unlikely
_SHEARS = np.linspace(-0.5, 0.3, 9)  # slants tried: x - shear * y; forward writing is negative
# With a judge, a piece also costs _DOUBT times -log(the judge's confidence that it is a digit),
# and the cuts are chosen among the cheapest dynamic programme's and the _PLACES columns where
# the fewest strokes are crossed (each the least within a tenth of a typical digit's width).
_DOUBT = 64.0
_PLACES = 14


def segment(image, return_boxes: bool = False, max_digits: int | None = MAX_DIGITS, judge=None):
    """Split an image of a written number into its digits, left to right.

    ``image``: anything `to_mnist` takes. Returns a uint8 array N x 28 x 28 of MNIST-like digits;
    with ``return_boxes``, also an int array N x 4 of their boxes (left, top, right, bottom) in the
    input image's pixels, right and bottom exclusive. ``judge``: optional, a function from MNIST-like
    digits (uint8 K x 28 x 28) to how sure a model is of each (K floats in 0..1, e.g. its top
    probability); digits written touching are then cut where the model reads the pieces best
    (`read` passes its model's).

    Raises `ImageError` for a bad or blank image, and for one holding more than ``max_digits``
    digits (None: no limit), checked first on the count of marks (more than `_MARKS_PER_DIGIT` per
    digit), before any work per mark, then on the digits found. One line of writing is expected;
    digits written touching are cut apart where feasible (digits of similar widths, not a pair
    like "11").
    """
    ink = find_ink(image)
    if max_digits is not None:
        area = ink.parts.area
        marks = int(np.count_nonzero(area >= _SPECK_RATIO * area.max()))  # what `_Line` keeps
        if marks > _MARKS_PER_DIGIT * max_digits:
            raise ImageError(_too_many(max_digits, f"{marks} separate marks"))
    line = _Line(ink, judge)
    found = line.digits()
    if max_digits is not None and len(found) > max_digits:
        raise ImageError(_too_many(max_digits, f"{len(found)} found"))
    digits, boxes = [], []
    for parts, columns in found:
        crop, box = line.crop(parts, columns)
        if crop is None:
            continue
        digits.append(fit_mnist(crop, ink.stroke))
        top, left, bottom, right = box
        boxes.append([int(left * ink.scale), int(top * ink.scale),
                      int(np.ceil(right * ink.scale)), int(np.ceil(bottom * ink.scale))])
    images = np.stack(digits) if digits else np.zeros((0, SIDE, SIDE), np.uint8)
    if return_boxes:
        return images, np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    return images


def _too_many(max_digits: int, what: str) -> str:
    return f"the image holds more than {max_digits} digits ({what}); at most {max_digits} are read from one image"


class _Line:
    """The parts of one line of writing, measured in the deslanted frame."""

    def __init__(self, ink, judge=None):
        self.ink = ink
        self.judge = judge
        area = ink.parts.area
        self.kept = [i for i in range(len(area)) if area[i] >= _SPECK_RATIO * area.max()]
        labels = ink.parts.labels
        mask = ink.parts.mask(self.kept) & (ink.strength > 0.05)
        self.rows, self.cols = np.nonzero(mask)
        self.part = labels[self.rows, self.cols] - 1
        self.weight = ink.strength[self.rows, self.cols]
        self.middle = (labels.shape[0] - 1) / 2
        self.shear = self._deslant()
        self.sheared = self._shear(self.rows, self.cols)
        n = len(area)
        self.lo = np.full(n, np.iinfo(np.int64).max)
        self.hi = np.full(n, np.iinfo(np.int64).min)
        np.minimum.at(self.lo, self.part, self.sheared)
        np.maximum.at(self.hi, self.part, self.sheared + 1)
        heights = np.array([self._column_height([i]) for i in self.kept])
        self.height = quantile(heights[heights >= 0.5 * heights.max()], 0.5)

    def _of(self, parts) -> np.ndarray:
        """Which of the ink pixels (``rows``, ``cols``) belong to ``parts``."""
        return member(self.part, parts, len(self.ink.parts))

    def _shear(self, rows, cols) -> np.ndarray:
        return cols - np.round(self.shear * (rows - self.middle)).astype(np.int64)

    def _deslant(self) -> float:
        """The shear that makes the column profile of all the ink sharpest (strokes pile up); of
        shears within 2% of the sharpest, the most upright, since one digit's diagonal (a 7's
        stem) can pile up as well as the writing's slant."""
        scores = []
        for shear in _SHEARS:
            columns = self.cols - np.round(shear * (self.rows - self.middle)).astype(np.int64)
            columns -= columns.min()
            scores.append(float((np.bincount(columns, weights=self.weight) ** 2).sum()))
        good = np.flatnonzero(np.asarray(scores) >= 0.98 * max(scores))
        return float(_SHEARS[good[np.argmin(np.abs(_SHEARS[good]))]])

    def _column_height(self, parts) -> float:
        """How tall some parts' ink is: the 90th percentile, over deslanted columns, of the rows
        the ink spans. About one digit's height for one digit or for a run of touching digits,
        whose bounding box is taller by their ups and downs."""
        inside = self._of(parts)
        columns = self.sheared[inside] - self.sheared[inside].min()
        rows = self.rows[inside]
        top = np.full(columns.max() + 1, np.iinfo(np.int64).max)
        bottom = np.full(columns.max() + 1, -1)
        np.minimum.at(top, columns, rows)
        np.maximum.at(bottom, columns, rows)
        spans = (bottom - top + 1)[bottom >= 0]
        return quantile(spans, 0.9)

    def _extent(self, parts) -> tuple[int, int, int, int]:
        """(top, left, bottom, right) of some parts: rows in the image, columns deslanted."""
        box = self.ink.parts.box[parts]
        return int(box[:, 0].min()), int(self.lo[parts].min()), int(box[:, 2].max()), int(self.hi[parts].max())

    def digits(self) -> list[tuple[list[int], tuple[int, int]]]:
        """The digits, left to right: (part indices, range of deslanted columns)."""
        groups = self._overlapping()
        groups = self._attach_fragments(groups)
        # Measured again on whole digits: a 5's separate flag adds to the 5's height.
        heights = np.array([self._column_height(g) for g in groups])
        self.height = quantile(heights[heights >= 0.5 * heights.max()], 0.5)
        extents = [self._extent(g) for g in groups]
        widths = np.array([e[3] - e[1] for e in extents], dtype=float)
        typical, wide = _DIGIT_ASPECT * self.height, _WIDE_ALONE * self.height
        single = widths[(widths >= 0.45 * self.height) & (widths <= 1.1 * self.height)]  # not 1s
        if single.size >= 2:  # the line shows how wide this hand writes
            typical = quantile(single, 0.5)
            wide = _WIDE * typical
        out = []
        for g, e, w in zip(groups, extents, widths):
            if w > wide:
                out += [(g, columns) for columns in self._split(g, e, typical)]
            else:
                out.append((g, (e[1], e[3])))
        out.sort(key=lambda d: d[1][0] + d[1][1])
        return out

    def _overlapping(self) -> list[list[int]]:
        """Parts overlapping horizontally by half the narrower one, joined (union-find)."""
        root = {i: i for i in self.kept}

        def find(i):
            while root[i] != i:
                root[i] = root[root[i]]
                i = root[i]
            return i

        for a in self.kept:
            for b in self.kept:
                if a < b:
                    overlap = min(self.hi[a], self.hi[b]) - max(self.lo[a], self.lo[b])
                    narrower = min(self.hi[a] - self.lo[a], self.hi[b] - self.lo[b])
                    if overlap >= _OVERLAP * narrower:
                        root[find(a)] = find(b)
        groups: dict[int, list[int]] = {}
        for i in self.kept:
            groups.setdefault(find(i), []).append(i)
        return list(groups.values())

    def _attach_fragments(self, groups: list[list[int]]) -> list[list[int]]:
        """Small, short groups join the nearest digit within reach; farther ones are dropped."""
        area = self.ink.parts.area
        largest = max(area[g].sum() for g in groups)
        fragment = []
        for g in groups:
            top, _, bottom, _ = self._extent(g)
            fragment.append(bottom - top < _SHORT * self.height and area[g].sum() < _FRAGMENT_AREA * largest)
        digits = [g for g, f in zip(groups, fragment) if not f]
        if not digits:
            return groups
        for g, f in zip(groups, fragment):
            if f:
                distance = [_box_distance(self._extent(g), self._extent(d)) for d in digits]
                nearest = int(np.argmin(distance))
                if distance[nearest] <= _FRAGMENT_REACH * self.height:
                    digits[nearest] = digits[nearest] + g
        return digits

    def _split(self, parts, extent, typical: float) -> list[tuple[int, int]]:
        """Cut touching digits apart: choose cuts in the deslanted column profile of their ink by
        dynamic programming, minimising the strokes cut through plus a penalty for digits much
        wider or narrower than ``typical``; with a judge, again among the likeliest places, so
        that the pieces also read as digits. Returns ranges of deslanted columns."""
        _, left, _, right = extent
        inside = self._of(parts)
        columns = self.sheared[inside] - left
        profile = np.bincount(columns, weights=self.weight[inside], minlength=right - left)
        n = len(profile)
        cut_cost = profile / max(self.ink.stroke, 1.0)  # about how many strokes a cut here crosses
        top = np.full(n, np.iinfo(np.int64).max)
        bottom = np.full(n, np.iinfo(np.int64).min)
        np.minimum.at(top, columns, self.rows[inside])
        np.maximum.at(bottom, columns, self.rows[inside])
        least, most = max(2, int(0.15 * self.height)), max(3, int(2.0 * typical))
        edges = self._cheapest_cuts(cut_cost, top, bottom, least, most, typical)
        if self.judge is not None and len(edges) > 2:
            edges = self._read_cuts(parts, left, edges, cut_cost, top, bottom, least, most, typical)
        edges = [left + e for e in edges]
        return list(zip(edges[:-1], edges[1:]))

    def _cheapest_cuts(self, cut_cost, top, bottom, least: int, most: int, typical: float) -> list[int]:
        """`_split`'s dynamic programme over every column: the cuts (0 and the width included)."""
        n = len(cut_cost)
        # The costs of a digit that do not depend on the cuts before it, for every width and start:
        shape_cost = _shape_cost(np.arange(most + 1) / typical)
        cut = np.where(np.arange(n) > 0, cut_cost, 0.0)
        # A piece whose ink spans less than half the line's height is a bit of a digit (a bar, an
        # arc), not a digit: short[end, w] for the piece of columns end-w..end-1, its highest and
        # lowest ink found by widening every piece one column to the left at a time.
        short = np.zeros((n + 1, most + 1), bool)
        highest, lowest = top.copy(), bottom.copy()  # pieces of width 1, by their end - 1
        for w in range(1, min(most, n) + 1):
            if w > 1:
                np.minimum(highest[1:], top[: n - w + 1], out=highest[1:])
                np.maximum(lowest[1:], bottom[: n - w + 1], out=lowest[1:])
                highest, lowest = highest[1:], lowest[1:]
            short[w:, w] = (lowest - highest + 1) < _SHORT_PIECE * self.height
        short_cost = np.where(short, _SHORT_COST, 0.0)
        best = np.full(n + 1, np.inf)
        best[0] = 0.0
        previous = np.zeros(n + 1, dtype=np.int64)
        for end in range(least, n + 1):
            first = max(0, end - most)  # the digit's possible starts: first .. end - least
            widths = slice(end - first, least - 1, -1)
            total = best[first : end - least + 1] + cut[first : end - least + 1] + shape_cost[widths] + _PER_DIGIT + short_cost[end, widths]
            i = int(np.argmin(total))
            best[end], previous[end] = total[i], first + i
        if not np.isfinite(best[n]):
            return [0, n]
        edges, end = [n], n
        while end > 0:
            end = int(previous[end])
            edges.append(end)
        edges = edges[::-1]
        # Still a short piece (a bar or an arc cut off its digit)? Give it back to a neighbour.
        while len(edges) > 2:
            spans = [_rows_spanned(top, bottom, a, b) for a, b in zip(edges[:-1], edges[1:])]
            i = int(np.argmin(spans))
            if spans[i] >= _SHORT_PIECE * self.height:
                break
            if i == 0 or (i < len(spans) - 1 and edges[i + 2] - edges[i + 1] < edges[i] - edges[i - 1]):
                del edges[i + 1]  # merge with the narrower neighbour: here, the right one
            else:
                del edges[i]
        return edges

    def _read_cuts(self, parts, left: int, edges: list[int], cut_cost, top, bottom,
                   least: int, most: int, typical: float) -> list[int]:
        """The cuts again, among ``edges`` (`_cheapest_cuts`') and the `_PLACES` columns crossing
        the fewest strokes, each piece's cost as in `_cheapest_cuts` plus `_DOUBT` times -log of
        the judge's confidence in it: every possible piece is fitted and judged in one batch."""
        n = len(cut_cost)
        reach = max(1, round(0.1 * typical))
        nearby = np.lib.stride_tricks.sliding_window_view(np.pad(cut_cost, reach, constant_values=np.inf), 2 * reach + 1)
        lowest = np.flatnonzero(cut_cost <= nearby.min(axis=1))
        lowest = lowest[lowest > 0]
        places = sorted({0, n, *edges, *lowest[np.argsort(cut_cost[lowest], kind="stable")[:_PLACES]].tolist()})
        pieces, digits = [], []
        for i, a in enumerate(places):
            for j in range(i + 1, len(places)):
                if least <= places[j] - a <= most:
                    crop, _ = self.crop(parts, (left + a, left + places[j]))
                    if crop is not None:
                        pieces.append((i, j))
                        digits.append(fit_mnist(crop, self.ink.stroke))
        if not pieces:
            return edges
        doubt = -np.log(np.clip(np.asarray(self.judge(np.stack(digits)), dtype=float), 1e-6, 1.0))
        best = np.full(len(places), np.inf)
        best[0] = 0.0
        previous = np.zeros(len(places), dtype=np.int64)
        for (i, j), d in zip(pieces, doubt):  # in order of i: best[i] is final when it is used
            a, b = places[i], places[j]
            short = _rows_spanned(top, bottom, a, b) < _SHORT_PIECE * self.height
            total = (best[i] + (cut_cost[a] if a else 0.0) + _shape_cost((b - a) / typical) + _PER_DIGIT
                     + (_SHORT_COST if short else 0.0) + _DOUBT * d)
            if total < best[j]:
                best[j], previous[j] = total, i
        if not np.isfinite(best[-1]):
            return edges
        cuts, j = [n], len(places) - 1
        while j > 0:
            j = int(previous[j])
            cuts.append(places[j])
        return cuts[::-1]

    def crop(self, parts, columns):
        """A digit's ink (its parts, within a range of deslanted columns) cropped to its box. Where
        a touching neighbour was cut off, small bits of it left on this side are removed.
        Returns (crop float32 h x w, box (top, left, bottom, right)), or (None, None) if empty."""
        ink = self.ink
        box = ink.parts.box[parts]
        top, left = int(box[:, 0].min()), int(box[:, 1].min())
        bottom, right = int(box[:, 2].max()), int(box[:, 3].max())
        soft = ink.strength[top:bottom, left:right] * ink.parts.mask(parts, top, left, bottom, right)
        sheared = self._shear(np.arange(top, bottom)[:, None], np.arange(left, right)[None, :])
        inside = (sheared >= columns[0]) & (sheared < columns[1])
        if not inside.all():
            soft = soft * inside
            mask = soft > 0.5
            pieces = label(mask)
            if len(pieces) > 1:
                # bits of the neighbour: small pieces touching the cut
                edge = inside & ~((sheared > columns[0]) & (sheared < columns[1] - 1))
                touches = np.zeros(len(pieces) + 1, bool)
                touches[np.unique(pieces.labels[edge & mask])] = True
                sliver = touches[1:] & (pieces.area < 0.15 * pieces.area.max())
                soft = soft * ~dilate(pieces.mask(np.flatnonzero(sliver)), 1)
        rows, cols = np.nonzero(soft > 0.05)
        if rows.size == 0:
            return None, None
        r0, r1, k0, k1 = rows.min(), rows.max() + 1, cols.min(), cols.max() + 1
        return soft[r0:r1, k0:k1], (top + r0, left + k0, top + r1, left + k1)


def _rows_spanned(top, bottom, a: int, b: int) -> int:
    """How many rows the ink of columns a..b-1 spans, given each column's ``top`` and ``bottom``
    ink rows."""
    return int(bottom[a:b].max() - top[a:b].min() + 1)


def _shape_cost(width):
    """What a digit costs for its width (in typical widths; a number or an array) outside
    [_NARROW, _BROAD]."""
    return _TOO_WIDE * np.maximum(width - _BROAD, 0) ** 2 + _TOO_NARROW * np.maximum(_NARROW - width, 0) ** 2


def _box_distance(a, b) -> float:
    """Gap between two boxes (top, left, bottom, right); 0 if they overlap."""
    dy = max(0, max(a[0], b[0]) - min(a[2], b[2]))
    dx = max(0, max(a[1], b[1]) - min(a[3], b[3]))
    return float(np.hypot(dy, dx))
