"""``scene_truth``: how close the scene a T2I model drew is to the reference's ground truth.

No detector is involved: the simulated T2I model reports the scene it drew
(``GeneratedImage.metadata["drawn_scene"]``, recorded in each candidate's ``metadata``) and the
metric compares the two scene specs directly, with graded partial credit per attribute.

* Objects are matched one-to-one (Hungarian, :func:`scipy.optimize.linear_sum_assignment`) to
  maximise the summed pair credit. A pair's credit is a weighted mean of
  shape (1 if equal, weight 0.25), colour (``1 - dE/40``, CIE76 in CIELAB, weight 0.25),
  position (``1 - distance/0.4`` in image fractions, weight 0.25), size
  (``1 - |ln(ratio)| / ln 2``, weight 0.15) and style (1 if equal, weight 0.10), each clipped to
  [0, 1].
* **Count**: the object score is the summed credit over ``max(#truth, #drawn)``, so a missing or
  an extra object costs a full object; 1.0 when both scenes are empty.
* **Background**: the mean colour credit at five points (the centre and the middle of each
  edge), which grades a solid background against a gradient too.
* ``scene_truth = 0.8 * objects + 0.2 * background``, in [0, 1].

>>> truth = {"background": {"color": "white", "rgb": [250, 250, 250]}, "objects": [
...     {"shape": "star", "color": "red", "rgb": [218, 40, 40], "size": 0.1, "x": 0.3, "y": 0.3}]}
>>> scene_truth(truth, truth)
1.0
>>> moved = {**truth, "objects": [{**truth["objects"][0], "x": 0.5}]}
>>> round(scene_truth(truth, moved), 3), round(scene_truth(truth, {**truth, "objects": []}), 3)
(0.9, 0.2)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from repainter.backends.base import Metric, Reference
from repainter.bench.world.scene import SceneSpec
from repainter.bench.world.vocabulary import lab

WEIGHTS = {"shape": 0.25, "color": 0.25, "position": 0.25, "size": 0.15, "style": 0.10}
OBJECT_WEIGHT = 0.8
COLOUR_RANGE = 40.0
POSITION_RANGE = 0.4


def _colour_credit(a, b) -> float:
    return max(0.0, 1.0 - float(np.linalg.norm(lab(a) - lab(b))) / COLOUR_RANGE)


def attribute_credits(truth, drawn) -> dict[str, float]:
    """Per-attribute credit in [0, 1] of one drawn object against one true object."""
    return {
        "shape": float(truth.shape == drawn.shape),
        "color": _colour_credit(truth.rgb, drawn.rgb),
        "position": max(0.0, 1.0 - math.hypot(truth.x - drawn.x, truth.y - drawn.y) / POSITION_RANGE),
        "size": max(0.0, 1.0 - abs(math.log(truth.size / drawn.size)) / math.log(2)),
        "style": float(truth.style == drawn.style),
    }


def _pair_credit(truth, drawn) -> float:
    credits = attribute_credits(truth, drawn)
    return sum(WEIGHTS[k] * v for k, v in credits.items())


def _background_points(bg) -> list[np.ndarray]:
    c1 = np.asarray(bg.rgb, dtype=float)
    c2 = np.asarray(bg.rgb2 if bg.kind == "gradient" and bg.rgb2 else bg.rgb, dtype=float)
    # (u, v) of the centre and the edge midpoints; the gradient runs along v (vertical) or u
    points = [(0.5, 0.5), (0.5, 0.0), (0.5, 1.0), (0.0, 0.5), (1.0, 0.5)]
    t = [v if bg.direction == "vertical" else u for u, v in points]
    return [c1 * (1 - s) + c2 * s for s in t]


def background_credit(truth: SceneSpec, drawn: SceneSpec) -> float:
    pairs = zip(_background_points(truth.background), _background_points(drawn.background))
    return float(np.mean([_colour_credit(a, b) for a, b in pairs]))


def breakdown(truth: dict | SceneSpec, drawn: dict | SceneSpec) -> dict[str, float]:
    """The components of :func:`scene_truth`: per-attribute mean credit over matched pairs,
    ``count`` (matched / max objects), ``objects``, ``background`` and ``total``."""
    t = truth if isinstance(truth, SceneSpec) else SceneSpec.model_validate(truth)
    d = drawn if isinstance(drawn, SceneSpec) else SceneSpec.model_validate(drawn)
    n = max(len(t.objects), len(d.objects))
    out: dict[str, float] = {k: 1.0 for k in WEIGHTS}
    if n == 0:
        objects, matched = 1.0, 0
    elif not t.objects or not d.objects:
        objects, matched = 0.0, 0
    else:
        credit = np.array([[_pair_credit(a, b) for b in d.objects] for a in t.objects])
        rows, cols = linear_sum_assignment(-credit)
        objects, matched = float(credit[rows, cols].sum()) / n, len(rows)
        per = [attribute_credits(t.objects[r], d.objects[c]) for r, c in zip(rows, cols)]
        out = {k: float(np.mean([p[k] for p in per])) for k in WEIGHTS}
    out["count"] = matched / n if n else 1.0
    out["objects"] = objects
    out["background"] = background_credit(t, d)
    out["total"] = OBJECT_WEIGHT * objects + (1 - OBJECT_WEIGHT) * out["background"]
    return out


def scene_truth(truth: dict | SceneSpec, drawn: dict | SceneSpec) -> float:
    """Graded agreement in [0, 1] of a drawn scene with the true scene (see the module doc)."""
    return round(breakdown(truth, drawn)["total"], 12)


class SceneTruth(Metric):
    """Ground-truth fidelity of the scene a simulated T2I model drew (no detector; partial credit).

    Needs the reference's ground-truth scene (the ``world`` dataset) and each candidate's drawn
    scene (the ``sim`` T2I model); candidates of models that report none stay unscored.
    """

    name = "scene_truth"
    higher_is_better = True
    needs_ground_truth = True
    #: Scores the candidates' recorded ``drawn_scene``, not their pixels.
    reads_metadata = "drawn_scene"

    def prepare(self, reference: Reference) -> SceneSpec:
        if reference.ground_truth is None:
            raise ValueError(f"scene_truth needs a ground-truth scene; {reference.id!r} has none")
        try:
            return SceneSpec.model_validate(reference.ground_truth)
        except Exception as exc:  # pydantic.ValidationError and friends
            raise ValueError(f"scene_truth: {reference.id!r} ground truth is not a scene ({exc})") from exc

    def score(self, prepared: SceneSpec, candidates: Sequence[Image.Image]) -> list[float]:
        raise ValueError("scene_truth scores the scene a model drew, not pixels: "
                         "it needs candidates' drawn scenes (score_metadata)")

    def score_metadata(self, prepared: SceneSpec, drawn: Sequence[dict[str, Any]]) -> list[float]:
        return [scene_truth(prepared, d) for d in drawn]
