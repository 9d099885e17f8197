"""Foreground-weighted, multi-scale CIELAB similarity: where is which colour, weighted to objects.

A weight-free image-image metric (pixels only: no ground truth, no detector, no model).
Both images are resized to ``size`` x ``size`` and converted to CIELAB. A pixel is
*foreground* in an image when its colour is more than ``foreground_delta`` (CIE76) from that
image's median border colour; a pixel's weight is ``background_weight`` plus 1 if it is
foreground in either image, so a few objects on a large plain background count as much as the
background does. At each scale of ``scales`` (the image average-pooled to that many cells per
side) the per-cell colour distance becomes a similarity ``1 - min(dE / max_delta, 1)``, averaged
with the pooled weights; the score is the mean over scales. The coarse scales give partial credit
to an object drawn a little off its place; the fine scale rewards exact shape and size.

Why it exists: on the simulation bench (``bench/sim_ladders.py``, SIM_LADDERS.md) SSIM and the
colour histogram are dominated by the background and barely move when objects are misplaced,
miscounted or dropped.

>>> from PIL import Image, ImageDraw
>>> from repainter.backends.base import Reference
>>> def scene(x):
...     img = Image.new("RGB", (64, 64), (250, 250, 250))
...     ImageDraw.Draw(img).ellipse([x, 24, x + 16, 40], fill=(220, 40, 40))
...     return img
>>> same, near, far = LabLayoutSimilarity()(Reference("r", scene(10)), [scene(10), scene(18), scene(44)])
>>> same == 1.0 and same > near > far
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.color import rgb2lab

from repainter.backends.base import Metric, Reference
from repainter.backends.metrics._preprocess import pool_cells, resize_square


class LabLayoutSimilarity(Metric):
    """Foreground-weighted multi-scale CIELAB similarity in [0, 1] (weight-free)."""

    name = "lab_layout"
    higher_is_better = True

    def __init__(self, size: int = 64, scales: Sequence[int] = (8, 4, 2),
                 foreground_delta: float = 12.0, background_weight: float = 0.1,
                 max_delta: float = 40.0, per_region: bool = True, content_cells: int = 16,
                 colour_sigma: float = 25.0):
        if size < 4 or any(s < 1 or size % s for s in scales):
            raise ValueError("lab_layout scales must divide size")
        if foreground_delta <= 0 or max_delta <= 0 or background_weight < 0:
            raise ValueError("lab_layout deltas must be > 0 and background_weight >= 0")
        self.size, self.scales = int(size), tuple(int(s) for s in scales)
        self.foreground_delta, self.background_weight = float(foreground_delta), float(background_weight)
        self.max_delta = float(max_delta)
        self.per_region = bool(per_region)
        self.content_cells, self.colour_sigma = int(content_cells), float(colour_sigma)

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "size": self.size, "scales": list(self.scales),
                "foreground_delta": self.foreground_delta,
                "background_weight": self.background_weight, "max_delta": self.max_delta,
                "per_region": self.per_region, "content_cells": self.content_cells,
                "colour_sigma": self.colour_sigma}

    def _features(self, image: Image.Image) -> dict[str, np.ndarray]:
        lab = rgb2lab(resize_square(image, self.size) / 255.0)
        border = np.concatenate([lab[0], lab[-1], lab[:, 0], lab[:, -1]])
        background = np.median(border, axis=0)
        foreground = np.linalg.norm(lab - background, axis=2) > self.foreground_delta
        weight = foreground.astype(np.float64)
        if self.per_region and foreground.any():
            # every connected foreground region weighs the same in all, small or large
            regions, _ = ndimage.label(foreground)
            area = np.bincount(regions.ravel())
            weight = np.where(regions > 0, area[1:].mean() / area[regions], 0.0)
        cells = self.content_cells
        pooled_w = pool_cells(weight, cells).reshape(-1)
        pooled_lab = (pool_cells(lab * weight[..., None], cells).reshape(-1, 3)
                      / np.maximum(pooled_w, 1e-9)[:, None])
        keep = pooled_w > 1e-6
        return {"lab": lab, "weight": weight, "background": background,
                "colours": pooled_lab[keep], "colour_weights": pooled_w[keep]}

    def prepare(self, reference: Reference) -> dict[str, np.ndarray]:
        return self._features(reference.image)

    def _kernel(self, a: np.ndarray, wa: np.ndarray, b: np.ndarray, wb: np.ndarray) -> float:
        d2 = ((a[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        return float(wa @ np.exp(-d2 / (2 * self.colour_sigma ** 2)) @ wb)

    def _content(self, ref: dict, cand: dict) -> float:
        """Which foreground colours, wherever they are (kernel similarity of the colour sets)."""
        a, wa, b, wb = ref["colours"], ref["colour_weights"], cand["colours"], cand["colour_weights"]
        if len(a) == 0 or len(b) == 0:
            return float(len(a) == len(b))
        cross = self._kernel(a, wa, b, wb)
        return cross / np.sqrt(self._kernel(a, wa, a, wa) * self._kernel(b, wb, b, wb))

    def _layout(self, ref: dict, cand: dict) -> float:
        """Which colour where, at several scales, weighted to the foreground."""
        weight = self.background_weight + np.maximum(ref["weight"], cand["weight"])
        values = []
        for cells in self.scales:
            w = pool_cells(weight, cells)
            distance = np.linalg.norm(pool_cells(ref["lab"], cells) - pool_cells(cand["lab"], cells), axis=2)
            values.append(float((w * (1.0 - np.minimum(distance / self.max_delta, 1.0))).sum() / w.sum()))
        return float(np.mean(values))

    def score(self, prepared: dict[str, np.ndarray], candidates: Sequence[Image.Image]) -> list[float]:
        out = []
        for image in candidates:
            cand = self._features(image)
            background = 1.0 - min(float(np.linalg.norm(prepared["background"] - cand["background"]))
                                   / self.max_delta, 1.0)
            out.append(float(np.mean([self._content(prepared, cand), self._layout(prepared, cand),
                                      background])))
        return out
