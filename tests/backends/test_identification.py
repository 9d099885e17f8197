"""The identification metric: rank of the reference in a gallery, the candidate as the query."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from repainter.backends.base import Reference
from repainter.backends.metrics import identification as ident_module
from repainter.backends.metrics.identification import (
    ColourLayoutEmbedding,
    IdentificationMetric,
)
from repainter.datasets import load_dataset
from repainter.gallery_features import clear_gallery_features
from repainter.registry import METRICS

GALLERY = {"name": "world", "limit": 16}


@pytest.fixture(scope="module")
def refs():
    return [i.load() for i in load_dataset("world").select(None, 16)]


@pytest.fixture(scope="module")
def rr():
    return IdentificationMetric(gallery=GALLERY, cache_dir=False)


def _noise(seed: int, size: int = 256) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_registered():
    assert "identification" in METRICS.names()
    assert METRICS.get("identification") is IdentificationMetric


def test_identical_image_ranks_first(rr, refs):
    hits1 = IdentificationMetric(gallery=GALLERY, report="hits@1", cache_dir=False)
    for ref in refs:
        assert rr(ref, [ref.image]) == [1.0]
        assert hits1(ref, [ref.image]) == [1.0]
        assert rr.prepare(ref)["found_by"] == "hash"


def test_noise_ranks_low(rr, refs):
    noise = _noise(0)
    ranks = [rr.ranks(rr.prepare(ref), [noise])[0] for ref in refs]
    assert np.mean([1.0 / r for r in ranks]) < 0.35
    assert np.median(ranks) > 4
    hits5 = IdentificationMetric(gallery=GALLERY, report="hits@5", cache_dir=False)
    hits10 = IdentificationMetric(gallery=GALLERY, report="hits@10", cache_dir=False)
    h5 = [hits5(ref, [noise])[0] for ref in refs]
    h10 = [hits10(ref, [noise])[0] for ref in refs]
    assert all(a <= b for a, b in zip(h5, h10))
    assert np.mean(h5) == pytest.approx(np.mean([r <= 5 for r in ranks]))


def test_batched_equals_one_by_one(rr, refs):
    ref = refs[3]
    prepared = rr.prepare(ref)
    candidates = [ref.image, refs[4].image, _noise(1), refs[0].image.resize((100, 100)), _noise(2)]
    batch = rr.score(prepared, candidates)
    assert batch == [rr.score(prepared, [c])[0] for c in candidates]
    assert batch[0] == 1.0 and all(0 < v <= 1 for v in batch)


def test_reference_outside_the_gallery_is_added(rr, refs):
    outsider = Reference("not-in-gallery", _noise(3))
    prepared = rr.prepare(outsider)
    assert prepared["found_by"] == "added"
    assert len(prepared["gallery"]) == len(rr.gallery_features()["ids"]) + 1
    assert rr.score(prepared, [outsider.image]) == [1.0]
    # by id when the pixels differ (e.g. another size of the same item)
    resized = Reference(refs[2].id, refs[2].image.resize((128, 128)))
    assert rr.prepare(resized)["found_by"] == "id"
    strict = IdentificationMetric(gallery=GALLERY, match="hash", cache_dir=False)
    assert strict.prepare(resized)["found_by"] == "added"


def test_gallery_embedded_once(monkeypatch, refs):
    clear_gallery_features()
    calls = []
    original = ColourLayoutEmbedding.embed

    def counting(self, images):
        calls.append(len(images))
        return original(self, images)

    monkeypatch.setattr(ColourLayoutEmbedding, "embed", counting)
    metric = IdentificationMetric(gallery={"name": "world", "limit": 6}, cache_dir=False)
    for ref in refs[:6]:
        metric.score(metric.prepare(ref), [ref.image, _noise(0)])
    # one gallery pass, then one batch of candidates per score call
    assert calls == [6] + [2] * 6
    clear_gallery_features()


def test_params_and_identity():
    with pytest.raises(ValueError, match="gallery"):
        IdentificationMetric()
    with pytest.raises(ValueError, match="report"):
        IdentificationMetric(gallery=GALLERY, report="hits@0", cache_dir=False)
    with pytest.raises(ValueError, match="embedding"):
        IdentificationMetric(gallery=GALLERY, embedding={"name": "ssim"}, cache_dir=False)
    ident = IdentificationMetric(gallery=GALLERY, report="hits@5", cache_dir=False).identity()
    assert ident["report"] == "hits@5" and ident["embedding"] == "colour_layout"
    assert ident["gallery"]["name"] == "world" and ident["gallery"]["n"] == 16


def test_clip_embedding(tiny_open_clip_checkpoint, refs):
    pytest.importorskip("open_clip")
    from .tiny_models import TINY_OPEN_CLIP, TINY_OPEN_CLIP_NAME

    metric = IdentificationMetric(
        gallery={"name": "world", "limit": 6}, cache_dir=False,
        embedding={"name": "clip_i", "params": {
            "model": TINY_OPEN_CLIP_NAME, "pretrained": None, "model_config": TINY_OPEN_CLIP,
            "checkpoint": str(tiny_open_clip_checkpoint), "device": "cpu"}})
    assert isinstance(metric.embedding, ident_module.MetricEmbedding)
    ref = refs[1]
    prepared = metric.prepare(ref)
    scores = metric.score(prepared, [ref.image, _noise(4)])
    assert scores[0] == 1.0
    assert metric.identity()["embedding"]["metric"] == "clip_i"
