"""texture_energy: a weight-free score that sees the texture and outlines lab_layout averages away."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter

from repainter.backends.base import Reference
from repainter.bench.metrics.lab_layout import LabLayoutSimilarity
from repainter.bench.metrics.texture_energy import TextureEnergySimilarity
from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec, render_scene
from repainter.registry import METRICS

BG = Background(color="white", rgb=(250, 250, 250))
SQUARE = ObjectSpec(shape="square", color="blue", rgb=(40, 90, 218), size=0.2, x=0.5, y=0.5)


def at_256(*objects, background=BG):  # the bench's render size: its checker cells are 2 px
    return render_scene(SceneSpec(background=background, objects=list(objects)), 256)


def score(reference, *candidates, metric=None):
    metric = metric or TextureEnergySimilarity()
    return metric.score(metric.prepare(Reference("r", reference)), list(candidates))


@pytest.mark.parametrize("style, below", [("textured", 0.7), ("outlined", 0.95)])
def test_a_styled_object_drawn_flat_costs_more_than_lab_layout_sees(style, below):
    styled = at_256(SQUARE.model_copy(update={"style": style}))
    flat = at_256(SQUARE)
    same, drawn_flat = score(styled, styled, flat)
    assert same == pytest.approx(1.0)
    assert drawn_flat < below
    lab = LabLayoutSimilarity()
    assert lab.score(lab.prepare(Reference("r", styled)), [flat])[0] > drawn_flat


def test_colour_blind_by_design():
    # detail is measured against the local blur: a recoloured flat square has the same edges'
    # geometry (only their contrast changes), so it stays far closer than a textured one
    recoloured = at_256(SQUARE.model_copy(update={"rgb": (60, 160, 70)}))
    textured = at_256(SQUARE.model_copy(update={"style": "textured"}))
    same_colour, other_colour, other_style = score(at_256(SQUARE), at_256(SQUARE), recoloured,
                                                   textured)
    assert same_colour == pytest.approx(1.0)
    assert other_colour > other_style


def test_blur_and_noise_lower_it_monotonically():
    from skimage import data

    photo = Image.fromarray(data.astronaut()).resize((128, 128))
    blurred = [photo.filter(ImageFilter.GaussianBlur(r)) for r in (0.5, 1.0, 2.0, 4.0)]
    rng = np.random.default_rng(0)
    noisy = [Image.fromarray(np.clip(np.asarray(photo, float) + rng.normal(0, s, (128, 128, 3)),
                                     0, 255).astype(np.uint8)) for s in (5, 15, 40)]
    assert np.all(np.diff(score(photo, *blurred)) < 0)
    assert np.all(np.diff(score(photo, *noisy)) < 0)


def test_registered_and_identity_records_every_setting():
    metric = METRICS.create("texture_energy", size=64, scales=[8, 4])
    assert metric.identity() == {"metric": "texture_energy", "size": 64, "resize": "box",
                                 "sigma": 1.0, "scales": [8, 4], "stability": 1.0, "floor": 0.1}
    assert metric.higher_is_better


@pytest.mark.parametrize("bad", [{"scales": (5,)}, {"scales": ()}, {"sigma": 0},
                                 {"stability": -1}, {"floor": -0.1}])
def test_bad_parameters(bad):
    with pytest.raises(ValueError):
        TextureEnergySimilarity(size=64, **bad)


def test_any_image_mode_and_size():
    rgba = Image.new("RGBA", (90, 70), (10, 200, 30, 128))
    (value,) = score(Image.new("RGB", (64, 64), (250, 250, 250)), rgba)
    assert 0.0 <= value <= 1.0
