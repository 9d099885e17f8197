"""The scene generator (random scenes and their near variants) and the bundled world dataset."""

import json

import numpy as np
import pytest

from repainter.bench.world.dataset import WorldDataset
from repainter.bench.world.generator import (
    CATEGORIES,
    VARIANT_KINDS,
    bundle_rows,
    bundle_text,
    default_bundle_path,
    generate_scene,
    main,
    scene_variants,
)
from repainter.bench.world.scene import SceneSpec, circumradius, shape_extent
from repainter.bench.world.vocabulary import COLORS, basic_color, delta_e
from repainter.datasets import DatasetError
from repainter.registry import DATASETS


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


# -- near variants -------------------------------------------------------------------------------

FIELDS = ("shape", "color", "rgb", "size", "x", "y", "style")


def _bundle_scenes() -> list[SceneSpec]:
    return [SceneSpec.model_validate(row["scene"]) for row in bundle_rows()]


def _changed(a, b) -> set[str]:
    return {f for f in FIELDS if getattr(a, f) != getattr(b, f)}


def _one_object_changed(base: SceneSpec, variant: SceneSpec) -> tuple[int, set[str]]:
    assert variant.background == base.background and len(variant.objects) == len(base.objects)
    diffs = [(i, _changed(a, b)) for i, (a, b) in enumerate(zip(base.objects, variant.objects))]
    diffs = [(i, d) for i, d in diffs if d]
    assert len(diffs) == 1, diffs
    return diffs[0]


def _check_kind(kind: str, base: SceneSpec, variant: SceneSpec) -> None:
    if kind == "move":
        i, fields = _one_object_changed(base, variant)
        assert fields <= {"x", "y"}
        a, b = base.objects[i], variant.objects[i]
        assert np.hypot(a.x - b.x, a.y - b.y) >= 0.15
    elif kind == "recolour":
        i, fields = _one_object_changed(base, variant)
        assert fields == {"color", "rgb"}
        assert basic_color(variant.objects[i].color) != basic_color(base.objects[i].color)
    elif kind == "reshape":
        assert _one_object_changed(base, variant)[1] == {"shape"}
    elif kind == "resize":
        i, fields = _one_object_changed(base, variant)
        assert fields == {"size"}
        factor = variant.objects[i].size / base.objects[i].size
        assert factor < 1 / 1.3 or factor > 1.3  # beyond object_f1's size tolerance
    elif kind == "swap_colours":
        assert variant.background == base.background
        changed = [i for i, (a, b) in enumerate(zip(base.objects, variant.objects)) if a != b]
        assert len(changed) == 2 and len(variant.objects) == len(base.objects)
        i, j = changed
        for k, other in ((i, j), (j, i)):
            assert _changed(base.objects[k], variant.objects[k]) == {"color", "rgb"}
            assert variant.objects[k].color == base.objects[other].color
        # the same colours in the scene, bound to other objects
        assert sorted(o.color for o in variant.objects) == sorted(o.color for o in base.objects)
    elif kind == "background":
        assert variant.objects == base.objects and variant.background != base.background
        assert variant.background.kind == base.background.kind
        assert variant.background.direction == base.background.direction
    elif kind == "drop":
        assert len(base.objects) > 1 and len(variant.objects) == len(base.objects) - 1
        assert variant.background == base.background
        assert any(base.objects[:i] + base.objects[i + 1:] == variant.objects
                   for i in range(len(base.objects)))
    elif kind == "add":
        assert variant.background == base.background
        assert variant.objects[:-1] == base.objects and len(variant.objects) == len(base.objects) + 1
        assert len(variant.objects) <= 5
    else:  # pragma: no cover
        raise AssertionError(kind)


def _check_invariants(scene: SceneSpec) -> None:
    bg = scene.background
    under = [bg.rgb] + ([bg.rgb2] if bg.kind == "gradient" else [])
    for a in scene.objects:
        assert a.rgb == COLORS[a.color]
        assert all(delta_e(a.rgb, rgb) >= 28 for rgb in under)
        hx, hy = shape_extent(a.shape, a.size)
        assert hx <= a.x <= 1 - hx and hy <= a.y <= 1 - hy  # inside the frame
        for b in scene.objects:
            if a is not b:
                assert np.hypot(a.x - b.x, a.y - b.y) > circumradius(a.shape, a.size) + \
                    circumradius(b.shape, b.size)
    SceneSpec.model_validate(scene.model_dump(mode="json"))


def test_scene_variants_change_exactly_what_their_kind_says():
    seen_kinds = set()
    for index, base in enumerate(_bundle_scenes()):
        variants = scene_variants(base, 6, seed=index)
        assert len(variants) == 6
        keys = {v.model_dump_json() for _, v in variants}
        assert len(keys) == 6 and base.model_dump_json() not in keys  # distinct, all new
        for kind, variant in variants:
            assert kind in VARIANT_KINDS
            _check_kind(kind, base, variant)
            _check_invariants(variant)
            seen_kinds.add(kind)
        # kinds are cycled: a handful of variants is never all of one kind
        assert len({kind for kind, _ in variants}) >= 4
    assert seen_kinds == set(VARIANT_KINDS)


def test_scene_variants_are_deterministic_and_seeded():
    base = generate_scene("crowded", 3)
    assert scene_variants(base, 5, seed=11) == scene_variants(base, 5, seed=11)
    assert scene_variants(base, 5, seed=11) != scene_variants(base, 5, seed=12)
    assert scene_variants(base, 3, seed=11) == scene_variants(base, 5, seed=11)[:3]
    assert scene_variants(base, 0, seed=0) == []


def test_scene_variants_skip_kinds_that_do_not_apply():
    single = generate_scene("single", 4)
    assert len(single.objects) == 1
    kinds = {kind for kind, _ in scene_variants(single, 24, seed=1)}
    assert not kinds & {"drop", "swap_colours"}
    assert {"move", "recolour", "reshape", "resize", "background", "add"} <= kinds
    full = next(s for s in (generate_scene("crowded", i) for i in range(50)) if len(s.objects) == 5)
    full_kinds = {kind for kind, variant in scene_variants(full, 24, seed=2)}
    assert "add" not in full_kinds and "drop" in full_kinds


@pytest.mark.parametrize("n, seed", [(-1, 0), (1.5, 0), (True, 0), (2, -3), (2, "x")])
def test_scene_variants_reject_bad_arguments(n, seed):
    with pytest.raises(ValueError, match="scene_variants"):
        scene_variants(generate_scene("pair", 1), n, seed)
