"""lab_layout: a weight-free, pixels-only selection score that sees objects, not just background."""

from __future__ import annotations

import pytest

from repainter.backends.base import Reference
from repainter.bench.metrics.lab_layout import LabLayoutSimilarity
from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec, render_scene

BG = Background(color="white", rgb=(250, 250, 250))
STAR = ObjectSpec(shape="star", color="red", rgb=(218, 40, 40), size=0.06, x=0.3, y=0.3)
SQUARE = ObjectSpec(shape="square", color="blue", rgb=(40, 90, 218), size=0.12, x=0.7, y=0.6)


def image(*objects, background=BG):
    return render_scene(SceneSpec(background=background, objects=list(objects)), 64)


@pytest.fixture
def scores():
    metric = LabLayoutSimilarity()
    prepared = metric.prepare(Reference("r", image(STAR, SQUARE)))
    return lambda *imgs: metric.score(prepared, list(imgs))


def test_identical_is_one_and_every_error_costs(scores):
    same, no_star, moved, recoloured, grey = scores(
        image(STAR, SQUARE), image(SQUARE), image(STAR.model_copy(update={"x": 0.45}), SQUARE),
        image(STAR.model_copy(update={"rgb": (40, 170, 58)}), SQUARE),
        image(STAR, SQUARE, background=Background(color="gray", rgb=(134, 134, 134))))
    assert same == pytest.approx(1.0)
    assert all(v < same for v in (no_star, moved, recoloured, grey))


def test_a_small_object_counts_like_a_large_one(scores):
    no_star, no_square = scores(image(SQUARE), image(STAR))
    assert abs(no_star - no_square) < 0.15  # per-region weights: the star is 1/4 of the square


def test_an_object_a_little_off_beats_a_missing_one(scores):
    near, missing = scores(image(STAR.model_copy(update={"x": 0.4}), SQUARE), image(SQUARE))
    assert near > missing


def test_bad_parameters():
    with pytest.raises(ValueError):
        LabLayoutSimilarity(size=64, scales=(5,))


def test_texture_is_a_blind_spot_of_lab_layout_that_ssim_sees():
    # the limit VALIDITY.md reports on the attributes ladder (style_bias: textured drawn flat):
    # a checkered object averages to its flat colour in every lab_layout cell
    from repainter.registry import METRICS

    def at_256(obj):  # the bench's render size (a 64 px render is too small for the checkers)
        return render_scene(SceneSpec(background=BG, objects=[obj]), 256)

    textured = at_256(SQUARE.model_copy(update={"style": "textured", "size": 0.2}))
    flat = at_256(SQUARE.model_copy(update={"size": 0.2}))
    lab, ssim = LabLayoutSimilarity(), METRICS.create("ssim")
    lab_flat = lab.score(lab.prepare(Reference("r", textured)), [flat])[0]
    ssim_flat = ssim.similarity(float(ssim.score(ssim.prepare(Reference("r", textured)), [flat])[0]))
    assert lab_flat > 0.99 and ssim_flat < 0.98
