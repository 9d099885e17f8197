"""SSIM: structural similarity between each candidate and the reference (scikit-image)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image
from skimage.metrics import structural_similarity

from repainter.backends.base import Metric, Reference
from repainter.backends.metrics._preprocess import candidate_pixels, prepare_pixels, resize_policy
from repainter.registry import METRICS


@METRICS.register("ssim")
class SSIM(Metric):
    """SSIM on 8-bit RGB images, data range 255 (1.0 = identical).

    Preprocessing: both images converted with :func:`repainter.images.to_rgb`. Resize policy
    (recorded in :meth:`identity`): with ``size=None`` (default) SSIM runs at native resolution
    when the sizes match, and the candidate is resized (bicubic) to the reference's size when
    they differ; with ``size`` set both are resized (bicubic, aspect ratio not kept) to ``size`` x
    ``size``. SSIM is computed per channel with a 7x7 window and averaged, with
    ``data_range=255`` stated explicitly so the result never depends on the image content.

    Example:
        >>> from PIL import Image
        >>> from repainter.backends.base import Reference
        >>> ref = Reference("r", Image.new("RGB", (64, 48), (200, 30, 30)))
        >>> SSIM()(ref, [ref.image])
        [1.0]
    """

    name = "ssim"
    higher_is_better = True

    def __init__(self, size: int | None = None):
        if size is not None and size < 7:
            raise ValueError("ssim size must be at least 7 (the window size) or null")
        self.size = size

    def prepare(self, reference: Reference) -> np.ndarray:
        return prepare_pixels(reference.image, self.size)

    def score(self, prepared: np.ndarray, candidates: Sequence[Image.Image]) -> list[float]:
        return [
            float(structural_similarity(prepared, candidate_pixels(c, prepared), channel_axis=2,
                                        data_range=255))
            for c in candidates
        ]

    def identity(self) -> dict:
        return {"metric": self.name, "size": self.size, "resize": resize_policy(self.size),
                "data_range": 255}
