"""A second renderer of the offline world, with another look: nothing in the bench was tuned on it.

It draws the same :class:`~repainter.bench.world.scene.SceneSpec` as the flat renderer
(:func:`~repainter.bench.world.scene.render_scene`), so scenes, truth and ladders are shared, but
every choice that renderer made is made differently here:

* its own shape set: circles wobble, ellipses are superellipses, squares are rounded squircles
  turned by a few degrees, diamonds, triangles and stars are soft-cornered (a smooth maximum of
  half-planes, a five-lobed polar curve); each keeps the scene's equal area;
* soft shading: a highlight towards the light and a darker rim inside every shape;
* outlines (``outlined``) of varying width around the contour, in a warm dark ink;
* textures (``textured``): diagonal stripes instead of a checker, and a fine paper grain everywhere;
* uneven light: a lighting gradient over the whole image (bright top left, dark bottom right)
  and a vignette;
* mild perspective: a ground plane below a horizon, objects lower in the frame drawn larger,
  with a soft contact shadow under each (overlaps: shadows fall on what was drawn before).

Deterministic from the scene and ``seed`` (the grain, the wobble and the turns).

>>> from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec
>>> spec = SceneSpec(background=Background(color="white", rgb=(250, 250, 250)),
...                  objects=[ObjectSpec(shape="circle", color="red", rgb=(220, 40, 40),
...                                      size=0.2, x=0.5, y=0.5)])
>>> a, b = render_painterly(spec, 64, seed=3), render_painterly(spec, 64, seed=3)
>>> a.size, a.tobytes() == b.tobytes()
((64, 64), True)
>>> r, g, _ = a.getpixel((32, 32)); r > 2 * g
True
"""

from __future__ import annotations

import hashlib
import math
from functools import cache

import numpy as np
from PIL import Image

from repainter.bench.world.scene import ObjectSpec, SceneSpec

SUPERSAMPLE = 2
HORIZON = 0.58
#: Objects at y are drawn ``PERSPECTIVE_BASE + PERSPECTIVE_SLOPE * y`` times their size.
PERSPECTIVE_BASE, PERSPECTIVE_SLOPE = 0.8, 0.4
INK_RGB = np.array([48, 30, 22], dtype=np.float32)
STRIPE_DEPTH = 26.0
GRAIN = 5.0
SOFT_CORNER = 9.0  # sharpness of the smooth maximum that rounds polygon corners


def _rounded_polygon(u: np.ndarray, v: np.ndarray, sides: int, turn: float) -> np.ndarray:
    """<= 1 inside a regular polygon of apothem 1 with rounded corners (smooth max of edges)."""
    angles = turn + np.pi / 2 + 2 * np.pi * np.arange(sides) / sides
    edges = [u * math.cos(a) + v * math.sin(a) for a in angles]
    stacked = np.stack(edges) * SOFT_CORNER
    top = stacked.max(axis=0)
    return (top + np.log(np.exp(stacked - top).sum(axis=0))) / SOFT_CORNER


def _unit_field(shape: str, u: np.ndarray, v: np.ndarray, wobble: float, turn: float) -> np.ndarray:
    """A field that is <= 1 inside ``shape`` drawn around the origin (unnormalised area)."""
    if shape in ("square", "ellipse"):
        c, s = math.cos(turn), math.sin(turn)
        u, v = u * c - v * s, u * s + v * c
    if shape == "circle":
        theta = np.arctan2(v, u)
        return np.hypot(u, v) / (1 + 0.04 * np.sin(3 * theta + wobble))
    if shape == "ellipse":
        return (np.abs(u / 1.3) ** 2.4 + np.abs(v / 0.78) ** 2.4) ** (1 / 2.4)
    if shape == "square":
        return (np.abs(u) ** 5 + np.abs(v) ** 5) ** 0.2
    if shape == "diamond":
        return _rounded_polygon(u, v, 4, math.pi / 4 + turn * 0.3)
    if shape == "triangle":
        return _rounded_polygon(u, -v, 3, 0.0)
    if shape == "star":
        theta = np.arctan2(v, u)
        return np.hypot(u, v) / (0.7 + 0.3 * np.cos(5 * (theta + np.pi / 2)))
    raise ValueError(f"painterly has no shape {shape!r}")


@cache
def _area_scale(shape: str) -> float:
    """Factor that gives the unit shape the area of the unit circle (measured on a fine grid)."""
    grid = np.linspace(-3, 3, 601)
    u, v = np.meshgrid(grid, grid)
    area = float((_unit_field(shape, u, v, 0.0, 0.0) <= 1).sum()) * (grid[1] - grid[0]) ** 2
    return math.sqrt(math.pi / area)


def _rng(spec: SceneSpec, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(f"{spec.model_dump_json()}|{int(seed)}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "big"))


def _stage(spec: SceneSpec, big: int) -> np.ndarray:
    """The background on a ground plane: the floor below the horizon a shade darker."""
    bg = spec.background
    t = (np.arange(big, dtype=np.float32) + 0.5) / big
    c1 = np.array(bg.rgb, dtype=np.float32)
    c2 = np.array(bg.rgb2 if bg.kind == "gradient" and bg.rgb2 else bg.rgb, dtype=np.float32)
    ramp = c1[None, :] * (1 - t[:, None]) + c2[None, :] * t[:, None]
    canvas = (np.broadcast_to(ramp[:, None, :], (big, big, 3)) if bg.direction == "vertical"
              else np.broadcast_to(ramp[None, :, :], (big, big, 3))).copy()
    floor = np.where(t > HORIZON, 0.9 - 0.08 * (t - HORIZON) / (1 - HORIZON), 1.0)
    return canvas * floor[:, None, None].astype(np.float32)


def _light(big: int) -> np.ndarray:
    """Uneven light over the whole image: bright top left, dim bottom right, a vignette."""
    t = (np.arange(big, dtype=np.float32) + 0.5) / big
    yy, xx = np.meshgrid(t, t, indexing="ij")
    ramp = 1.1 - 0.28 * (0.6 * xx + 0.4 * yy)
    vignette = 1 - 0.18 * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 2
    return (ramp * vignette)[..., None]


def _object_field(obj: ObjectSpec, big: int, rng: np.random.Generator):
    """The object's window, field (<= 1 inside) and polar angle, drawn with perspective."""
    scale = PERSPECTIVE_BASE + PERSPECTIVE_SLOPE * min(max(obj.y, 0.0), 1.0)
    radius = obj.size * big * scale * _area_scale(obj.shape)
    wobble, turn = rng.uniform(0, 2 * np.pi), rng.uniform(-0.12, 0.12)
    cx, cy, reach = obj.x * big, obj.y * big, radius * 2.2 + 2
    r0, r1 = max(int(cy - reach), 0), min(int(cy + reach) + 1, big)
    c0, c1 = max(int(cx - reach), 0), min(int(cx + reach) + 1, big)
    if r0 >= r1 or c0 >= c1:
        return None
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    u, v = (xx + 0.5 - cx) / radius, (yy + 0.5 - cy) / radius
    field = _unit_field(obj.shape, u, v, wobble, turn)
    return (slice(r0, r1), slice(c0, c1)), field, np.arctan2(v, u), u, v, radius


def _shadow(canvas: np.ndarray, obj: ObjectSpec, big: int) -> None:
    """A soft contact shadow on what is already drawn, below and right of the object."""
    scale = PERSPECTIVE_BASE + PERSPECTIVE_SLOPE * min(max(obj.y, 0.0), 1.0)
    r = obj.size * big * scale
    cx, cy = obj.x * big + 0.25 * r, obj.y * big + 0.8 * r
    r0, r1 = max(int(cy - r), 0), min(int(cy + r) + 1, big)
    c0, c1 = max(int(cx - 1.6 * r), 0), min(int(cx + 1.6 * r) + 1, big)
    if r0 >= r1 or c0 >= c1:
        return
    yy, xx = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    d = ((xx - cx) / (1.3 * r)) ** 2 + ((yy - cy) / (0.45 * r)) ** 2
    canvas[r0:r1, c0:c1] *= (1 - 0.3 * np.exp(-2.5 * d))[..., None]


def _paint_object(canvas: np.ndarray, obj: ObjectSpec, big: int,
                  rng: np.random.Generator) -> None:
    drawn = _object_field(obj, big, rng)
    if drawn is None:
        return
    window, field, theta, u, v, radius = drawn
    inside = field <= 1
    if not inside.any():
        return
    colour = np.array(obj.rgb, dtype=np.float32)
    # soft shading: a highlight up-left, a darker rim towards the contour
    highlight = np.exp(-((u + 0.35) ** 2 + (v + 0.4) ** 2) * 1.4)
    shade = 0.86 + 0.2 * highlight - 0.1 * np.clip(field, 0, 1) ** 4
    layer = colour * shade[..., None]
    if obj.style == "textured":
        stripes = np.sin((u + v) * radius * 2 * np.pi / max(big / 48, 2.0))
        layer = layer + STRIPE_DEPTH * stripes[..., None]
    elif obj.style == "outlined":
        width = 0.1 + 0.07 * np.sin(2 * theta + rng.uniform(0, 2 * np.pi))
        ink = field >= 1 - width
        layer[ink] = INK_RGB
    region = canvas[window]
    region[inside] = layer[inside]


def render_painterly(spec: SceneSpec, size: int = 256, seed: int = 0) -> Image.Image:
    """Draw ``spec`` as a ``size`` x ``size`` RGB image in the painterly look (deterministic)."""
    ss = SUPERSAMPLE
    big = size * ss
    rng = _rng(spec, seed)
    canvas = _stage(spec, big)
    for obj in spec.objects:
        _shadow(canvas, obj, big)
        _paint_object(canvas, obj, big, rng)
    canvas = canvas * _light(big) + rng.normal(0, GRAIN, (big, big, 1)).astype(np.float32)
    small = canvas.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
    return Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8), "RGB")
