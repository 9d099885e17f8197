"""Texture-energy similarity: is there as much fine detail (texture, outlines) in the same places?

A weight-free image-image metric (pixels only: no ground truth, no detector, no model).
Both images are resized (box filter, so a fine pattern survives as long as it is at least a pixel
wide at ``size``) to ``size`` x ``size`` and converted to CIELAB. A pixel's *detail* is the CIE76
distance between its colour and a Gaussian blur of its neighbourhood (``sigma`` pixels): large
on textures, outlines and edges, zero on flat colour. At each scale of ``scales`` the detail is
average-pooled into that many cells per side, and the cells' energies ``e_ref`` and ``e_cand``
are compared as ``(2 e_ref e_cand + c) / (e_ref^2 + e_cand^2 + c)`` (1 when equal, 0 when one is
flat and the other is not; ``c = stability``), averaged with weights ``max(e_ref, e_cand) +
floor`` so that cells with detail in either image count and flat background does not swamp them.
The score is the mean over scales, in [0, 1].

Why it exists: ``lab_layout`` (the former default selection) compares pooled mean colours, so it
cannot see a fine checker pattern or a thin outline: a textured object drawn flat has the same
mean colour in every cell (``tests/sim/test_lab_layout.py``). On the simulation bench's former
5-rung ``attributes`` ladder that left the ``style_bias 1.0`` rung unseparated
(datasets/sim/README.md). This
metric sees exactly that; colour reaches it only through the contrast of edges (a recoloured
object with the same outline scores far closer than a flat one against a textured one), so it is
meant to be combined with a colour score, as the default selection does (with ``region_match``).

>>> from PIL import Image, ImageDraw
>>> from repainter.backends.base import Reference
>>> def scene(checker):
...     img = Image.new("RGB", (64, 64), (250, 250, 250))
...     ImageDraw.Draw(img).rectangle([16, 16, 47, 47], fill=(200, 60, 60))
...     if checker:  # a checkered square: every other pixel darker
...         for x in range(16, 48):
...             for y in range(16 + x % 2, 48, 2):
...                 img.putpixel((x, y), (150, 30, 30))
...     return img
>>> metric = TextureEnergySimilarity(size=64)
>>> same, flat = metric(Reference("r", scene(True)), [scene(True), scene(False)])
>>> same, round(flat, 2)      # the square's edge is in both; its checker only in one
(1.0, 0.7)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage

from repainter.backends.base import Metric, Reference
from repainter.backends.metrics._preprocess import box_lab, pool_cells


class TextureEnergySimilarity(Metric):
    """Multi-scale similarity of local detail energy in [0, 1] (weight-free; colour counts
    only through edge contrast)."""

    name = "texture_energy"
    higher_is_better = True

    def __init__(self, size: int = 128, sigma: float = 1.0, scales: Sequence[int] = (16, 8, 4),
                 stability: float = 1.0, floor: float = 0.1):
        if size < 4 or any(s < 1 or size % s for s in scales) or not scales:
            raise ValueError("texture_energy scales must be >= 1 and divide size")
        if sigma <= 0 or stability <= 0 or floor < 0:
            raise ValueError("texture_energy sigma and stability must be > 0, floor >= 0")
        self.size, self.sigma = int(size), float(sigma)
        self.scales = tuple(int(s) for s in scales)
        self.stability, self.floor = float(stability), float(floor)

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "size": self.size, "resize": "box", "sigma": self.sigma,
                "scales": list(self.scales), "stability": self.stability, "floor": self.floor}

    def _energies(self, image: Image.Image) -> list[np.ndarray]:
        lab = box_lab(image, self.size)
        blurred = ndimage.gaussian_filter(lab, sigma=(self.sigma, self.sigma, 0))
        detail = np.linalg.norm(lab - blurred, axis=2)
        return [pool_cells(detail, cells) for cells in self.scales]

    def prepare(self, reference: Reference) -> list[np.ndarray]:
        return self._energies(reference.image)

    def _similarity(self, ref: list[np.ndarray], cand: list[np.ndarray]) -> float:
        values = []
        for e_ref, e_cand in zip(ref, cand):
            similar = (2 * e_ref * e_cand + self.stability) / (e_ref ** 2 + e_cand ** 2 + self.stability)
            weight = np.maximum(e_ref, e_cand) + self.floor
            values.append(float((similar * weight).sum() / weight.sum()))
        return float(np.mean(values))

    def score(self, prepared: list[np.ndarray], candidates: Sequence[Image.Image]) -> list[float]:
        return [self._similarity(prepared, self._energies(image)) for image in candidates]
