"""Scenes: ground truth JSON round trip and deterministic, faithful rendering."""

import numpy as np
import pytest

from repainter.bench.world.scene import Background, ObjectSpec, SceneSpec, render_scene
from repainter.bench.world.vocabulary import OUTLINE_RGB


def _scene(**obj) -> SceneSpec:
    base = dict(shape="circle", color="red", rgb=(218, 40, 40), size=0.15, x=0.5, y=0.5)
    return SceneSpec(background=Background(color="white", rgb=(250, 250, 250)),
                     objects=[ObjectSpec(**{**base, **obj})])


def test_json_round_trip_keeps_every_field():
    spec = SceneSpec(
        background=Background(kind="gradient", color="light blue", rgb=(140, 180, 240),
                              color2="white", rgb2=(250, 250, 250), direction="horizontal"),
        objects=[ObjectSpec(shape="star", color="dark red", rgb=(150, 25, 25), size=0.1,
                            x=0.3, y=0.7, style="textured")],
    )
    again = SceneSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
    assert SceneSpec.model_validate(spec.model_dump(mode="json")) == spec


def test_rendering_is_deterministic_and_sized():
    spec = _scene(shape="triangle", style="outlined")
    a, b = render_scene(spec, 128), render_scene(spec, 128)
    assert a.size == (128, 128) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_object_is_drawn_at_its_position_with_its_colour():
    arr = np.asarray(render_scene(_scene(x=0.25, y=0.75), 256)).astype(int)
    assert tuple(arr[192, 64]) == (218, 40, 40)       # centre of the object (row = y)
    assert tuple(arr[64, 192]) == (250, 250, 250)     # far from it: background
    covered = (np.abs(arr - [218, 40, 40]).sum(axis=2) < 10).sum()
    assert covered == pytest.approx(np.pi * (0.15 * 256) ** 2, rel=0.05)  # equal-area size


@pytest.mark.parametrize("shape", ["circle", "ellipse", "square", "diamond", "triangle", "star"])
def test_shapes_have_equal_area(shape):
    arr = np.asarray(render_scene(_scene(shape=shape, size=0.12), 256)).astype(int)
    covered = (np.abs(arr - [218, 40, 40]).sum(axis=2) < 60).sum()
    assert covered == pytest.approx(np.pi * (0.12 * 256) ** 2, rel=0.06)


def test_styles_outline_and_texture():
    outlined = np.asarray(render_scene(_scene(style="outlined"), 256)).astype(int)
    row = outlined[128]
    dark = np.nonzero(np.abs(row - OUTLINE_RGB).sum(axis=1) < 15)[0]
    assert len(dark) >= 4 and dark.min() < 128 - 30 and dark.max() > 128 + 30  # ring at the rim
    textured = np.asarray(render_scene(_scene(style="textured"), 256)).astype(float)
    patch = textured[118:138, 118:138]
    assert patch.std() > 10                               # a visible pattern
    assert np.allclose(patch.reshape(-1, 3).mean(axis=0), (218, 40, 40), atol=3)  # mean = colour


def test_gradient_background_runs_between_its_colours():
    spec = SceneSpec(background=Background(kind="gradient", color="dark blue", rgb=(26, 55, 150),
                                           color2="white", rgb2=(250, 250, 250)))
    arr = np.asarray(render_scene(spec, 100)).astype(int)
    assert np.abs(arr[0, 50] - (26, 55, 150)).max() <= 3
    assert np.abs(arr[-1, 50] - (250, 250, 250)).max() <= 3
    assert (np.diff(arr[:, 50, 0]) >= 0).all()            # monotone top to bottom
    assert np.array_equal(arr[:, 0], arr[:, -1])          # vertical: constant along a row
