"""The world's prompt-to-gallery matcher: the ``retrieval`` T2I backend's ``scene`` method (and
the engine of DAR's ``scene`` / ``concepts`` text scorers), weight-free.

The prompt is parsed with the world's grammar (:func:`repainter.bench.world.grammar.parse_prompt`)
into background and object clauses; every gallery image is analysed once
(:func:`repainter.bench.world.analysis.analyse`); the score is minus a matching cost: background
colour difference plus a one-to-one (Hungarian) match of object clauses with detected objects on
colour, shape, position, size and style, with a fixed cost for every object the prompt names
that the image lacks and every extra object. Registered by :func:`repainter.bench.register` in
:data:`repainter.registry.RETRIEVAL_METHODS`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from repainter.references import Reference


class SceneMatcher:
    """The ``scene`` method: world analysis of the gallery, world grammar of the prompt."""

    def identity(self) -> dict[str, Any]:
        """What the gallery's features depend on (part of their cache key)."""
        return {"kind": "scene", "version": 1, "min_object": MIN_SCENE_OBJECT}

    def features(self, ids: list[str], references: list[Reference]) -> dict[str, np.ndarray]:
        return scene_features(ids, references)

    def scores(self, prompts: Sequence[str], features: dict[str, np.ndarray]) -> np.ndarray:
        return np.stack([scene_scores(p, features) for p in prompts]).reshape(len(prompts), -1)


# -- features and matching -----------------------------------------------------------------

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
    from repainter.bench.world.analysis import analyse_cached

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
    from repainter.bench.world.vocabulary import lab

    return np.asarray(lab(np.asarray(rgb, dtype=np.float64).reshape(-1, 3))).reshape(-1, 3)


def scene_scores(prompt: str, features: dict[str, np.ndarray]) -> np.ndarray:
    """Minus the matching cost of ``prompt`` with every gallery item (higher = better match)."""
    from scipy.optimize import linear_sum_assignment

    from repainter.bench.world.grammar import parse_prompt
    from repainter.bench.world.vocabulary import COLORS

    parsed = parse_prompt(prompt)
    n = len(features["ids"])
    cost = np.zeros(n)
    if parsed.background is not None and parsed.background.color in COLORS:
        cost += _background_cost(parsed.background, features["background"])
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
        pair = _pair_costs(clauses, table[rows], obj_lab[rows], want_lab, parsed.style)
        # matching both is never worse than leaving both unmatched
        pair = np.minimum(pair, MISSING_OBJECT_COST + EXTRA_OBJECT_COST)
        r, c = linear_sum_assignment(pair)
        matched = len(r)
        cost[item] += (pair[r, c].sum() + MISSING_OBJECT_COST * (len(clauses) - matched)
                       + EXTRA_OBJECT_COST * (len(rows) - matched))
    return -cost


def _background_cost(bg: Any, have: np.ndarray) -> np.ndarray:
    """Per gallery item: how far its background is from the one the prompt names."""
    from repainter.bench.world.vocabulary import COLORS

    want1 = _lab(COLORS[bg.color])[0]
    if bg.kind == "gradient" and bg.color2 in COLORS:
        want2 = _lab(COLORS[bg.color2])[0]
        d = (np.linalg.norm(_lab(have[:, 1:4]) - want1, axis=1)
             + np.linalg.norm(_lab(have[:, 4:7]) - want2, axis=1)) / 2
        d = d + 10.0 * (have[:, 0] == 0)  # a solid background for a gradient prompt
    else:
        mean_rgb = (have[:, 1:4] + have[:, 4:7]) / 2
        d = np.linalg.norm(_lab(mean_rgb) - want1, axis=1) + 10.0 * (have[:, 0] == 1)
    return np.minimum(d / 50.0, 1.5)


def _pair_costs(clauses: list[Any], objs: np.ndarray, objs_lab: np.ndarray,
                want_lab: list[np.ndarray | None], prompt_style: str | None) -> np.ndarray:
    """(clauses, detected objects) cost of matching each object clause with each object."""
    pair = np.zeros((len(clauses), len(objs)))
    for ci, clause in enumerate(clauses):
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
            pair[ci] += 0.8 * np.minimum(np.linalg.norm(objs_lab - want_lab[ci], axis=1) / 60.0, 1.0)
        else:
            pair[ci] += 0.15
        if clause.size:
            pair[ci] += np.minimum(0.3 * np.abs(np.log(objs[:, 7] / clause.size)), 0.5)
        style = clause.style or prompt_style
        if style in _STYLES:
            pair[ci] += np.where(objs[:, 8] == _STYLES.index(style), 0.0, 0.2)
    return pair
