"""Region-match similarity: are the same objects there, in the same colour, place, size and shape?

A weight-free image-image metric (pixels only: no ground truth, no model, and none of the
describer's detector, :mod:`repainter.bench.world.analysis`; ``tests/sim/test_independence.py``).
It reads each image as a background and a set of flat-coloured regions, matches the regions one
to one, and grades each matched pair attribute by attribute:

1. **Pixels.** The image is resized (box filter) to ``size`` x ``size``, converted to CIELAB and
   smoothed with a 2 x 2 mean, which cancels a one-pixel checker (a textured fill) but keeps edges.
2. **Background.** A plane (``L, a, b`` each affine in ``x, y``) is fitted to the border pixels,
   twice, the second time without border pixels more than ``foreground_delta`` (CIE76) away from
   the first fit: a solid background or a linear gradient, with objects cut by the edge ignored.
   Pixels further than ``foreground_delta`` from the plane are foreground. (When fewer than 8
   border pixels fit the first plane, objects cover the border and that plane is kept.)
3. **Regions.** A foreground pixel is *core* when no 4-neighbour differs from it by
   ``edge_delta`` or more (flat colour); connected cores are the seeds. Every other foreground
   pixel (an edge's blended fringe, an outline ring) joins the nearest seed within ``fringe``
   pixels, so an outlined object is one region coloured by its fill. Touching regions whose
   core colours are within ``edge_delta`` are one region (a star's points can lose their link to
   its body where the fringe is wider than the neck), and regions under ``min_area`` of the
   image are dropped (anti-aliasing fragments). A stroke too thin to hold a flat core (a line or
   an unfilled outline under about 4 px wide at ``size``) has no seed and is not read at all.
4. **Matching.** A pair's credit is the mean of four credits in [0, 1]: colour
   ``1 - dE / max_delta`` (mean CIELAB), position ``1 - distance / position_range`` (centroids,
   image fractions), size ``1 - |ln(area ratio)| / ln(4)`` and shape ``(IoU - 0.5) / 0.5``, the
   IoU of the two regions centred on their centroids and scaled to equal area (orientation kept,
   so a diamond is not a square). Regions are matched one to one to maximise the summed credit
   (Hungarian); the objects' score is that sum over the larger of the two region counts, so a
   missing or an extra object costs a whole object, while a wrong object in its place still
   earns whatever credit its colour, place, size and shape earn. The shape grid spans 2.4
   equal-area radii each way, so a very elongated region is cut at its ends.
5. **Score** = ``object_weight`` x objects + (1 - ``object_weight``) x background, where the
   background credit is ``1 - mean dE / max_delta`` between the two fitted planes over a 3 x 3 grid.

What it is for: scenes of distinct filled objects on a plain or graded background, such as the
offline world (the only kind of image on which it has been validated). Both images are squashed
to a square, so compare images of one aspect ratio; thin line drawings are not its kind (above).
On photographs the regions are whatever flat patches the thresholds find: on graded damage of
the scikit-image photos it ranks at a mean Kendall tau of 0.72 (SSIM 0.97; VALIDITY.md, part b),
so a model-based metric (``clip_i``, ``dinov2``) is the better choice there.

Why it exists: the pixel-pooled scores (``lab_layout``, ``texture_energy``) weigh a wrong shape
about as much as a misplaced or missing object, so on the simulation bench they could not order a
model that draws wrong shapes against one that misplaces and miscounts (datasets/sim/README.md).

>>> from PIL import Image, ImageDraw
>>> from repainter.backends.base import Reference
>>> def scene(x, shape="ellipse", fill=(220, 40, 40)):
...     img = Image.new("RGB", (128, 128), (250, 250, 250))
...     getattr(ImageDraw.Draw(img), shape)([x, 48, x + 32, 80], fill=fill)
...     return img
>>> metric = RegionMatchSimilarity()
>>> same, moved, square, blue = metric(Reference("r", scene(20)), [
...     scene(20), scene(60), scene(20, "rectangle"), scene(20, fill=(40, 40, 220))])
>>> same, same > moved > 0.5, same > square > 0.5, same > blue > 0.5
(1.0, True, True, True)
>>> [round(v, 6) for v in metric(Reference("r", scene(20)), [Image.new("RGB", (128, 128), (250, 250, 250))])]
[0.25]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image
from scipy import ndimage
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from skimage.segmentation import expand_labels

from repainter.backends.base import Metric, Reference
from repainter.backends.metrics._preprocess import box_lab

#: Side of the grid each region's mask is resampled onto for the shape IoU, and its half-width
#: in units of the region's equal-area radius (2.4 holds a 1.6:1 ellipse or a star's points).
_SHAPE_GRID = 25
_SHAPE_EXTENT = 2.4


@dataclass(frozen=True)
class Region:
    """One region: mean CIELAB colour, centroid and area as image fractions, canonical mask."""

    colour: np.ndarray
    x: float
    y: float
    area: float
    mask: np.ndarray


@dataclass(frozen=True)
class Layout:
    """An image read as a background plane and regions."""

    background: np.ndarray  # (3, 3) plane coefficients: [1, x, y] -> L, a, b
    regions: tuple[Region, ...]


class RegionMatchSimilarity(Metric):
    """Object-level similarity in [0, 1] (weight-free): regions matched and graded one to one.

    Colour, position, size and shape per matched pair; a missing or extra object costs a whole
    object (see the module docstring)."""

    name = "region_match"
    higher_is_better = True

    def __init__(self, size: int = 128, foreground_delta: float = 12.0, edge_delta: float = 10.0,
                 min_area: float = 1.5e-3, fringe: int = 3, max_delta: float = 40.0,
                 position_range: float = 0.5, object_weight: float = 0.75):
        if size < 16:
            raise ValueError("region_match size must be >= 16")
        if min(foreground_delta, edge_delta, max_delta, position_range) <= 0 or min_area < 0 \
                or fringe < 0:
            raise ValueError("region_match deltas and ranges must be > 0, min_area and fringe >= 0")
        if not 0.0 <= object_weight <= 1.0:
            raise ValueError("region_match object_weight must be in [0, 1]")
        self.size = int(size)
        self.foreground_delta, self.edge_delta = float(foreground_delta), float(edge_delta)
        self.min_area, self.fringe = float(min_area), int(fringe)
        self.max_delta, self.position_range = float(max_delta), float(position_range)
        self.object_weight = float(object_weight)

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "size": self.size, "foreground_delta": self.foreground_delta,
                "edge_delta": self.edge_delta, "min_area": self.min_area,
                "fringe": self.fringe, "max_delta": self.max_delta,
                "position_range": self.position_range, "object_weight": self.object_weight}

    # -- reading an image ----------------------------------------------------------------------

    def _lab(self, image: Image.Image) -> np.ndarray:
        return ndimage.uniform_filter(box_lab(image, self.size), size=(2, 2, 1), mode="nearest")

    def _background(self, lab: np.ndarray) -> np.ndarray:
        n = self.size
        border = np.zeros((n, n), dtype=bool)
        border[:2], border[-2:], border[:, :2], border[:, -2:] = True, True, True, True
        rows, cols = np.nonzero(border)
        design = np.column_stack([np.ones(len(rows)), (cols + 0.5) / n, (rows + 0.5) / n])
        colours = lab[rows, cols]
        keep = np.ones(len(rows), dtype=bool)
        for _ in range(2):
            plane, *_ = np.linalg.lstsq(design[keep], colours[keep], rcond=None)
            residual = np.linalg.norm(design @ plane - colours, axis=1)
            if (residual <= self.foreground_delta).sum() < 8:  # objects cover the border
                break
            keep = residual <= self.foreground_delta
        return plane

    def _plane_image(self, plane: np.ndarray) -> np.ndarray:
        t = (np.arange(self.size) + 0.5) / self.size
        xx, yy = np.meshgrid(t, t)
        return plane[0] + xx[..., None] * plane[1] + yy[..., None] * plane[2]

    def _regions(self, lab: np.ndarray, foreground: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """(mask, core) per region: cores are connected flat foreground; every other foreground
        pixel (an edge's fringe, an outline) joins the nearest core within ``fringe`` pixels."""
        # the largest colour step from a pixel to any of its 4-neighbours
        step = np.zeros(lab.shape[:2])
        down = np.linalg.norm(np.diff(lab, axis=0), axis=2)
        right = np.linalg.norm(np.diff(lab, axis=1), axis=2)
        for view, jump in ((step[1:], down), (step[:-1], down),
                           (step[:, 1:], right), (step[:, :-1], right)):
            np.maximum(view, jump, out=view)
        cores, count = ndimage.label(foreground & (step < self.edge_delta))
        grown = np.where(foreground, expand_labels(cores, distance=self.fringe), 0)
        # touching regions of one colour are one region (a star's points can lose their link
        # to its body where the fringe is wider than the neck)
        index = np.arange(1, count + 1)
        mean = np.stack([ndimage.mean(lab[..., c], cores, index) for c in range(3)], axis=-1)
        pairs = []
        for a, b in ((grown[:, :-1], grown[:, 1:]), (grown[:-1], grown[1:])):
            touch = (a > 0) & (b > 0) & (a != b)
            pairs.append(np.stack([a[touch], b[touch]], axis=1))
        pairs = np.concatenate(pairs)
        close = np.linalg.norm(mean[pairs[:, 0] - 1] - mean[pairs[:, 1] - 1], axis=1) < self.edge_delta
        merge = coo_matrix((np.ones(int(close.sum())), (pairs[close, 0], pairs[close, 1])),
                           shape=(count + 1, count + 1))
        _, group = connected_components(merge, directed=False)
        return [(np.isin(grown, members), np.isin(cores, members))
                for members in (index[group[1:] == g] for g in np.unique(group[1:]))]

    def _canonical(self, mask: np.ndarray, cy: float, cx: float) -> np.ndarray:
        radius = math.sqrt(mask.sum() / math.pi)
        t = np.linspace(-_SHAPE_EXTENT, _SHAPE_EXTENT, _SHAPE_GRID) * radius
        yy, xx = np.meshgrid(cy + t, cx + t, indexing="ij")
        return ndimage.map_coordinates(mask.astype(np.float64), [yy, xx], order=1, cval=0.0)

    def layout(self, image: Image.Image) -> Layout:
        """Read ``image`` as a background plane and its regions."""
        lab = self._lab(image)
        plane = self._background(lab)
        foreground = np.linalg.norm(lab - self._plane_image(plane), axis=2) > self.foreground_delta
        regions = []
        total = float(self.size * self.size)
        for mask, core in self._regions(lab, foreground):
            area = float(mask.sum())
            if area / total < self.min_area:
                continue
            cy, cx = ndimage.center_of_mass(mask)
            regions.append(Region(colour=lab[core].mean(axis=0),
                                  x=(cx + 0.5) / self.size, y=(cy + 0.5) / self.size,
                                  area=area / total, mask=self._canonical(mask, cy, cx)))
        return Layout(background=plane, regions=tuple(regions))

    # -- comparing two readings ----------------------------------------------------------------

    def _pair_credit(self, a: Region, b: Region) -> float:
        colour = 1.0 - min(float(np.linalg.norm(a.colour - b.colour)) / self.max_delta, 1.0)
        position = 1.0 - min(math.hypot(a.x - b.x, a.y - b.y) / self.position_range, 1.0)
        size = 1.0 - min(abs(math.log(a.area / b.area)) / math.log(4.0), 1.0)
        iou = float(np.minimum(a.mask, b.mask).sum() / max(np.maximum(a.mask, b.mask).sum(), 1e-9))
        shape = min(max((iou - 0.5) / 0.5, 0.0), 1.0)
        return (colour + position + size + shape) / 4.0

    def _objects(self, ref: Layout, cand: Layout) -> float:
        if not ref.regions or not cand.regions:
            return float(len(ref.regions) == len(cand.regions))
        credit = np.array([[self._pair_credit(a, b) for b in cand.regions] for a in ref.regions])
        rows, cols = linear_sum_assignment(credit, maximize=True)
        return float(credit[rows, cols].sum()) / max(len(ref.regions), len(cand.regions))

    def _background_credit(self, ref: Layout, cand: Layout) -> float:
        t = np.array([1 / 6, 1 / 2, 5 / 6])
        xx, yy = np.meshgrid(t, t)
        design = np.column_stack([np.ones(9), xx.ravel(), yy.ravel()])
        distance = np.linalg.norm(design @ ref.background - design @ cand.background, axis=1)
        return 1.0 - min(float(distance.mean()) / self.max_delta, 1.0)

    def prepare(self, reference: Reference) -> Layout:
        return self.layout(reference.image)

    def score(self, prepared: Layout, candidates: Sequence[Image.Image]) -> list[float]:
        out = []
        for image in candidates:
            cand = self.layout(image)
            value = (self.object_weight * self._objects(prepared, cand)
                     + (1.0 - self.object_weight) * self._background_credit(prepared, cand))
            out.append(float(value))
        return out
