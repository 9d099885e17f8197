"""A weight-free *semantic* image embedding for the built-in world: what is where.

Each image is analysed (:func:`repainter.bench.world.analysis.analyse`, the same analysis the
``scene-analyst`` MLLM and the ``scene`` retrieval method use) and every detected object is
drawn as a Gaussian blob at its position into a ``grid`` x ``grid`` map of its own channel:

* a (colour x shape) channel, which keeps colour **bound** to shape and position;
* a colour-only and a shape-only channel (half weight each), so a mis-classified shape still
  earns partial credit;

plus the background's colour(s). Colours are soft: an object's colour is spread over the
vocabulary's named colours (``red``, ``dark red``, ``light teal`` ...) by CIELAB distance, so a
neighbouring shade earns partial credit and two shades of one hue stay apart. Similarity is the cosine. Two images of the
same scene score near 1; swapping the colours of two objects, moving one, or changing its shape
lowers the score although the *set* of colours and shapes is unchanged. That is the point of
the embedding in diffusion-augmented retrieval (:mod:`repainter.dar`): a generated image carries
binding and layout that a bag-of-concepts text score cannot see, the way CLIP or DINOv2 image
features carry layout that a contrastive text tower blurs.

It is a stand-in for a learned image encoder in the offline world, not a general one: on a
photograph the analysis finds coloured regions, not objects.

>>> from repainter.bench.world.scene import render_scene
>>> from repainter.bench.world.generator import generate_scene
>>> emb = SceneLayoutEmbedding()
>>> a, b = generate_scene("pair", 1), generate_scene("pair", 2)
>>> sims = emb.similarities(emb.embed([render_scene(a)]), emb.embed([render_scene(a), render_scene(b)]))
>>> bool(sims[0, 0] > 0.99 > sims[0, 1])
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from repainter.bench.world.vocabulary import COLORS, SHAPES, lab
from repainter.scoring import cosine_similarities

#: The named colours an object's or background's colour is spread over.
COLOUR_NAMES: tuple[str, ...] = tuple(COLORS)
_COLOUR_LAB = np.asarray(lab(np.array([COLORS[c] for c in COLOUR_NAMES], dtype=np.float64)))
#: CIELAB distance at which a named colour's share falls to exp(-1/2) of the nearest's.
COLOUR_SIGMA = 12.0
#: Objects smaller than this equal-area radius are analysis noise (as in the retrieval method).
MIN_OBJECT = 0.03


class SceneLayoutEmbedding:
    """Objects as blobs in (colour x shape), colour and shape position maps, plus background."""

    name = "scene_layout"

    def __init__(self, grid: int = 8, sigma: float = 0.1, background_weight: float = 0.5,
                 marginal_weight: float = 0.5):
        if not 2 <= int(grid) <= 64 or not 0.01 <= float(sigma) <= 1.0:
            raise ValueError("scene_layout: grid in 2..64, sigma in 0.01..1")
        if background_weight < 0 or marginal_weight < 0:
            raise ValueError("scene_layout: weights must be >= 0")
        self.grid, self.sigma = int(grid), float(sigma)
        self.background_weight = float(background_weight)
        self.marginal_weight = float(marginal_weight)
        centres = (np.arange(self.grid) + 0.5) / self.grid
        self._cy, self._cx = np.meshgrid(centres, centres, indexing="ij")

    def identity(self) -> dict[str, Any]:
        return {"embedding": self.name, "grid": self.grid, "sigma": self.sigma,
                "background_weight": self.background_weight,
                "marginal_weight": self.marginal_weight, "min_object": MIN_OBJECT,
                "colour_sigma": COLOUR_SIGMA, "version": 2}

    @property
    def dim(self) -> int:
        n_c, n_s = len(COLOUR_NAMES), len(SHAPES)
        return (n_c * n_s + n_c + n_s) * self.grid ** 2 + n_c

    def _blob(self, x: float, y: float, size: float) -> np.ndarray:
        # wider blobs for larger objects: position error is judged relative to object size
        s = max(self.sigma, float(size))
        blob = np.exp(-((self._cx - x) ** 2 + (self._cy - y) ** 2) / (2 * s * s))
        return blob / max(np.linalg.norm(blob), 1e-12)

    def embed_one(self, image: Image.Image) -> np.ndarray:
        from repainter.bench.world.analysis import analyse_cached

        n_c, n_s, cells = len(COLOUR_NAMES), len(SHAPES), self.grid ** 2
        bound = np.zeros((n_c, n_s, cells), dtype=np.float32)
        colour_maps = np.zeros((n_c, cells), dtype=np.float32)
        shape_maps = np.zeros((n_s, cells), dtype=np.float32)
        seen = analyse_cached(image)
        for obj in seen.objects:
            if obj.size < MIN_OBJECT:
                continue
            blob = self._blob(obj.x, obj.y, obj.size).ravel()
            colour = colour_weights(obj.rgb)
            colour_maps += colour[:, None] * blob[None, :]
            if obj.shape in SHAPES:
                s = SHAPES.index(obj.shape)
                shape_maps[s] += blob
                bound[:, s, :] += colour[:, None] * blob[None, :]
        bg = seen.background
        colours = [bg.rgb] + ([bg.rgb2] if bg.rgb2 is not None else [])
        background = sum(colour_weights(rgb) for rgb in colours) / len(colours)
        parts = [(bound.ravel(), 1.0),
                 (colour_maps.ravel(), self.marginal_weight),
                 (shape_maps.ravel(), self.marginal_weight),
                 (background, self.background_weight)]
        return np.concatenate([_unit(v) * w for v, w in parts])

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        rows = [self.embed_one(image) for image in images]
        return np.stack(rows) if rows else np.zeros((0, self.dim), dtype=np.float32)

    @staticmethod
    def similarities(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        """Cosine, as for the learned embeddings of the identification metric."""
        return cosine_similarities(queries, gallery)


def colour_weights(rgb) -> np.ndarray:
    """A colour spread over :data:`COLOUR_NAMES` (unit L2 norm), nearest names weighted most."""
    d = np.linalg.norm(_COLOUR_LAB - np.asarray(lab(np.asarray(rgb, dtype=np.float64))), axis=-1)
    w = np.exp(-0.5 * ((d - d.min()) / COLOUR_SIGMA) ** 2)
    w[w < 1e-3] = 0.0
    return (w / np.linalg.norm(w)).astype(np.float32)


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(vector)
    return vector / norm if norm > 1e-12 else vector
