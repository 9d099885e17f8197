"""Colour-histogram similarity: intersection of joint RGB histograms."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from repainter.backends.base import Metric, Reference
from repainter.backends.metrics._preprocess import resize_square
from repainter.registry import METRICS


@METRICS.register("color_histogram")
class ColorHistogram(Metric):
    """Histogram intersection of joint RGB histograms (1.0 = same colour distribution).

    Preprocessing: 8-bit RGB, resized to ``size`` x ``size``; each channel quantised into
    ``bins`` levels, giving a ``bins**3`` joint histogram normalised to sum 1. The score is
    ``sum(min(h_ref, h_cand))`` in [0, 1]; it ignores where colours are, only how much of each.

    Example:
        >>> from PIL import Image
        >>> from repainter.backends.base import Reference
        >>> red = Image.new("RGB", (32, 32), (255, 0, 0))
        >>> blue = Image.new("RGB", (32, 32), (0, 0, 255))
        >>> ColorHistogram()(Reference("r", red), [red, blue])
        [1.0, 0.0]
    """

    name = "color_histogram"
    higher_is_better = True

    def __init__(self, bins: int = 8, size: int = 128):
        if not 2 <= bins <= 64:
            raise ValueError("color_histogram bins must be between 2 and 64")
        self.bins = bins
        self.size = size

    def _histogram(self, img: Image.Image) -> np.ndarray:
        quantised = resize_square(img, self.size).astype(np.int64) * self.bins // 256
        index = (quantised[..., 0] * self.bins + quantised[..., 1]) * self.bins + quantised[..., 2]
        hist = np.bincount(index.ravel(), minlength=self.bins**3).astype(np.float64)
        return hist / hist.sum()

    def prepare(self, reference: Reference) -> np.ndarray:
        return self._histogram(reference.image)

    def score(self, prepared: np.ndarray, candidates: Sequence[Image.Image]) -> list[float]:
        return [float(np.minimum(prepared, self._histogram(c)).sum()) for c in candidates]

    def identity(self) -> dict:
        return {"metric": self.name, "bins": self.bins, "size": self.size}
