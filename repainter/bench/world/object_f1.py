"""Object F1: how many of the ground truth's objects a candidate draws, and draws right.

For references whose ground truth is a world scene (the built-in ``world`` dataset).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image
from scipy.optimize import linear_sum_assignment

from repainter.backends.base import Metric, Reference
from repainter.bench.world.analysis import DetectedObject, analyse
from repainter.bench.world.scene import ObjectSpec, SceneSpec
from repainter.bench.world.vocabulary import lab


class ObjectF1(Metric):
    """F1 of ground-truth objects found in the candidate with the right shape, colour, place, size.

    Each candidate is analysed (:func:`repainter.bench.world.analysis.analyse`: background fit,
    colour regions, connected components, shape classification); its detected objects are
    matched one-to-one (Hungarian) with the scene's objects. A pair counts as a match only if the
    shapes are equal, the colours are within ``color_tolerance`` (CIE76 distance in CIELAB), the
    centres within ``position_tolerance`` (fraction of the image side) and the equal-area radii
    within a factor of ``size_tolerance``. The score is ``2 * matches / (detected + truth)``;
    1.0 for an image with no objects where the truth has none.

    Needs ``reference.ground_truth`` to be a scene (``SceneSpec`` as a dict).

    Example:
        >>> from repainter.backends.base import Reference
        >>> from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec, render_scene
        >>> scene = SceneSpec(background=Background(color="white", rgb=(250, 250, 250)),
        ...                   objects=[ObjectSpec(shape="square", color="blue", rgb=(40, 90, 220),
        ...                                       size=0.12, x=0.3, y=0.3)])
        >>> moved = scene.model_copy(update={"objects": [scene.objects[0].model_copy(
        ...     update={"x": 0.7})]})
        >>> ref = Reference("r", render_scene(scene), ground_truth=scene.model_dump(mode="json"))
        >>> ObjectF1()(ref, [render_scene(scene), render_scene(moved)])
        [1.0, 0.0]
    """

    name = "object_f1"
    higher_is_better = True
    needs_ground_truth = True

    def __init__(self, color_tolerance: float = 15.0, position_tolerance: float = 0.1,
                 size_tolerance: float = 1.3):
        if color_tolerance <= 0 or position_tolerance <= 0 or size_tolerance <= 1:
            raise ValueError("object_f1 tolerances must be positive (size_tolerance > 1)")
        self.color_tolerance = float(color_tolerance)
        self.position_tolerance = float(position_tolerance)
        self.size_tolerance = float(size_tolerance)

    def prepare(self, reference: Reference) -> list[ObjectSpec]:
        if reference.ground_truth is None:
            raise ValueError(
                f"object_f1 needs a ground-truth scene, but reference {reference.id!r} has none "
                "(use the 'world' dataset, or leave object_f1 out of the metrics)"
            )
        try:
            return SceneSpec.model_validate(reference.ground_truth).objects
        except Exception as exc:  # pydantic.ValidationError and friends
            raise ValueError(
                f"object_f1: reference {reference.id!r} ground truth is not a world scene ({exc})"
            ) from exc

    def _matches(self, truth: Sequence[ObjectSpec], found: Sequence[DetectedObject]) -> int:
        if not truth or not found:
            return 0
        t_lab = lab(np.array([t.rgb for t in truth], dtype=np.float64))
        f_lab = lab(np.array([f.rgb for f in found], dtype=np.float64))
        colour = np.linalg.norm(t_lab[:, None, :] - f_lab[None, :, :], axis=2)
        pos = np.hypot(np.array([t.x for t in truth])[:, None] - np.array([f.x for f in found]),
                       np.array([t.y for t in truth])[:, None] - np.array([f.y for f in found]))
        size = np.abs(np.log(np.array([t.size for t in truth])[:, None]
                             / np.array([f.size for f in found])[None, :]))
        shape = np.array([[t.shape == f.shape for f in found] for t in truth])
        ok = (shape & (colour <= self.color_tolerance) & (pos <= self.position_tolerance)
              & (size <= np.log(self.size_tolerance)))
        cost = np.where(ok, pos / self.position_tolerance + colour / self.color_tolerance, 1e6)
        rows, cols = linear_sum_assignment(cost)
        return int(ok[rows, cols].sum())

    def score(self, prepared: list[ObjectSpec], candidates: Sequence[Image.Image]) -> list[float]:
        out = []
        for image in candidates:
            found = analyse(image).objects
            if not prepared and not found:
                out.append(1.0)
                continue
            out.append(2.0 * self._matches(prepared, found) / (len(prepared) + len(found)))
        return out

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "color_tolerance": self.color_tolerance,
                "position_tolerance": self.position_tolerance,
                "size_tolerance": self.size_tolerance}
