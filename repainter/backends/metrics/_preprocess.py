"""Shared preprocessing for the weight-free metrics."""

from __future__ import annotations

import numpy as np
from PIL import Image


def resize_square(img: Image.Image, size: int) -> np.ndarray:
    """RGB uint8 array of ``img`` resized (bicubic, aspect not kept) to ``size`` x ``size``."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)
