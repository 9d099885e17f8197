"""region_match: objects matched one to one and graded on colour, place, size and shape."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from skimage import data

from repainter.backends.base import Reference
from repainter.bench.metrics.region_match import Layout, RegionMatchSimilarity
from repainter.bench.world.generator import CATEGORIES, generate_scene
from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec, render_scene
from repainter.registry import METRICS
from repainter.spec import RunSpec

BG = Background(color="white", rgb=(250, 250, 250))
GRADIENT = Background(kind="gradient", color="sky blue", rgb=(120, 170, 230), color2="white",
                      rgb2=(250, 250, 250))
RED = ObjectSpec(shape="circle", color="red", rgb=(218, 40, 40), size=0.1, x=0.3, y=0.4)
BLUE = ObjectSpec(shape="square", color="blue", rgb=(40, 90, 218), size=0.08, x=0.7, y=0.65)


def at_256(*objects, background=BG):  # the bench's render size
    return render_scene(SceneSpec(background=background, objects=list(objects)), 256)


def score(reference, *candidates):
    metric = RegionMatchSimilarity()
    return metric.score(metric.prepare(Reference("r", reference)), list(candidates))


@pytest.mark.parametrize("category", CATEGORIES)
def test_reads_as_many_regions_as_the_scene_has_objects(category):
    # the bench's 8 scenes per category (bundle seeds) and 8 more it never uses, at its render
    # size: outlines, checker textures, gradients, crowds with a tiny object
    metric = RegionMatchSimilarity()
    base = 1000 * (CATEGORIES.index(category) + 1)
    for seed in [*range(base, base + 8), *range(base + 100, base + 108)]:
        spec = generate_scene(category, seed)
        regions = metric.layout(render_scene(spec, 256)).regions
        assert len(regions) == len(spec.objects), (category, seed)


@pytest.mark.parametrize("style", ["flat", "outlined", "textured"])
def test_a_styled_object_is_one_region_in_its_fill_colour(style):
    from skimage.color import rgb2lab

    obj = RED.model_copy(update={"style": style, "size": 0.15})
    (region,) = RegionMatchSimilarity().layout(at_256(obj)).regions
    fill = rgb2lab(np.array([[obj.rgb]], dtype=float) / 255.0)[0, 0]
    assert np.linalg.norm(region.colour - fill) < 6
    assert (region.x, region.y) == pytest.approx((obj.x, obj.y), abs=0.02)


def test_every_kind_of_error_costs_and_a_missing_object_costs_most():
    reference = at_256(RED, BLUE)
    same, *wrong = score(
        reference, at_256(RED, BLUE),
        at_256(RED.model_copy(update={"shape": "star"}), BLUE),
        at_256(RED.model_copy(update={"rgb": (40, 170, 60)}), BLUE),
        at_256(RED.model_copy(update={"x": 0.5, "y": 0.2}), BLUE),
        at_256(RED.model_copy(update={"size": 0.05}), BLUE),
        at_256(BLUE),
        at_256(RED, BLUE, RED.model_copy(update={"x": 0.75, "y": 0.2})),
    )
    assert same == pytest.approx(1.0)
    assert all(value < 0.97 for value in wrong)
    shape, colour, place, size, missing, extra = wrong
    assert missing < min(shape, colour, place, size)
    assert extra < min(shape, colour, place, size)


def test_the_pairing_is_the_best_one_whatever_the_order_of_the_regions():
    # two objects swapped: each region is paired with the one that earns most, not by list order
    metric = RegionMatchSimilarity()
    reference = metric.layout(at_256(RED, BLUE))
    swapped = metric.layout(at_256(RED.model_copy(update={"x": BLUE.x, "y": BLUE.y}),
                                   BLUE.model_copy(update={"x": RED.x, "y": RED.y})))
    credit = [[metric._pair_credit(a, b) for b in swapped.regions] for a in reference.regions]
    straight, crossed = credit[0][0] + credit[1][1], credit[0][1] + credit[1][0]
    assert straight != pytest.approx(crossed)
    best = max(straight, crossed) / 2
    reordered = Layout(background=swapped.background, regions=swapped.regions[::-1])
    assert metric._objects(reference, swapped) == pytest.approx(best)
    assert metric._objects(reference, reordered) == pytest.approx(best)


def test_image_modes_read_alike():
    rgb = at_256(RED, BLUE)
    rgba, grey = rgb.convert("RGBA"), rgb.convert("L")
    same_rgba, grey_score = score(rgb, rgba, grey)
    assert same_rgba == pytest.approx(1.0)
    assert score(grey, grey.convert("RGB")) == [pytest.approx(1.0)]
    assert grey_score < 1.0  # the colour is gone, the objects are not
    assert len(RegionMatchSimilarity().layout(grey).regions) == 2


def test_background_gradient_is_modelled_not_segmented():
    on_gradient = at_256(RED, BLUE, background=GRADIENT)
    assert len(RegionMatchSimilarity().layout(on_gradient).regions) == 2
    same, solid = score(on_gradient, on_gradient, at_256(RED, BLUE))
    assert same == pytest.approx(1.0)
    assert solid < same


def test_empty_scenes_and_photos_score_within_range():
    empty = at_256()
    assert score(empty, empty, at_256(RED)) == [pytest.approx(1.0), pytest.approx(0.25)]
    photo = Image.fromarray(data.astronaut())
    values = score(photo, photo, photo.resize((100, 60)), empty)
    assert values[0] == pytest.approx(1.0)
    assert all(0.0 <= v <= 1.0 for v in values)


def test_registered_in_the_default_selection_with_its_settings_recorded():
    assert isinstance(METRICS.create("region_match"), RegionMatchSimilarity)
    assert RunSpec().selection == {"region_match": 1.0, "texture_energy": 1.0}
    assert RegionMatchSimilarity(position_range=0.3).identity()["position_range"] == 0.3
    for bad in ({"size": 8}, {"edge_delta": 0}, {"min_area": -1}, {"fringe": -1},
                {"object_weight": 1.5}):
        with pytest.raises(ValueError, match="region_match"):
            RegionMatchSimilarity(**bad)


def test_orders_wrong_shapes_above_misplaced_and_missing_objects_as_the_truth_does():
    # the failure modes of the bench's zoo pair faithful-small-vocabulary vs weak-layout
    # (datasets/sim/README.md): every shape wrong, against objects swapped and one missing
    from repainter.bench.sim.truth import scene_truth

    green = ObjectSpec(shape="triangle", color="green", rgb=(50, 170, 58), size=0.07, x=0.5,
                       y=0.8)
    truth = SceneSpec(background=BG, objects=[RED, BLUE, green])
    wrong_shapes = SceneSpec(background=BG, objects=[
        RED.model_copy(update={"shape": "square"}), BLUE.model_copy(update={"shape": "circle"}),
        green.model_copy(update={"shape": "diamond"})])
    misplaced = SceneSpec(background=BG, objects=[
        RED.model_copy(update={"x": BLUE.x, "y": BLUE.y}),
        BLUE.model_copy(update={"x": RED.x, "y": RED.y})])
    assert scene_truth(truth, wrong_shapes) > scene_truth(truth, misplaced)
    shapes_score, places_score = score(render_scene(truth, 256), render_scene(wrong_shapes, 256),
                                       render_scene(misplaced, 256))
    assert shapes_score > places_score
