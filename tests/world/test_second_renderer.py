"""The second world renderer (``painterly``): deterministic, another look, the same scenes.

The sim model and the world dataset draw with it on request; the describer's detector and the
image analysis never call a renderer (runtime check here; the import check is in
tests/sim/test_independence.py).
"""

from __future__ import annotations

import numpy as np
import pytest

from repainter.bench.sim.t2i import SimT2I
from repainter.bench.world.dataset import WorldDataset
from repainter.bench.world.generator import CATEGORIES, generate_scene
from repainter.bench.world.painterly import render_painterly
from repainter.bench.world.renderers import draw
from repainter.bench.world.scene import Background, SceneSpec, render_scene
from repainter.datasets import DatasetError

SCENES = [generate_scene(category, 7 + k) for k, category in enumerate(CATEGORIES)]


def _pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.float32)


@pytest.mark.parametrize("scene", SCENES, ids=CATEGORIES)
def test_deterministic_from_scene_and_seed(scene):
    first = render_painterly(scene, 96, seed=4)
    assert first.tobytes() == render_painterly(scene, 96, seed=4).tobytes()
    assert first.tobytes() != render_painterly(scene, 96, seed=5).tobytes()  # its grain


@pytest.mark.parametrize("scene", SCENES, ids=CATEGORIES)
def test_looks_different_from_the_flat_renderer(scene):
    flat, painterly = _pixels(render_scene(scene, 96)), _pixels(render_painterly(scene, 96))
    # mean absolute difference per channel, in RGB levels: light, floor, shading, shapes
    assert np.abs(flat - painterly).mean() > 8
    # but it is the same scene: the background's colours still fill the top rows
    top = np.abs(painterly[:8] - flat[:8]).reshape(-1, 3).mean(axis=0)
    assert top.max() < 40


def test_light_is_uneven_over_a_plain_background():
    empty = SceneSpec(background=Background(color="white", rgb=(250, 250, 250)))
    assert _pixels(render_scene(empty, 64)).std() == 0  # the flat renderer: one colour
    arr = _pixels(render_painterly(empty, 64))
    assert arr[:8, :8].mean() > arr[-8:, -8:].mean() + 20  # bright top left, dim bottom right


def test_the_sim_draws_the_same_scene_with_either_renderer():
    prompt = "a large red circle on the left and a small blue star, on a yellow background"
    flat, painterly = SimT2I(size=64), SimT2I(size=64, renderer="painterly")
    for seed in (0, 1, 2):
        a = flat.generate([prompt], [seed])[0]
        b = painterly.generate([prompt], [seed])[0]
        assert a.metadata == b.metadata  # drawn_scene, dropped and unknown words
        assert np.abs(_pixels(a.image) - _pixels(b.image)).mean() > 5
    assert "renderer" not in flat.identity()  # flat runs keep their cache keys
    assert painterly.identity()["renderer"] == "painterly"
    with pytest.raises(ValueError, match="renderer"):
        SimT2I(renderer="oil")


def test_dataset_references_use_the_renderer():
    flat = WorldDataset(size=64).items()[0].load()
    painterly = WorldDataset(size=64, renderer="painterly").items()[0].load()
    assert flat.ground_truth == painterly.ground_truth
    scene = SceneSpec.model_validate(flat.ground_truth)
    assert painterly.image.tobytes() == draw(scene, 64, "painterly").tobytes()
    assert painterly.image.tobytes() != flat.image.tobytes()
    with pytest.raises(DatasetError, match="renderer"):
        WorldDataset(renderer="oil")


def test_the_detector_calls_no_renderer(monkeypatch):
    import repainter.bench.world.analysis as analysis
    import repainter.bench.world.painterly as painterly_module
    import repainter.bench.world.scene as scene_module
    from repainter.bench.sim.describer import SimDescriber

    image = render_scene(SCENES[1], 128)

    def forbidden(*args, **kwargs):
        raise AssertionError("the detector called a renderer")

    monkeypatch.setattr(scene_module, "render_scene", forbidden)
    monkeypatch.setattr(painterly_module, "render_painterly", forbidden)
    analysis._prototypes.cache_clear()  # rebuilt now, without any renderer
    assert analysis.analyse(image).objects
    describer = SimDescriber()
    assert describer.describe(image)
    assert describer.critique(image, render_painterly(SCENES[1], 128), "a prompt")


@pytest.mark.parametrize("name", ["repainter.bench.world.painterly",
                                  "repainter.bench.world.renderers"])
def test_docstring_examples(name):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0 and result.failed == 0


def test_meta_eval_runs_its_sim_models_and_world_on_the_chosen_renderer():
    from repainter.bench.meta_eval.config import MetaEvalConfig, with_renderer
    from repainter.errors import UserError

    data = {"t2i": [{"name": "sim", "params": {"vocabulary": 0.3}}, {"name": "sim"}],
            "dataset": {"name": "world", "params": {"path": "scenes.jsonl"}}}
    assert with_renderer(MetaEvalConfig().renderer, data) is data  # flat: untouched
    painted = with_renderer(MetaEvalConfig(renderer="painterly").renderer, data)
    assert painted["t2i"][0]["params"] == {"vocabulary": 0.3, "renderer": "painterly"}
    assert painted["t2i"][1]["params"] == {"renderer": "painterly"}
    assert painted["dataset"]["params"] == {"path": "scenes.jsonl", "renderer": "painterly"}
    with pytest.raises(UserError, match="procedural"):
        with_renderer("painterly", {**data, "t2i": [{"name": "procedural"}]})
