"""scene_truth: graded partial credit per attribute, from scenes only."""

from __future__ import annotations

import pytest

from repainter.backends.base import Reference
from repainter.bench.sim.truth import SceneTruth, breakdown, scene_truth

RED = [218, 40, 40]
TRUTH = {"background": {"color": "white", "rgb": [250, 250, 250]}, "objects": [
    {"shape": "star", "color": "red", "rgb": RED, "size": 0.1, "x": 0.3, "y": 0.3,
     "style": "outlined"},
    {"shape": "circle", "color": "blue", "rgb": [40, 90, 218], "size": 0.08, "x": 0.7, "y": 0.7}]}


def edit(index, **changes):
    objects = [dict(o) for o in TRUTH["objects"]]
    objects[index].update(changes)
    return {**TRUTH, "objects": objects}


def test_identical_scene_scores_one_and_order_does_not_matter():
    assert scene_truth(TRUTH, TRUTH) == 1.0
    assert scene_truth(TRUTH, {**TRUTH, "objects": TRUTH["objects"][::-1]}) == 1.0


@pytest.mark.parametrize(("changes", "attribute"), [
    ({"shape": "square"}, "shape"), ({"rgb": [150, 25, 25]}, "color"), ({"x": 0.45}, "position"),
    ({"size": 0.14}, "size"), ({"style": "flat"}, "style")])
def test_each_attribute_gets_partial_credit(changes, attribute):
    parts = breakdown(TRUTH, edit(0, **changes))
    assert parts[attribute] < 1.0
    assert all(v == 1.0 for k, v in parts.items() if k in ("shape", "color", "position", "size",
                                                             "style", "count") and k != attribute)
    assert 0.5 < parts["total"] < 1.0


def test_graded_not_all_or_nothing():
    near, far = edit(0, x=0.35), edit(0, x=0.6)
    assert 1.0 > scene_truth(TRUTH, near) > scene_truth(TRUTH, far) > scene_truth(
        TRUTH, {**TRUTH, "objects": TRUTH["objects"][1:]})


def test_count_and_background():
    extra = {**TRUTH, "objects": [*TRUTH["objects"], dict(TRUTH["objects"][1], x=0.2)]}
    assert breakdown(TRUTH, extra)["count"] == pytest.approx(2 / 3)
    grey = {**TRUTH, "background": {"color": "gray", "rgb": [134, 134, 134]}}
    assert breakdown(TRUTH, grey)["background"] == 0.0 and scene_truth(TRUTH, grey) == pytest.approx(0.8)
    fade = {**TRUTH, "background": {"kind": "gradient", "color": "white", "rgb": [250, 250, 250],
                                    "color2": "gray", "rgb2": [134, 134, 134]}}
    assert 0.0 < breakdown(TRUTH, fade)["background"] < 1.0


def test_metric_scores_drawn_scenes_and_refuses_pixels():
    metric = SceneTruth()
    prepared = metric.prepare(Reference("r", image=None, ground_truth=TRUTH))
    assert metric.score_metadata(prepared, [TRUTH, edit(1, shape="star")])[0] == 1.0
    with pytest.raises(ValueError, match="drawn"):
        metric.score(prepared, [])
    with pytest.raises(ValueError, match="ground-truth"):
        metric.prepare(Reference("r", image=None))
