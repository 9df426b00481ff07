"""Connected components and dilation of a mask, by OpenCV.

`label` gives the 8-connected pieces of a mask with their areas and boxes (one call to
``cv2.connectedComponentsWithStats``); `dilate` grows a mask or a grey image by a square; `member`
tells which labels are among some.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Components:
    """The components of a mask.

    Attributes:
        labels: int32 H x W, 0 = background, 1..n = component.
        area: int64 array of n pixel counts (index i for label i + 1).
        box: int64 array n x 4 of (top, left, bottom, right), bottom and right exclusive.
    """

    labels: np.ndarray
    area: np.ndarray
    box: np.ndarray

    def __len__(self) -> int:
        return len(self.area)

    def mask(self, chosen, top: int = 0, left: int = 0, bottom: int | None = None, right: int | None = None) -> np.ndarray:
        """Boolean: the pixels of the ``chosen`` components (0-based indices), in the whole image
        or in the window ``top:bottom, left:right``."""
        return member(self.labels[top:bottom, left:right], np.asarray(chosen, np.int64) + 1, len(self) + 1)


def member(values: np.ndarray, chosen, size: int) -> np.ndarray:
    """Which ``values`` (integers 0..size-1) are among ``chosen``: `np.isin` by a lookup table, which
    for labels is several times faster than its sorting."""
    table = np.zeros(size, bool)
    table[np.asarray(chosen, np.int64)] = True
    return table[values]


def dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary (or grey, by maximum) dilation by a (2r+1) x (2r+1) square; the border reads as 0."""
    if radius <= 0:
        return mask.copy()
    kernel = np.ones((2 * radius + 1, 2 * radius + 1), np.uint8)
    if mask.dtype == np.bool_:
        return cv2.dilate(mask.view(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)
    return cv2.dilate(mask, kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)


def label(mask: np.ndarray) -> Components:
    """Label the 8-connected components of an H x W mask (nonzero = in), numbered in the order of
    their first pixel (top to bottom, then left to right)."""
    mask = np.asarray(mask)
    mask = mask.view(np.uint8) if mask.dtype == np.bool_ else (mask != 0).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8, ltype=cv2.CV_32S)
    stats = stats[1:].astype(np.int64)
    left, top = stats[:, cv2.CC_STAT_LEFT], stats[:, cv2.CC_STAT_TOP]
    box = np.stack([top, left, top + stats[:, cv2.CC_STAT_HEIGHT], left + stats[:, cv2.CC_STAT_WIDTH]], axis=1)
    return Components(labels, stats[:, cv2.CC_STAT_AREA].copy(), box.reshape(-1, 4))
