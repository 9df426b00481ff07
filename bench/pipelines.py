"""The peers `digitlab.vision.to_mnist` is measured against: other ways from a picture of a digit to
the 28x28 image a network trained on MNIST takes."""

from __future__ import annotations

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
