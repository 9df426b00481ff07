"""The peers `digitlab.vision.to_mnist` is measured against: other ways from a picture of a digit to
the 28x28 image a network trained on MNIST takes.

* `naive`: what most tutorials do: grey, plain resize to 28x28, invert on light paper;
* `opencv_reference`: a 30-line OpenCV pipeline of the kind a practitioner writes: grey, 3x3
  blur, Otsu threshold with the polarity taken from the border, connected components with their
  stats, the box of the large parts, INTER_AREA fit into 20x20, centre of mass in 28x28;
* `opencv_reference_number`: the same for a written number, the peer of `digitlab.vision.segment`.
"""

from __future__ import annotations

import cv2
import numpy as np
from PIL import Image

from digitlab.vision import load_grey


def naive(image) -> np.ndarray:
    """The tutorial shortcut: grey, plain resize to 28x28 (Pillow's bicubic), inverted when the
    background is light. uint8 28 x 28."""
    grey = load_grey(image)
    small = np.asarray(Image.fromarray(grey, "F").resize((28, 28), Image.Resampling.BICUBIC))
    small = np.clip(small, 0.0, 1.0)
    if np.median(grey) > 0.5:
        small = 1.0 - small
    return np.clip(np.rint(small * 255), 0, 255).astype(np.uint8)


def _grey_uint8(image) -> np.ndarray:
    """A PIL image (or a path) as uint8 grey; a transparent canvas is composited on white."""
    if not isinstance(image, Image.Image):
        image = Image.open(image)
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = np.asarray(image.convert("RGBA"), np.float32)
        grey = cv2.cvtColor(rgba[:, :, :3].astype(np.uint8), cv2.COLOR_RGB2GRAY).astype(np.float32)
        alpha = rgba[:, :, 3] / 255
        return (grey * alpha + 255 * (1 - alpha)).astype(np.uint8)
    if image.mode == "L":
        return np.asarray(image)
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)


def _reference_parts(image) -> tuple[np.ndarray, np.ndarray]:
    """The reference's first steps: grey, 3x3 blur, Otsu threshold with the polarity taken from the
    border, connected components. Returns (ink mask, uint8 0/255; stats of the parts over a tenth
    of the largest's area, OpenCV's columns). Raises ValueError on a blank image."""
    grey = cv2.GaussianBlur(_grey_uint8(image), (3, 3), 0)
    _, mask = cv2.threshold(grey, 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    if np.median(border) > 127:  # the paper is white in the mask: the ink is the other side
        mask = 255 - mask
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n < 2:
        raise ValueError("blank image")
    areas = stats[1:, cv2.CC_STAT_AREA]
    return mask, stats[1:][areas >= 0.1 * areas.max()]


def _reference_fit(crop: np.ndarray) -> np.ndarray:
    """The reference's last steps: INTER_AREA fit of a cropped mask into 20x20, centre of mass at
    (14, 14) of 28x28. uint8 28 x 28."""
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    digit = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    m = cv2.moments(digit)
    if m["m00"] == 0:
        raise ValueError("blank image")
    top = int(round(14 - m["m01"] / m["m00"]))
    left = int(round(14 - m["m10"] / m["m00"]))
    out = np.zeros((28, 28), np.uint8)
    dh, dw = digit.shape
    r0, c0, r1, c1 = max(top, 0), max(left, 0), min(top + dh, 28), min(left + dw, 28)
    out[r0:r1, c0:c1] = digit[r0 - top : r1 - top, c0 - left : c1 - left]
    return out


def _crop(mask: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """The mask within the box around ``boxes`` (rows of x, y, width, height)."""
    x0, y0 = boxes[:, 0].min(), boxes[:, 1].min()
    x1, y1 = (boxes[:, 0] + boxes[:, 2]).max(), (boxes[:, 1] + boxes[:, 3]).max()
    return mask[y0:y1, x0:x1]


def opencv_reference(image) -> np.ndarray:
    """The OpenCV pipeline described above: the box of the large parts, fitted. uint8 28 x 28;
    raises ValueError on a blank image."""
    mask, stats = _reference_parts(image)
    return _reference_fit(_crop(mask, stats[:, :4]))


def opencv_reference_number(image) -> np.ndarray:
    """The same pipeline for a written number, as a practitioner extends it: the large parts left
    to right, a part whose columns overlap the digit before it joins that digit (a 4 in two
    strokes), each digit fitted. Touching digits stay one. uint8 N x 28 x 28."""
    mask, stats = _reference_parts(image)
    digits: list[list[np.ndarray]] = []
    for box in sorted(stats[:, :4], key=lambda b: b[0]):
        if digits and box[0] < max(b[0] + b[2] for b in digits[-1]):
            digits[-1].append(box)
        else:
            digits.append([box])
    return np.stack([_reference_fit(_crop(mask, np.array(boxes))) for boxes in digits])
