"""Retrieval as a T2I model (GILL, TIGeR): each prompt is answered with the best-matching image
of a gallery instead of a generated one.

A retrieval "model" is a useful baseline on a leaderboard: it shows how far the loop gets when
the model can only pick an existing image, and what a generator adds over retrieval.

Gallery
    ``gallery`` names a dataset the way a run spec does: ``{name: world}``,
    ``{name: folder, params: {path: ...}}``, optionally with ``categories`` and ``limit``. It is
    built with :func:`repainter.datasets.load_dataset`; items that fail to load are left out.

Methods
    * ``clip``: an open_clip model's text tower embeds the prompt, its image tower the gallery;
      the score is their cosine. The open_clip parameters (``model``, ``pretrained``,
      ``checkpoint``, ``model_config``, ``quick_gelu``, ``device``, ``batch_size``) are those of
      the ``clip_i`` metric, which loads the model (local checkpoints, custom configs, offline
      checks). ``tokenizer`` (a Hugging Face tokenizer id or folder) overrides the model's own.
    * ``scene``: for the built-in world, with no weights. The prompt is parsed with the world's
      grammar (:func:`repainter.world.grammar.parse_prompt`) into background and object clauses;
      every gallery image is analysed once (:func:`repainter.world.analysis.analyse`); the score
      is minus a matching cost: background colour difference plus a one-to-one (Hungarian) match
      of object clauses with detected objects on colour, shape, position, size and style, with a
      fixed cost for every object the prompt names that the image lacks and every extra object.

Gallery features are computed once per process and stored as ``.npz`` files in ``cache_dir``
(default ``$REPAINTER_CACHE/retrieval``; ``cache_dir: false`` keeps them in memory only), keyed
by the gallery's identity (spec, item ids, file sizes and times) and the feature extractor's.

Leave-one-out
    A reference must never retrieve itself. The graph does not tell a T2I backend which case it
    renders for, so the backend reads :data:`repainter.instrument.CURRENT_CASE` (set by the runner
    for each case) and excludes the gallery item whose **id** equals the case id. The gallery must
    therefore use the run dataset's ids (e.g. the same dataset) for the exclusion to apply. The
    excluded id is part of :meth:`RetrievalT2I.identity`, so renders cached for one case are
    never served to another. ``leave_one_out: false`` turns the exclusion off.

Seeds
    ``top_k`` (default 1) ranks candidates; a seed picks ``ranked[seed % top_k]``. With the default
    ``top_k: 1`` the seed is ignored and every variant of one prompt retrieves the same image; with
    ``top_k > 1`` the variants of a round can return different images.

>>> t2i = RetrievalT2I(gallery={"name": "world", "limit": 4}, method="scene", cache_dir=False)
>>> [g.metadata["retrieved"] for g in t2i.generate(
...     ["a flat illustration, light blue background, a large yellow diamond at the upper center"],
...     [0])]
['single-00']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from repainter.backends.base import GeneratedImage, Reference, T2IBackend
from repainter.gallery import Gallery, gallery_features, resolve_cache_dir
from repainter.instrument import CURRENT_CASE
from repainter.registry import T2I

logger = logging.getLogger(__name__)

METHODS = ("clip", "scene")

# -- the scene method's features and matching -------------------------------------------------

#: The code of the ``shape`` column of :func:`scene_features` (its index here; -1: unknown).
SCENE_SHAPES = ("circle", "ellipse", "square", "diamond", "triangle", "star")
_STYLES = ("flat", "outlined", "textured")
#: Columns of the per-object feature table.
_OBJ_COLS = ("item", "shape", "r", "g", "b", "x", "y", "size", "style")
#: Detected objects smaller than this equal-area radius are ignored (noise, antialiasing).
MIN_SCENE_OBJECT = 0.03
MISSING_OBJECT_COST = 1.5
EXTRA_OBJECT_COST = 0.75


def scene_features(ids: list[str], references: list[Reference]) -> dict[str, np.ndarray]:
    """World analysis of each image as arrays: ``background`` (N, 7) ``kind, rgb, rgb2``;
    ``objects`` (K, 9) with the columns of ``_OBJ_COLS``."""
    from repainter.world.analysis import analyse_cached

    backgrounds, objects = [], []
    for index, ref in enumerate(references):
        seen = analyse_cached(ref.image)
        bg = seen.background
        rgb2 = bg.rgb2 if bg.rgb2 is not None else bg.rgb
        backgrounds.append([1.0 if bg.kind == "gradient" else 0.0, *bg.rgb, *rgb2])
        for o in seen.objects:
            if o.size < MIN_SCENE_OBJECT:
                continue
            objects.append([index, SCENE_SHAPES.index(o.shape) if o.shape in SCENE_SHAPES else -1, *o.rgb,
                            o.x, o.y, o.size, _STYLES.index(o.style) if o.style in _STYLES else 0])
    return {"background": np.array(backgrounds, dtype=np.float64).reshape(-1, 7),
            "objects": np.array(objects, dtype=np.float64).reshape(-1, len(_OBJ_COLS))}


def _lab(rgb: np.ndarray) -> np.ndarray:
    from repainter.world.vocabulary import lab

    return np.asarray(lab(np.asarray(rgb, dtype=np.float64).reshape(-1, 3))).reshape(-1, 3)


def scene_scores(prompt: str, features: dict[str, np.ndarray]) -> np.ndarray:
    """Minus the matching cost of ``prompt`` with every gallery item (higher = better match)."""
    from scipy.optimize import linear_sum_assignment

    from repainter.world.grammar import parse_prompt
    from repainter.world.vocabulary import COLORS

    parsed = parse_prompt(prompt)
    n = len(features["ids"])
    cost = np.zeros(n)
    bg = parsed.background
    if bg is not None and bg.color in COLORS:
        have = features["background"]
        want1 = _lab(COLORS[bg.color])[0]
        if bg.kind == "gradient" and bg.color2 in COLORS:
            want2 = _lab(COLORS[bg.color2])[0]
            d = (np.linalg.norm(_lab(have[:, 1:4]) - want1, axis=1)
                 + np.linalg.norm(_lab(have[:, 4:7]) - want2, axis=1)) / 2
            d = d + 10.0 * (have[:, 0] == 0)  # a solid background for a gradient prompt
        else:
            mean_rgb = (have[:, 1:4] + have[:, 4:7]) / 2
            d = np.linalg.norm(_lab(mean_rgb) - want1, axis=1) + 10.0 * (have[:, 0] == 1)
        cost += np.minimum(d / 50.0, 1.5)
    clauses = parsed.expanded()
    table = features["objects"]
    obj_lab = _lab(table[:, 2:5]) if len(table) else np.zeros((0, 3))
    want_lab = [(_lab(COLORS[c.color])[0] if c.color in COLORS else None) for c in clauses]
    for item in range(n):
        rows = np.nonzero(table[:, 0] == item)[0] if len(table) else np.zeros(0, int)
        if not clauses:
            cost[item] += 0.25 * EXTRA_OBJECT_COST * len(rows)  # no object asked for
            continue
        if len(rows) == 0:
            cost[item] += MISSING_OBJECT_COST * len(clauses)
            continue
        pair = np.zeros((len(clauses), len(rows)))
        for ci, clause in enumerate(clauses):
            objs = table[rows]
            if clause.has_position:
                cx = 0.5 if clause.x is None else clause.x
                cy = 0.5 if clause.y is None else clause.y
                pair[ci] += np.minimum(np.hypot(objs[:, 5] - cx, objs[:, 6] - cy), 1.0)
            else:
                pair[ci] += 0.15
            if clause.shape in SCENE_SHAPES:
                pair[ci] += np.where(objs[:, 1] == SCENE_SHAPES.index(clause.shape), 0.0, 0.5)
            else:
                pair[ci] += 0.15
            if want_lab[ci] is not None:
                pair[ci] += 0.8 * np.minimum(
                    np.linalg.norm(obj_lab[rows] - want_lab[ci], axis=1) / 60.0, 1.0)
            else:
                pair[ci] += 0.15
            if clause.size:
                pair[ci] += np.minimum(0.3 * np.abs(np.log(objs[:, 7] / clause.size)), 0.5)
            style = clause.style or parsed.style
            if style in _STYLES:
                pair[ci] += np.where(objs[:, 8] == _STYLES.index(style), 0.0, 0.2)
        # matching both is never worse than leaving both unmatched
        pair = np.minimum(pair, MISSING_OBJECT_COST + EXTRA_OBJECT_COST)
        r, c = linear_sum_assignment(pair)
        matched = len(r)
        cost[item] += (pair[r, c].sum() + MISSING_OBJECT_COST * (len(clauses) - matched)
                       + EXTRA_OBJECT_COST * (len(rows) - matched))
    return -cost


# -- the backend -----------------------------------------------------------------------------


@T2I.register("retrieval")
class RetrievalT2I(T2IBackend):
    """Retrieval baseline: answers each prompt with the best-matching gallery image (clip/scene)."""

    kind = "retrieval"

    def __init__(
        self,
        gallery: Any = None,
        method: str = "clip",
        top_k: int = 1,
        leave_one_out: bool = True,
        cache_dir: str | bool | None = None,
        size: int | None = None,
        # open_clip (method "clip"), as in the clip_i metric
        model: str | None = None,
        pretrained: str | None = None,
        checkpoint: str | None = None,
        model_config: dict[str, Any] | str | None = None,
        quick_gelu: bool | None = None,
        tokenizer: str | None = None,
        device: str = "auto",
        batch_size: int = 32,
    ):
        if gallery is None:
            raise ValueError("retrieval: 'gallery' is required, e.g. {name: world}")
        if method not in METHODS:
            raise ValueError(f"retrieval: unknown method {method!r}; use one of {', '.join(METHODS)}")
        if int(top_k) < 1:
            raise ValueError("retrieval: top_k must be >= 1")
        if size is not None and not 16 <= int(size) <= 4096:
            raise ValueError("retrieval: size must be between 16 and 4096 pixels, or null")
        self.method = method
        self.top_k = int(top_k)
        self.leave_one_out = bool(leave_one_out)
        self.size = int(size) if size else None
        self.cache_dir = resolve_cache_dir(cache_dir)
        self.gallery = Gallery(gallery)
        self._gallery_identity = self.gallery.identity()
        self._clip = None
        self._text = None
        self.tokenizer_name = tokenizer
        if method == "clip":
            from repainter.backends.metrics.clip_i import ClipImageSimilarity, ClipTextEncoder
            from repainter.weights import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

            if model is None:
                model = DEFAULT_CLIP_MODEL
                pretrained = DEFAULT_CLIP_PRETRAINED if pretrained is None else pretrained
            self._clip = ClipImageSimilarity(
                model=model, pretrained=pretrained, checkpoint=checkpoint, device=device,
                batch_size=batch_size, model_config=model_config, quick_gelu=quick_gelu,
            )
            self._text = ClipTextEncoder(self._clip, tokenizer)
        elif any(v is not None for v in (model, pretrained, checkpoint, model_config, tokenizer)):
            raise ValueError("retrieval: model / pretrained / checkpoint / model_config / tokenizer "
                             "apply to method 'clip' only")
        self._lock = threading.Lock()

    # -- identity --------------------------------------------------------------------------

    def _extractor(self) -> dict[str, Any]:
        if self._clip is None:
            return {"kind": "scene", "version": 1, "min_object": MIN_SCENE_OBJECT}
        return {"kind": "clip", **self._clip.identity(), "metric": None}

    def _excluded(self) -> str | None:
        if not self.leave_one_out:
            return None
        current = CURRENT_CASE.get()
        return current[1] if current else None

    def identity(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.kind, "method": self.method, "top_k": self.top_k,
                               "gallery": self._gallery_identity, "size": self.size,
                               "leave_one_out": self.leave_one_out}
        if self._text is not None:
            out["model"] = self._text.identity()
        # renders depend on the excluded case: keep them apart in the render cache
        out["exclude"] = self._excluded()
        return out

    # -- features --------------------------------------------------------------------------

    def features(self) -> dict[str, np.ndarray]:
        """The gallery's features (computed once per process, stored in ``cache_dir``)."""
        compute = scene_features if self._clip is None else self._clip_features
        return gallery_features(self.gallery, self._extractor(), compute, self.cache_dir)

    def _clip_features(self, ids: list[str], references: list[Reference]) -> dict[str, np.ndarray]:
        emb = self._clip._embed([r.image for r in references])
        return {"embeddings": emb.double().numpy()}

    def embed_text(self, prompts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings (method ``clip``), float64 (N, D)."""
        return self._text.embed(prompts)

    def scores(self, prompts: Sequence[str]) -> np.ndarray:
        """(len(prompts), gallery size) match scores, higher = better (no exclusion applied)."""
        feats = self.features()
        if self._clip is None:
            return np.stack([scene_scores(p, feats) for p in prompts]).reshape(len(prompts), -1)
        gallery = feats["embeddings"]
        gallery = gallery / np.clip(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12, None)
        return self.embed_text(prompts) @ gallery.T

    def rank(self, prompt: str, exclude: str | None = None) -> list[tuple[str, float]]:
        """Gallery ids by decreasing score for ``prompt``, ``exclude`` left out (ties: id order)."""
        feats = self.features()
        row = self.scores([prompt])[0]
        order = sorted(range(len(row)), key=lambda i: (-row[i], i))
        return [(str(feats["ids"][i]), float(row[i])) for i in order
                if str(feats["ids"][i]) != exclude]

    # -- generation ------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        exclude = self._excluded()
        with self._lock:
            feats = self.features()
            table = self.scores(list(prompts))
        ids = [str(i) for i in feats["ids"]]
        out = []
        for prompt, seed, row in zip(prompts, seeds, table, strict=True):
            order = [i for i in sorted(range(len(row)), key=lambda i: (-row[i], i))
                     if ids[i] != exclude]
            if not order:
                raise ValueError("retrieval: the gallery holds no item but the current case")
            k = min(self.top_k, len(order))
            pick = int(seed) % k
            index = order[pick]
            image = self.gallery.load(ids[index]).image.convert("RGB")
            if self.size and image.size != (self.size, self.size):
                image = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
            else:
                image = image.copy()
            out.append(GeneratedImage(
                image=image, prompt=prompt, seed=int(seed),
                metadata={"retrieved": ids[index], "rank": pick + 1,
                          "match_score": float(row[index]), "excluded": exclude},
            ))
        return out
