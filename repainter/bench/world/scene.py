"""Scenes of the offline world: their ground truth and how they are drawn.

A :class:`SceneSpec` is a background (a solid colour, or a two-colour linear gradient running
top-to-bottom or left-to-right) and 1-5 :class:`ObjectSpec` drawn in order. Every object has a
shape, a colour (a vocabulary name and its RGB), an equal-area ``size`` (the radius of the circle
of the same area, as a fraction of the image width: a ``square`` of size 0.1 covers as many pixels
as a ``circle`` of radius 0.1), a centre ``x``, ``y`` (fractions of the image, y downwards) and a
style (``flat``; ``outlined`` with a black ring; ``textured`` with a fine checker pattern of the
colour +/- a small delta, whose mean is the colour).

Rendering is deterministic (no randomness at all) and antialiased by 2x supersampling.

>>> spec = SceneSpec(background=Background(color="white", rgb=(250, 250, 250)),
...                  objects=[ObjectSpec(shape="circle", color="red", rgb=(220, 40, 40),
...                                      size=0.2, x=0.5, y=0.5)])
>>> img = render_scene(spec, size=64)
>>> img.size, img.getpixel((32, 32)), img.getpixel((1, 1))
((64, 64), (220, 40, 40), (250, 250, 250))
>>> SceneSpec.model_validate_json(spec.model_dump_json()) == spec
True
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw
from pydantic import BaseModel, ConfigDict, Field
from scipy import ndimage

from repainter.bench.world.vocabulary import OUTLINE_RGB

Shape = Literal["circle", "ellipse", "square", "diamond", "triangle", "star"]
Style = Literal["flat", "outlined", "textured"]

SUPERSAMPLE = 2
#: Outline ring width and checker cell size, as fractions of the image width (3 px / 2 px at 256).
OUTLINE_WIDTH = 3 / 256
TEXTURE_CELL = 2 / 256
TEXTURE_DELTA = 22
ELLIPSE_ASPECT = 1.6
STAR_INNER = 0.45


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Background(_Model):
    kind: Literal["solid", "gradient"] = "solid"
    color: str
    rgb: tuple[int, int, int]
    #: The gradient's end colour (``kind == "gradient"``).
    color2: str | None = None
    rgb2: tuple[int, int, int] | None = None
    #: ``vertical``: ``color`` at the top to ``color2`` at the bottom;
    #: ``horizontal``: left to right.
    direction: Literal["vertical", "horizontal"] = "vertical"


class ObjectSpec(_Model):
    shape: Shape
    color: str
    rgb: tuple[int, int, int]
    size: float = Field(gt=0, le=0.5)
    x: float = Field(ge=-0.5, le=1.5)
    y: float = Field(ge=-0.5, le=1.5)
    style: Style = "flat"


class SceneSpec(_Model):
    background: Background
    objects: list[ObjectSpec] = Field(default_factory=list)


# -- geometry ---------------------------------------------------------------------------------


def _star_outer(radius: float) -> float:
    area_factor = 5 * STAR_INNER * math.sin(math.radians(36))
    return radius * math.sqrt(math.pi / area_factor)


def shape_polygon(shape: str, x: float, y: float, radius: float) -> list[tuple[float, float]]:
    """Vertices (pixels) of an equal-area ``shape`` of ``radius`` centred (centroid) at x, y."""
    if shape == "square":
        h = radius * math.sqrt(math.pi) / 2
        return [(x - h, y - h), (x + h, y - h), (x + h, y + h), (x - h, y + h)]
    if shape == "diamond":
        d = radius * math.sqrt(math.pi) / math.sqrt(2)
        return [(x, y - d), (x + d, y), (x, y + d), (x - d, y)]
    if shape == "triangle":
        side = radius * math.sqrt(4 * math.pi / math.sqrt(3))
        height = side * math.sqrt(3) / 2
        return [(x, y - 2 * height / 3), (x + side / 2, y + height / 3),
                (x - side / 2, y + height / 3)]
    if shape == "star":
        outer = _star_outer(radius)
        pts = []
        for k in range(10):
            r = outer if k % 2 == 0 else outer * STAR_INNER
            angle = -math.pi / 2 + k * math.pi / 5
            pts.append((x + r * math.cos(angle), y + r * math.sin(angle)))
        return pts
    raise ValueError(f"not a polygon shape: {shape}")


def shape_extent(shape: str, radius: float) -> tuple[float, float]:
    """Half width and half height of the shape's bounding box (for its centroid)."""
    if shape == "circle":
        return radius, radius
    if shape == "ellipse":
        return radius * math.sqrt(ELLIPSE_ASPECT), radius / math.sqrt(ELLIPSE_ASPECT)
    pts = np.array(shape_polygon(shape, 0.0, 0.0, radius))
    return float(np.abs(pts[:, 0]).max()), float(np.abs(pts[:, 1]).max())


def circumradius(shape: str, radius: float) -> float:
    if shape == "circle":
        return radius
    if shape == "ellipse":
        return radius * math.sqrt(ELLIPSE_ASPECT)
    pts = np.array(shape_polygon(shape, 0.0, 0.0, radius))
    return float(np.hypot(pts[:, 0], pts[:, 1]).max())


def draw_shape_mask(draw: ImageDraw.ImageDraw, shape: str, x: float, y: float, radius: float,
                    fill: int = 255) -> None:
    if shape == "circle":
        draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill)
    elif shape == "ellipse":
        a, b = radius * math.sqrt(ELLIPSE_ASPECT), radius / math.sqrt(ELLIPSE_ASPECT)
        draw.ellipse([x - a, y - b, x + a, y + b], fill=fill)
    else:
        draw.polygon(shape_polygon(shape, x, y, radius), fill=fill)


# -- rendering --------------------------------------------------------------------------------


def _background(bg: Background, size: int) -> np.ndarray:
    c1 = np.array(bg.rgb, dtype=np.float32)
    if bg.kind == "solid" or bg.rgb2 is None:
        return np.broadcast_to(c1, (size, size, 3)).copy()
    c2 = np.array(bg.rgb2, dtype=np.float32)
    t = (np.arange(size, dtype=np.float32) + 0.5) / size
    ramp = c1[None, :] * (1 - t[:, None]) + c2[None, :] * t[:, None]  # (size, 3)
    if bg.direction == "vertical":
        return np.broadcast_to(ramp[:, None, :], (size, size, 3)).copy()
    return np.broadcast_to(ramp[None, :, :], (size, size, 3)).copy()


def render_scene(spec: SceneSpec, size: int = 256) -> Image.Image:
    """Draw ``spec`` as a ``size`` x ``size`` RGB image (deterministic)."""
    ss = SUPERSAMPLE
    big = size * ss
    canvas = _background(spec.background, big)
    yy, xx = np.mgrid[0:big, 0:big]
    cell = max(1, round(TEXTURE_CELL * big))
    checker = (((xx // cell) + (yy // cell)) % 2).astype(np.float32) * 2 - 1  # +1 / -1
    ring = max(1, round(OUTLINE_WIDTH * big))
    for obj in spec.objects:
        mask_img = Image.new("L", (big, big), 0)
        draw_shape_mask(ImageDraw.Draw(mask_img), obj.shape, obj.x * big, obj.y * big,
                        obj.size * big)
        mask = np.asarray(mask_img) > 127
        if not mask.any():
            continue
        rows, cols = np.nonzero(mask)
        r0, r1 = max(rows.min() - ring - 1, 0), min(rows.max() + ring + 2, big)
        c0, c1 = max(cols.min() - ring - 1, 0), min(cols.max() + ring + 2, big)
        sub = mask[r0:r1, c0:c1]
        colour = np.array(obj.rgb, dtype=np.float32)
        layer = np.broadcast_to(colour, sub.shape + (3,)).copy()
        if obj.style == "textured":
            layer = np.clip(layer + TEXTURE_DELTA * checker[r0:r1, c0:c1, None], 0, 255)
        elif obj.style == "outlined":
            inner = ndimage.binary_erosion(sub, iterations=ring)
            layer[sub & ~inner] = OUTLINE_RGB
        region = canvas[r0:r1, c0:c1]
        region[sub] = layer[sub]
    small = canvas.reshape(size, ss, size, ss, 3).mean(axis=(1, 3))
    return Image.fromarray(np.clip(np.rint(small), 0, 255).astype(np.uint8), "RGB")
