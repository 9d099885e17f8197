"""What the ``sim-describer`` sees: an image at one fixed resolution, with fixed perceptual noise.

The image is downsampled to ``resolution`` pixels (a real MLLM's vision tower sees a few hundred
pixels), analysed by the world's region detector (:func:`repainter.bench.world.analysis.analyse`), and
every measurement is perturbed by noise seeded by the image's pixels and the describer's seed, so
the same image is always seen the same way, and two renders differ in noise like two glances.
The measurements are then quantised into the describer's concepts
(:mod:`repainter.bench.sim.phrasing`): this one perception serves describe, critique, judge and revise.

The truth metric (:mod:`repainter.bench.sim.truth`) never uses this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from repainter.bench.sim.phrasing import (
    SIZE_LEVELS,
    X_LEVELS,
    Y_LEVELS,
    BackgroundConcept,
    ObjectConcept,
    nearest_level,
)
from repainter.bench.world.analysis import analyse_cached
from repainter.bench.world.vocabulary import COLORS, OBJECT_COLORS, nearest_color_name

_BACKGROUND_NAMES = tuple(COLORS)


@dataclass(frozen=True)
class SeenObject:
    concept: ObjectConcept
    x: float
    y: float
    size: float
    rgb: tuple[int, int, int]


@dataclass(frozen=True)
class Percept:
    background: BackgroundConcept
    objects: tuple[SeenObject, ...]


def _noise_rng(image: Image.Image, seed: int) -> np.random.Generator:
    digest = hashlib.sha256(image.tobytes() + repr(image.size).encode()).digest()
    return np.random.default_rng([int.from_bytes(digest[:4], "big"), int(seed) & 0xFFFFFFFF])


def perceive(image: Image.Image, resolution: int = 160, noise: float = 1.0, seed: int = 0,
             max_objects: int = 5) -> Percept:
    """The describer's view of ``image`` (deterministic for the same pixels and seed).

    ``noise`` scales the perturbations: position s.d. 0.025, size s.d. 8 %, colour s.d. 5 RGB
    levels per channel (``noise=0``: exact analysis at ``resolution``).
    """
    small = image.convert("RGB")
    if small.size != (resolution, resolution):
        small = small.resize((resolution, resolution), Image.Resampling.BILINEAR)
    rng = _noise_rng(small, seed)
    found = analyse_cached(small)
    seen = []
    for obj in found.objects[:max_objects]:
        dx, dy = rng.normal(0, 0.025 * noise, 2)
        x, y = float(obj.x + dx), float(obj.y + dy)
        size = float(obj.size * np.exp(rng.normal(0, 0.08 * noise)))
        rgb = tuple(int(np.clip(round(c + n), 0, 255)) for c, n in zip(obj.rgb, rng.normal(0, 5 * noise, 3)))
        concept = ObjectConcept(
            shape=obj.shape, color=nearest_color_name(rgb, OBJECT_COLORS),
            size=nearest_level(SIZE_LEVELS, size, log=True), x=nearest_level(X_LEVELS, x),
            y=nearest_level(Y_LEVELS, y), style=obj.style)
        seen.append(SeenObject(concept, x, y, size, rgb))  # type: ignore[arg-type]
    bg = found.background
    jitter = rng.normal(0, 5 * noise, 6)
    c1 = tuple(int(np.clip(round(c + n), 0, 255)) for c, n in zip(bg.rgb, jitter[:3]))
    background = BackgroundConcept("solid", nearest_color_name(c1, _BACKGROUND_NAMES))
    if bg.kind == "gradient" and bg.rgb2 is not None:
        c2 = tuple(int(np.clip(round(c + n), 0, 255)) for c, n in zip(bg.rgb2, jitter[3:]))
        name2 = nearest_color_name(c2, _BACKGROUND_NAMES)
        if name2 != background.color:
            background = BackgroundConcept("gradient", background.color, name2, bg.direction)
    return Percept(background, tuple(seen))
