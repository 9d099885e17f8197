"""The world dataset's hard negatives: near variants of each scene and random distractors."""

import json
import re
import zlib

import pytest

from repainter.bench.world.dataset import WorldDataset
from repainter.bench.world.generator import VARIANT_KINDS, bundle_rows, scene_variants
from repainter.bench.world.scene import SceneSpec
from repainter.datasets import DatasetError, load_dataset
from repainter.gallery_features import Gallery
from repainter.spec import build_spec

BUNDLE_IDS = [row["id"] for row in bundle_rows()]


def _truths(dataset: WorldDataset) -> dict[str, dict]:
    return {item.id: item.load().ground_truth for item in dataset.items()}


def test_defaults_are_the_bundled_scenes_alone():
    plain = WorldDataset().items()
    assert [i.id for i in plain] == BUNDLE_IDS and len(plain) == 32
    explicit = WorldDataset(variants=0, distractors=0, seed=0).items()
    assert [(i.id, i.category, i.source) for i in explicit] == [
        (i.id, i.category, i.source) for i in plain]
    assert WorldDataset().variant_kinds() == {}


def test_variants_follow_the_scenes_with_ids_categories_and_ground_truth():
    dataset = WorldDataset(variants=3, size=64)
    items = dataset.items()
    assert len(items) == 32 * 4
    assert [i.id for i in items[:32]] == BUNDLE_IDS  # the file's scenes first, unchanged
    added = items[32:]
    assert [i.id for i in added[:3]] == [f"{BUNDLE_IDS[0]}~v{k}" for k in range(3)]
    assert all(re.fullmatch(r"[a-z]+-\d\d~v[0-2]", i.id) for i in added)
    assert {i.category for i in added} == {"variant"}
    assert len({i.id for i in items}) == len(items)
    kinds = dataset.variant_kinds()
    assert set(kinds) == {i.id for i in added}
    assert {kind for _, kind in kinds.values()} <= set(VARIANT_KINDS)
    assert len({kind for _, kind in kinds.values()}) >= 6  # diverse over the dataset
    truths = _truths(dataset)
    for item in added:
        parent, kind = kinds[item.id]
        assert item.id.startswith(parent + "~v") and kind in item.source
        ref = item.load()
        assert ref.image.size == (64, 64) and ref.category == "variant" and ref.license
        assert SceneSpec.model_validate(ref.ground_truth) != SceneSpec.model_validate(
            truths[parent])
    # a variant is what scene_variants makes of its scene (seeded by the id: order-independent)
    first = added[0]
    parent, kind = kinds[first.id]
    scene = SceneSpec.model_validate(truths[parent])
    assert any(kind == k and v.model_dump(mode="json") == truths[first.id]
               for k, v in scene_variants(scene, 3, seed=_seed_of(dataset, parent)))


def _seed_of(dataset: WorldDataset, scene_id: str) -> int:
    return (dataset.seed << 32) | zlib.crc32(scene_id.encode("utf-8"))


def test_distractors_are_new_random_scenes():
    dataset = WorldDataset(distractors=6, size=16)
    items = dataset.items()
    assert len(items) == 38
    extra = items[32:]
    assert [i.id for i in extra] == [f"distractor-{k:03d}" for k in range(6)]
    assert {i.category for i in extra} == {"distractor"}
    truths = _truths(dataset)
    bundled = [truths[i] for i in BUNDLE_IDS]
    assert all(truths[i.id] not in bundled for i in extra)
    assert len({str(truths[i.id]) for i in extra}) == 6
    assert dataset.select(categories=["distractor"], limit=2)[1].id == "distractor-001"


def test_added_items_are_reproducible_and_seeded():
    a, b = (WorldDataset(variants=2, distractors=3, size=16) for _ in range(2))
    assert _truths(a) == _truths(b)
    other = _truths(WorldDataset(variants=2, distractors=3, seed=1, size=16))
    same = _truths(a)
    assert [i for i in BUNDLE_IDS if other[i] != same[i]] == []  # the file's scenes stay
    assert other["distractor-000"] != same["distractor-000"]
    assert any(other[f"{i}~v0"] != same[f"{i}~v0"] for i in BUNDLE_IDS)


@pytest.mark.parametrize("params, match", [
    ({"variants": -1}, "variants"), ({"variants": 33}, "variants"), ({"variants": 1.5}, "variants"),
    ({"variants": True}, "variants"), ({"variants": "4"}, "variants"),
    ({"distractors": -2}, "distractors"), ({"distractors": 10**6}, "distractors"),
    ({"seed": -1}, "seed"),
])
def test_bad_parameters_are_refused(params, match):
    with pytest.raises(DatasetError, match=f"world {match} must be an integer"):
        WorldDataset(**params)


def test_added_ids_may_not_clash_with_the_file(tmp_path):
    rows = bundle_rows()[:1]
    clash = dict(rows[0], id=f"{rows[0]['id']}~v0")
    path = tmp_path / "scenes.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [*rows, clash]))
    assert len(WorldDataset(path=str(path)).items()) == 2
    with pytest.raises(DatasetError, match="clash"):
        WorldDataset(path=str(path), variants=1).items()


def test_load_dataset_spec_and_gallery_take_the_parameters():
    dataset = load_dataset("world", {"variants": 4, "distractors": 100})
    assert len(dataset.items()) == 32 * 5 + 100
    spec = build_spec({"dataset": {"name": "world", "params": {"variants": 4}}})
    assert spec.dataset.params == {"variants": 4}
    gallery = Gallery({"name": "world", "params": {"variants": 2}, "categories": ["variant"]})
    assert len(gallery.ids) == 64 and gallery.identity()["params"] == {"variants": 2}
    assert gallery.load(gallery.ids[0]).ground_truth
