"""CLIP-I on a tiny open_clip CLIP loaded from a local checkpoint through the user code path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("open_clip")

from repainter.backends.base import Reference  # noqa: E402
from repainter.backends.metrics.clip_i import ClipImageSimilarity, pre_resize  # noqa: E402
from repainter.weights import WeightsNotFoundError  # noqa: E402

from .tiny_models import (  # noqa: E402, F401
    TINY_OPEN_CLIP,
    TINY_OPEN_CLIP_NAME,
    fails_fast,  # noqa: E402
)


def _noise_image(seed, size=(40, 40)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def metric(tiny_open_clip_checkpoint):
    return ClipImageSimilarity(model=TINY_OPEN_CLIP_NAME, pretrained=None,
                               checkpoint=str(tiny_open_clip_checkpoint),
                               model_config=TINY_OPEN_CLIP, device="cpu")


def test_checkpoint_weights_are_the_saved_ones(metric, tiny_open_clip_checkpoint):
    saved = torch.load(tiny_open_clip_checkpoint, weights_only=True)
    loaded = metric._model.state_dict()
    assert torch.equal(loaded["visual.conv1.weight"], saved["visual.conv1.weight"])
    assert metric.identity()["checkpoint"] == str(tiny_open_clip_checkpoint)


def test_identical_is_one_and_noise_lowers(metric):
    ref = Reference("r", _noise_image(0))
    arr = np.asarray(ref.image, dtype=np.float64)
    rng = np.random.default_rng(5)
    noisy = Image.fromarray(np.clip(arr + rng.normal(0, 80, arr.shape), 0, 255).astype(np.uint8))
    same, other = metric(ref, [ref.image, noisy])
    assert same == pytest.approx(1.0, abs=1e-6)
    assert other < same


def test_cosine_matches_hand_computation(metric):
    ref, cand = _noise_image(0), _noise_image(1)
    with torch.no_grad():
        a = metric._model.encode_image(metric._preprocess(ref).unsqueeze(0))[0].double()
        b = metric._model.encode_image(metric._preprocess(cand).unsqueeze(0))[0].double()
    expected = float(a @ b / (a.norm() * b.norm()))
    assert metric(Reference("r", ref), [cand])[0] == pytest.approx(expected, abs=1e-5)


def test_batched_equals_single(metric):
    ref = Reference("r", _noise_image(0))
    cands = [_noise_image(s) for s in range(1, 5)]
    prepared = metric.prepare(ref)
    batch = metric.score(prepared, cands)
    assert batch == pytest.approx([metric.score(prepared, [c])[0] for c in cands], abs=1e-5)
    small = ClipImageSimilarity(model=TINY_OPEN_CLIP_NAME, pretrained=None,
                                checkpoint=metric.checkpoint, model_config=TINY_OPEN_CLIP,
                                device="cpu", batch_size=3)
    assert small.score(prepared, cands) == pytest.approx(batch, abs=1e-5)


def test_resize_policy(metric, tiny_open_clip_checkpoint, tmp_path):
    img = _noise_image(0, (50, 30))
    assert pre_resize(img, 256).size == (256, 256)
    assert pre_resize(img, None).size == (50, 30)
    # model_config as a JSON file path; resize recorded in identity
    cfg = tmp_path / "whatever.json"
    cfg.write_text(json.dumps(TINY_OPEN_CLIP))
    gill = ClipImageSimilarity(model=TINY_OPEN_CLIP_NAME + "-file", pretrained=None,
                               checkpoint=str(tiny_open_clip_checkpoint),
                               model_config=str(cfg), resize=256, device="cpu")
    assert gill.identity()["resize"] == 256
    ref = Reference("r", img)
    assert gill(ref, [img])[0] == pytest.approx(1.0, abs=1e-6)


def test_offline_missing_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with fails_fast():
        with pytest.raises(WeightsNotFoundError) as info:
            ClipImageSimilarity(model="ViT-B-32", pretrained="openai", device="cpu")
    msg = str(info.value)
    assert "ViT-B-32@openai" in msg and "hf download" in msg
    assert "timm/vit_base_patch32_clip_224.openai" in msg
    with pytest.raises(WeightsNotFoundError, match="no such checkpoint file"):
        ClipImageSimilarity(model="ViT-B-32", checkpoint=str(tmp_path / "nope.pt"), device="cpu")
    with pytest.raises(WeightsNotFoundError, match="not a known open_clip tag"):
        ClipImageSimilarity(model="ViT-B-32", pretrained="no-such-tag", device="cpu")
    with pytest.raises(WeightsNotFoundError, match="refusing random weights"):
        ClipImageSimilarity(model="ViT-B-32", pretrained=None, device="cpu")
