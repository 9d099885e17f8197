"""The scene generator and the bundled world dataset."""

import json

import numpy as np
import pytest

from repainter.datasets import DatasetError
from repainter.registry import DATASETS
from repainter.world.dataset import WorldDataset
from repainter.world.generator import (
    CATEGORIES,
    bundle_text,
    default_bundle_path,
    generate_scene,
    main,
)
from repainter.world.scene import SceneSpec, circumradius
from repainter.world.vocabulary import COLORS, delta_e


@pytest.mark.parametrize("category", CATEGORIES)
def test_generation_is_reproducible_and_well_formed(category):
    for seed in range(5):
        scene = generate_scene(category, seed)
        assert scene == generate_scene(category, seed)
        n = len(scene.objects)
        assert {"single": (1, 1), "pair": (2, 2), "crowded": (4, 5), "styled": (2, 3)}[
            category][0] <= n <= 5
        assert (scene.background.kind == "gradient") == (category == "styled")
        for a in scene.objects:
            assert a.rgb == COLORS[a.color]
            assert delta_e(a.rgb, scene.background.rgb) >= 25
            for b in scene.objects:
                if a is not b:  # never overlapping
                    assert np.hypot(a.x - b.x, a.y - b.y) > circumradius(a.shape, a.size) + \
                        circumradius(b.shape, b.size)
    assert generate_scene(category, 1) != generate_scene(category, 2)


def test_unknown_category_is_refused():
    with pytest.raises(ValueError, match="unknown world category"):
        generate_scene("abstract", 0)


def test_bundled_file_equals_what_the_seeds_give():
    path = default_bundle_path()
    assert path.read_text(encoding="utf-8") == bundle_text()
    assert main(["--check", str(path)]) == 0


def test_generator_cli_writes_the_bundle(tmp_path):
    target = tmp_path / "scenes.jsonl"
    assert main([str(target)]) == 0
    assert target.read_text(encoding="utf-8") == bundle_text()
    target.write_text("{}\n")
    assert main(["--check", str(target)]) == 1


def test_world_dataset_items_and_references():
    dataset = DATASETS.create("world")
    items = dataset.items()
    assert len(items) >= 24
    counts = {c: sum(i.category == c for i in items) for c in CATEGORIES}
    assert all(n >= 6 for n in counts.values())
    assert len({i.id for i in items}) == len(items)
    ref = items[0].load()
    assert ref.image.size == (256, 256) and ref.category == items[0].category
    truth = SceneSpec.model_validate(json.loads(json.dumps(ref.ground_truth)))
    assert truth.objects and ref.license
    small = WorldDataset(size=64).items()[0].load()
    assert small.image.size == (64, 64)
    assert [i.id for i in dataset.select(categories=["styled"], limit=3)] == [
        "styled-00", "styled-01", "styled-02"]


def test_world_dataset_errors(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        WorldDataset(path=str(tmp_path / "missing.jsonl"))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "scene": {"objects": []}}\n')
    with pytest.raises(DatasetError, match="bad.jsonl:1"):
        WorldDataset(path=str(bad)).items()
