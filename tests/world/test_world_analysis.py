"""Analysis recovers the ground truth of rendered scenes, fast."""


import numpy as np
import pytest
from PIL import Image
from scipy.optimize import linear_sum_assignment

from repainter.bench.world.analysis import analyse, estimate_background
from repainter.bench.world.generator import bundle_rows
from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec, render_scene


@pytest.fixture(scope="module")
def bundled():
    return [SceneSpec.model_validate(r["scene"]) for r in bundle_rows()]


def test_recovers_every_object_of_the_bundled_scenes(bundled):
    checked = 0
    for spec in bundled:
        found = analyse(render_scene(spec)).objects
        assert len(found) == len(spec.objects)
        cost = np.array([[np.hypot(g.x - d.x, g.y - d.y) for d in found] for g in spec.objects])
        for i, j in zip(*linear_sum_assignment(cost)):
            truth, seen = spec.objects[i], found[j]
            assert cost[i, j] < 0.02
            assert seen.shape == truth.shape
            assert seen.color_name == truth.color
            assert seen.style == truth.style
            assert seen.size == pytest.approx(truth.size, rel=0.1)
            checked += 1
    assert checked >= 60


def test_background_kind_colour_and_direction(bundled):
    for spec in bundled:
        bg = analyse(render_scene(spec)).background
        assert bg.kind == spec.background.kind
        assert bg.color_name == spec.background.color
        if bg.kind == "gradient":
            assert bg.direction == spec.background.direction
            assert bg.color2_name == spec.background.color2


def test_background_fit_ignores_an_object_on_the_border():
    spec = SceneSpec(background=Background(color="light gray", rgb=(200, 200, 200)),
                     objects=[ObjectSpec(shape="square", color="dark blue", rgb=(26, 55, 150),
                                         size=0.2, x=0.05, y=0.5)])
    estimate, _ = estimate_background(np.asarray(render_scene(spec), dtype=np.float32))
    assert estimate.kind == "solid" and estimate.color_name == "light gray"


def test_blank_image_has_no_objects():
    found = analyse(Image.new("RGB", (256, 256), (30, 120, 200)))
    assert found.objects == [] and found.background.kind == "solid"


