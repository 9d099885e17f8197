"""object_f1: matched ground-truth objects, F1."""

import pytest

from repainter.backends.base import Reference
from repainter.bench.world.generator import generate_scene
from repainter.bench.world.object_f1 import ObjectF1
from repainter.bench.world.scene import render_scene
from repainter.registry import METRICS


@pytest.fixture(scope="module")
def case():
    scene = generate_scene("crowded", 11)
    ref = Reference("c", render_scene(scene), ground_truth=scene.model_dump(mode="json"))
    return scene, ref


def _edit(scene, index, **update):
    objects = list(scene.objects)
    objects[index] = objects[index].model_copy(update=update)
    return scene.model_copy(update={"objects": objects})


def test_registered_and_needs_ground_truth():
    metric = METRICS.create("object_f1")
    assert isinstance(metric, ObjectF1) and metric.needs_ground_truth and metric.higher_is_better


def test_reference_itself_scores_one(case):
    scene, ref = case
    assert ObjectF1()(ref, [ref.image]) == [1.0]


def test_each_kind_of_error_loses_one_match(case):
    scene, ref = case
    n = len(scene.objects)
    obj = scene.objects[0]
    broken = [
        _edit(scene, 0, x=min(obj.x + 0.15, 0.95)),                  # moved
        _edit(scene, 0, size=obj.size * 1.6),                         # resized
        _edit(scene, 0, shape="star" if obj.shape != "star" else "circle"),
        _edit(scene, 0, rgb=(obj.rgb[0] // 2, obj.rgb[1] // 2, obj.rgb[2] // 2)),  # darker
    ]
    scores = ObjectF1()(ref, [render_scene(s) for s in broken])
    assert scores == [pytest.approx(2 * (n - 1) / (2 * n))] * 4


def test_missing_and_extra_objects(case):
    scene, ref = case
    n = len(scene.objects)
    fewer = scene.model_copy(update={"objects": scene.objects[:-1]})
    assert ObjectF1()(ref, [render_scene(fewer)]) == [pytest.approx(2 * (n - 1) / (2 * n - 1))]


def test_tolerances_are_parameters(case):
    scene, ref = case
    moved = render_scene(_edit(scene, 0, y=scene.objects[0].y + 0.06))
    assert ObjectF1(position_tolerance=0.1)(ref, [moved])[0] == 1.0
    assert ObjectF1(position_tolerance=0.03)(ref, [moved])[0] < 1.0


def test_without_ground_truth_is_a_clear_error(case):
    _, ref = case
    with pytest.raises(ValueError, match="ground-truth scene"):
        ObjectF1().prepare(Reference("x", ref.image))
    with pytest.raises(ValueError, match="not a world scene"):
        ObjectF1().prepare(Reference("x", ref.image, ground_truth={"caption": "a cat"}))
    with pytest.raises(ValueError):
        ObjectF1(size_tolerance=1.0)
