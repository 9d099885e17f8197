"""PSNR: peak signal-to-noise ratio of each candidate against the reference, in dB.

Preprocessing: both images converted with :func:`repainter.images.to_rgb`. Resize policy
(recorded in :meth:`PSNR.identity`): with ``size=None`` (default) PSNR is the standard computation
at native resolution when the sizes match, and the candidate is resized (bicubic) to the
reference's size when they differ; with ``size`` set both are resized (bicubic, aspect ratio not
kept) to ``size`` x ``size``. The data range is stated explicitly
(``data_range=255``), so the result never depends on the image content:

    PSNR = 10 * log10(255^2 / MSE), MSE over all pixels and channels.

Identical images have MSE 0 and PSNR +inf, which JSON cannot hold: scores are capped at
``max_db`` (default 100 dB; any real difference of one grey level in one pixel of a 256x256 image
scores about 96 dB). ``similarity()`` maps the capped value onto [0, 1] as ``value / max_db``.

Example:
    >>> from PIL import Image
    >>> from repainter.backends.base import Reference
    >>> ref = Reference("r", Image.new("RGB", (8, 8), (100, 100, 100)))
    >>> scores = PSNR()(ref, [ref.image, Image.new("RGB", (8, 8), (110, 100, 100))])
    >>> [round(v, 2) for v in scores]
    [100.0, 32.9]
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

from repainter.backends.base import Metric, Reference
from repainter.backends.metrics._preprocess import candidate_pixels, prepare_pixels, resize_policy


def psnr(a: np.ndarray, b: np.ndarray, data_range: float = 255.0, max_db: float = 100.0) -> float:
    """PSNR of two same-shape arrays in dB, capped at ``max_db``."""
    if a.shape != b.shape:
        raise ValueError(f"psnr needs same-shape arrays, got {a.shape} and {b.shape}")
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0:
        return float(max_db)
    return float(min(max_db, 10.0 * math.log10(data_range**2 / mse)))


class PSNR(Metric):
    """PSNR in dB with an explicit data range of 255, capped at ``max_db`` for identical images."""

    name = "psnr"
    higher_is_better = True

    def __init__(self, size: int | None = None, max_db: float = 100.0, data_range: float = 255.0):
        if size is not None and int(size) < 1:
            raise ValueError("psnr: size must be a positive size or null")
        if max_db <= 0:
            raise ValueError("psnr: max_db must be positive")
        self.size = int(size) if size is not None else None
        self.max_db = float(max_db)
        self.data_range = float(data_range)

    def prepare(self, reference: Reference) -> np.ndarray:
        return prepare_pixels(reference.image, self.size)

    def score(self, prepared: np.ndarray, candidates: Sequence[Image.Image]) -> list[float]:
        return [psnr(prepared, candidate_pixels(c, prepared), self.data_range, self.max_db)
                for c in candidates]

    def similarity(self, value: float) -> float:
        return max(0.0, min(1.0, value / self.max_db))

    def identity(self) -> dict:
        return {"metric": self.name, "size": self.size, "resize": resize_policy(self.size),
                "data_range": self.data_range,
                "max_db": self.max_db}
