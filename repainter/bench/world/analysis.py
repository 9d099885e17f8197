"""Image -> objects: what the offline world's "eyes" see in an image.

:func:`analyse` works on any RGB image (references and renders alike), with no access to how it
was made:

1. **background** - a colour linear in x and y is fitted robustly to the border pixels; a large
   slope makes it a vertical or horizontal gradient, otherwise a solid colour;
2. **foreground** - pixels far (RGB distance) from the fitted background;
3. **colour regions** - foreground colours, smoothed by a 4x4 box (which averages the world's
   checker texture away), are clustered greedily around histogram peaks; each cluster is split
   into connected components (``skimage.measure.label``), small ones dropped;
4. **outlines and edges** - near-black pixels (outlines) and antialiased edge pixels are given to
   the nearest region within a few pixels;
5. **per object** - area-equivalent radius (``size``), centroid (``x``, ``y``), mean colour of the
   interior (its nearest vocabulary name), shape (nearest prototype in extent / solidity /
   eccentricity / aspect / centroid-offset space, prototypes measured on masks this module
   rasterises itself from the shapes' definitions: it calls no renderer), and style: ``outlined`` when the rim is mostly near-black, ``textured`` when the
   interior's brightness varies.

Touching objects of the same colour merge into one; an occluded object may lose its shape.

>>> from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec, render_scene
>>> spec = SceneSpec(background=Background(color="white", rgb=(250, 250, 250)), objects=[
...     ObjectSpec(shape="star", color="dark red", rgb=(150, 25, 25), size=0.12, x=0.3, y=0.6)])
>>> found = analyse(render_scene(spec)).objects
>>> [(o.shape, o.color_name, round(o.x, 2), round(o.y, 2)) for o in found]
[('star', 'dark red', 0.3, 0.6)]
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image
from scipy import ndimage
from skimage.measure import label, regionprops

from repainter.bench.world.vocabulary import COLORS, basic_color, nearest_color_name
from repainter.images import to_rgb

ANALYSIS_SIZE = 256
FOREGROUND_DISTANCE = 24.0  # RGB distance from the background model
DARK_LUMA = 30.0  # outline pixels are darker than this
CLUSTER_RADIUS = 30.0
ASSIGN_RADIUS = 40.0
MIN_AREA = 30  # pixels at 256 x 256
GRADIENT_SPAN = 24.0  # RGB change across the image that makes a background a gradient
TEXTURE_STD = 6.0
EDGE_RANGE = 14.0


@dataclass
class BackgroundEstimate:
    kind: str  # "solid" | "gradient"
    rgb: tuple[int, int, int]
    rgb2: tuple[int, int, int] | None = None
    direction: str = "vertical"

    @property
    def color_name(self) -> str:
        return nearest_color_name(self.rgb)

    @property
    def color2_name(self) -> str | None:
        return nearest_color_name(self.rgb2) if self.rgb2 is not None else None

    @property
    def mean_rgb(self) -> tuple[int, int, int]:
        if self.rgb2 is None:
            return self.rgb
        return tuple(int(round((a + b) / 2)) for a, b in zip(self.rgb, self.rgb2))


@dataclass
class DetectedObject:
    shape: str
    rgb: tuple[int, int, int]
    x: float
    y: float
    size: float  # equal-area radius, fraction of the image width
    style: str
    area: int
    #: Confidence-ish distance to the nearest shape prototype (lower is surer).
    shape_distance: float = 0.0

    @property
    def color_name(self) -> str:
        return nearest_color_name(self.rgb, _OBJECT_NAMES)

    @property
    def basic_color(self) -> str:
        return basic_color(self.color_name)


_OBJECT_NAMES = tuple(c for c in COLORS if c != "white")


@dataclass
class Analysis:
    background: BackgroundEstimate
    objects: list[DetectedObject] = field(default_factory=list)  # largest first


def _as_array(image: Image.Image) -> np.ndarray:
    image = to_rgb(image)
    if image.size != (ANALYSIS_SIZE, ANALYSIS_SIZE):
        image = image.resize((ANALYSIS_SIZE, ANALYSIS_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def estimate_background(arr: np.ndarray) -> tuple[BackgroundEstimate, np.ndarray]:
    """Robust linear fit of the border colours: the estimate and the model image."""
    h, w, _ = arr.shape
    band = 3
    border = np.zeros((h, w), bool)
    border[:band] = border[-band:] = True
    border[:, :band] = border[:, -band:] = True
    ys, xs = np.nonzero(border)
    u, v = xs / (w - 1), ys / (h - 1)
    design = np.stack([np.ones_like(u), u, v], axis=1)
    colours = arr[ys, xs]
    keep = np.ones(len(u), bool)
    # start from the median colour so objects touching the border do not drag the fit
    med = np.median(colours, axis=0)
    resid = np.linalg.norm(colours - med, axis=1)
    if (resid < 40).mean() > 0.6:
        keep = resid < 40
    coef = None
    for _ in range(4):
        coef, *_ = np.linalg.lstsq(design[keep], colours[keep], rcond=None)
        resid = np.linalg.norm(colours - design @ coef, axis=1)
        thresh = max(6.0, 3.0 * float(np.median(resid[keep])))
        new_keep = resid < thresh
        if new_keep.sum() < 0.3 * len(u) or np.array_equal(new_keep, keep):
            break
        keep = new_keep
    a, bu, bv = coef
    span_u, span_v = float(np.linalg.norm(bu)), float(np.linalg.norm(bv))
    uu = (np.arange(w, dtype=np.float32) / (w - 1))[None, :, None]
    vv = (np.arange(h, dtype=np.float32) / (h - 1))[:, None, None]

    def rgb(c):
        return tuple(int(v) for v in np.clip(np.rint(c), 0, 255))

    if max(span_u, span_v) < GRADIENT_SPAN:
        centre = a + 0.5 * bu + 0.5 * bv
        estimate = BackgroundEstimate("solid", rgb(centre))
        model = np.broadcast_to(np.asarray(centre, np.float32), arr.shape)
    elif span_v >= span_u:
        estimate = BackgroundEstimate("gradient", rgb(a + 0.5 * bu), rgb(a + 0.5 * bu + bv),
                                      "vertical")
        model = (a + 0.5 * bu)[None, None, :] + vv * bv[None, None, :]
        model = np.broadcast_to(model, arr.shape)
    else:
        estimate = BackgroundEstimate("gradient", rgb(a + 0.5 * bv), rgb(a + 0.5 * bv + bu),
                                      "horizontal")
        model = (a + 0.5 * bv)[None, None, :] + uu * bu[None, None, :]
        model = np.broadcast_to(model, arr.shape)
    return estimate, model


def _cluster(colours: np.ndarray, max_clusters: int = 16) -> np.ndarray:
    """Greedy peak clustering of (N, 3) colours; the cluster centres."""
    q = np.clip(colours // 8, 0, 31).astype(np.int64)
    index = (q[:, 0] * 32 + q[:, 1]) * 32 + q[:, 2]
    counts = np.bincount(index, minlength=32**3)
    alive = np.ones(len(colours), bool)
    centres = []
    while len(centres) < max_clusters:
        peak = int(np.argmax(counts))
        if counts[peak] < MIN_AREA // 3 or alive.sum() < MIN_AREA:
            break
        centre = (np.array([peak // 1024, (peak // 32) % 32, peak % 32]) + 0.5) * 8
        for _ in range(3):
            near = alive & (np.linalg.norm(colours - centre, axis=1) < CLUSTER_RADIUS * 0.7)
            if not near.any():
                break
            centre = colours[near].mean(axis=0)
        taken = alive & (np.linalg.norm(colours - centre, axis=1) < CLUSTER_RADIUS)
        if taken.sum() < MIN_AREA // 3:
            counts[peak] = 0  # an isolated bin: skip it
            continue
        centres.append(centre)
        counts -= np.bincount(index[taken], minlength=32**3)
        counts[peak] = 0
        alive &= ~taken
    return np.array(centres, dtype=np.float32).reshape(-1, 3)


def _luma(arr: np.ndarray) -> np.ndarray:
    return arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114


def _features(region) -> np.ndarray:
    minr, minc, maxr, maxc = region.bbox
    height, width = maxr - minr, maxc - minc
    cy = region.centroid[0]
    offset = (cy - (minr + maxr - 1) / 2) / max(height, 1)
    return np.array([
        region.extent, region.solidity, region.eccentricity,
        np.log(width / max(height, 1)), offset,
    ])


_FEATURE_SCALE = np.array([0.06, 0.05, 0.15, 0.12, 0.03])


#: The world's shapes as its scenes define them (equal area, see the scene module's docstring),
#: restated here so the detector never calls a renderer it perceives.
_ELLIPSE_ASPECT, _STAR_INNER = 1.6, 0.45


def _shape_outline(shape: str, radius: float) -> list[tuple[float, float]] | None:
    """Vertices around the origin of an equal-area polygon ``shape``; None for round shapes."""
    if shape == "square":
        h = radius * np.sqrt(np.pi) / 2
        return [(-h, -h), (h, -h), (h, h), (-h, h)]
    if shape == "diamond":
        d = radius * np.sqrt(np.pi / 2)
        return [(0, -d), (d, 0), (0, d), (-d, 0)]
    if shape == "triangle":
        side = radius * np.sqrt(4 * np.pi / np.sqrt(3))
        height = side * np.sqrt(3) / 2
        return [(0, -2 * height / 3), (side / 2, height / 3), (-side / 2, height / 3)]
    if shape == "star":
        outer = radius * np.sqrt(np.pi / (5 * _STAR_INNER * np.sin(np.radians(36))))
        return [((outer if k % 2 == 0 else outer * _STAR_INNER) * np.cos(-np.pi / 2 + k * np.pi / 5),
                 (outer if k % 2 == 0 else outer * _STAR_INNER) * np.sin(-np.pi / 2 + k * np.pi / 5))
                for k in range(10)]
    return None


def _inside(shape: str, radius: float, px: np.ndarray, py: np.ndarray) -> np.ndarray:
    """Whether points (offsets from the centre) lie in the shape (even-odd rule for polygons)."""
    if shape in ("circle", "ellipse"):
        a = radius * np.sqrt(_ELLIPSE_ASPECT) if shape == "ellipse" else radius
        b = radius / np.sqrt(_ELLIPSE_ASPECT) if shape == "ellipse" else radius
        return (px / a) ** 2 + (py / b) ** 2 <= 1
    pts = _shape_outline(shape, radius)
    inside = np.zeros(px.shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(pts, pts[1:] + pts[:1]):
        crosses = (y0 > py) != (y1 > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x0 + (py - y0) * (x1 - x0) / (y1 - y0)
        inside ^= crosses & (px < at)
    return inside


def shape_mask(shape: str, size: float, image_size: int = ANALYSIS_SIZE) -> np.ndarray:
    """The centred ``shape`` of ``size`` (fraction of the width) as a pixel mask: 2x2 samples
    per pixel at their centres, a pixel counts when most of it is covered. The shape is grown by
    half a sample, as a scan-line fill counts the samples its edge passes through."""
    big = 2 * image_size
    grid = np.arange(big, dtype=np.float64) + 0.5 - big / 2
    py, px = np.meshgrid(grid, grid, indexing="ij")
    cover = _inside(shape, size * big + 0.5, px, py).astype(np.float32)
    return cover.reshape(image_size, 2, image_size, 2).mean(axis=(1, 3)) > 0.5


@cache
def _prototypes() -> tuple[tuple[str, ...], np.ndarray]:
    from repainter.bench.world.vocabulary import SHAPES

    names, feats = [], []
    for shape in SHAPES:
        for size in (0.05, 0.09, 0.15):
            region = regionprops(shape_mask(shape, size).astype(np.uint8))[0]
            names.append(shape)
            feats.append(_features(region))
    return tuple(names), np.array(feats)


def classify_shape(region) -> tuple[str, float]:
    names, protos = _prototypes()
    d = np.linalg.norm((protos - _features(region)) / _FEATURE_SCALE, axis=1)
    i = int(np.argmin(d))
    return names[i], float(d[i])


def analyse(image: Image.Image) -> Analysis:
    """Background and objects (largest first) of ``image``; see the module docstring."""
    arr = _as_array(image)
    background, model = estimate_background(arr)
    foreground = np.linalg.norm(arr - model, axis=2) > FOREGROUND_DISTANCE
    if foreground.sum() < MIN_AREA:
        return Analysis(background)
    dark = foreground & (_luma(arr) < DARK_LUMA)
    labels = _colour_regions(arr, foreground, dark)
    if labels.max() == 0:
        # only outline-dark pixels: treat dark components as objects
        comp = label(foreground, connectivity=2)
        areas = np.bincount(comp.ravel())
        for lab_id in np.nonzero(areas >= MIN_AREA)[0]:
            if lab_id:
                labels[comp == lab_id] = lab_id
        if labels.max() == 0:
            return Analysis(background)
    core = labels.copy()
    _grow_into_edges(labels, foreground)
    objects = [_detected(region, labels, core, arr, dark) for region in regionprops(labels)]
    objects.sort(key=lambda o: -o.area)
    return Analysis(background, objects)


def _colour_regions(arr: np.ndarray, foreground: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Labels (1, 2, ...) of the connected regions of one colour cluster, edges left out."""
    smooth = ndimage.uniform_filter(arr, size=(4, 4, 1), mode="nearest")
    # edge zones (where the smoothed colour still changes) belong to no region yet
    spread = (ndimage.maximum_filter(smooth, size=(3, 3, 1))
              - ndimage.minimum_filter(smooth, size=(3, 3, 1)))
    edges = np.linalg.norm(spread, axis=2) > EDGE_RANGE
    near_dark = ndimage.binary_dilation(dark, iterations=3)
    fill = foreground & ~near_dark & ~edges
    colours = smooth[fill]
    centres = _cluster(colours)
    labels = np.zeros(arr.shape[:2], np.int32)
    if not len(centres):
        return labels
    dist = np.linalg.norm(colours[:, None, :] - centres[None, :, :], axis=2)
    nearest = np.argmin(dist, axis=1)
    ok = dist[np.arange(len(colours)), nearest] < ASSIGN_RADIUS
    cluster_map = np.full(arr.shape[:2], -1, np.int32)
    fy, fx = np.nonzero(fill)
    cluster_map[fy[ok], fx[ok]] = nearest[ok]
    next_label = 1
    for k in range(len(centres)):
        comp = label(cluster_map == k, connectivity=2)
        if comp.max() == 0:
            continue
        areas = np.bincount(comp.ravel())
        for lab_id in np.nonzero(areas >= MIN_AREA)[0]:
            if lab_id == 0:
                continue
            labels[comp == lab_id] = next_label
            next_label += 1
    return labels


def _grow_into_edges(labels: np.ndarray, foreground: np.ndarray) -> None:
    """Give unassigned foreground pixels (outlines, antialiased edges) to the nearest region,
    in place."""
    unassigned = foreground & (labels == 0)
    if unassigned.any():
        dist, (iy, ix) = ndimage.distance_transform_edt(labels == 0, return_indices=True)
        # only within the same foreground blob: a stray edge never jumps to another object
        blobs = label(foreground, connectivity=2)
        grab = unassigned & (dist <= 24)
        grab[grab] = blobs[grab] == blobs[iy[grab], ix[grab]]
        labels[grab] = labels[iy[grab], ix[grab]]


def _detected(region, labels: np.ndarray, core: np.ndarray, arr: np.ndarray,
              dark: np.ndarray) -> DetectedObject:
    """One region as an object: colour of its core, style, shape, place and size."""
    size = arr.shape[0]
    mask = labels[region.slice] == region.label
    core_mask = core[region.slice] == region.label
    sub = arr[region.slice]
    interior = ndimage.binary_erosion(core_mask, iterations=2)
    if interior.sum() < 8:
        interior = core_mask
    rgb = sub[interior].mean(axis=0)
    # style: outline ring = mostly near-black rim; texture = interior brightness variance
    # an outline is a near-black band along the whole perimeter, >= ~1.5 px wide
    dark_pixels = int(dark[region.slice][mask].sum())
    outlined = dark_pixels > 1.2 * max(region.perimeter, 1.0)
    textured = float(_luma(sub)[interior].std()) > TEXTURE_STD
    style = "outlined" if outlined else ("textured" if textured else "flat")
    shape, shape_d = classify_shape(region)
    cy, cx = region.centroid
    return DetectedObject(
        shape=shape, rgb=tuple(int(v) for v in np.clip(np.rint(rgb), 0, 255)),
        x=float((cx + 0.5) / size), y=float((cy + 0.5) / size),
        size=float(np.sqrt(region.area / np.pi) / size), style=style, area=int(region.area),
        shape_distance=shape_d,
    )


_ANALYSED: OrderedDict[str, Analysis] = OrderedDict()
_ANALYSED_LOCK = threading.Lock()
#: Analyses kept by :func:`analyse_cached` (a few MB): a gallery is analysed by both the text
#: scorer and the image embedding of diffusion-augmented retrieval.
ANALYSIS_CACHE_SIZE = 4096


def analyse_cached(image: Image.Image) -> Analysis:
    """:func:`analyse`, remembered by pixel content (treat the result as read-only)."""
    rgb = to_rgb(image)
    key = hashlib.sha1(rgb.tobytes() + repr(rgb.size).encode()).hexdigest()
    with _ANALYSED_LOCK:
        if key in _ANALYSED:
            _ANALYSED.move_to_end(key)
            return _ANALYSED[key]
    found = analyse(rgb)
    with _ANALYSED_LOCK:
        _ANALYSED[key] = found
        while len(_ANALYSED) > ANALYSIS_CACHE_SIZE:
            _ANALYSED.popitem(last=False)
    return found
