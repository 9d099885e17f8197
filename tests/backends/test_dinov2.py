"""DINOv2 on a tiny Dinov2Model saved with save_pretrained and loaded from its local folder."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from repainter.backends.base import Reference  # noqa: E402
from repainter.backends.metrics.dinov2 import DinoV2Similarity  # noqa: E402
from repainter.weights import WeightsNotFoundError  # noqa: E402

from .tiny_models import (  # noqa: E402
    fails_fast,
)


def _noise_image(seed, size=(40, 40)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def metric(tiny_dinov2_path):
    return DinoV2Similarity(model=str(tiny_dinov2_path), device="cpu")


def test_weights_are_the_saved_ones(metric, tiny_dinov2_path):
    from transformers import Dinov2Model

    saved = Dinov2Model.from_pretrained(tiny_dinov2_path)
    key = "embeddings.patch_embeddings.projection.weight"
    assert torch.equal(metric._model.state_dict()[key], saved.state_dict()[key])


def test_identical_one_noise_lower_and_mean_pooling_by_hand(metric):
    ref = Reference("r", _noise_image(0))
    arr = np.asarray(ref.image, dtype=np.float64)
    noisy = Image.fromarray(np.clip(arr + np.random.default_rng(1).normal(0, 80, arr.shape),
                                    0, 255).astype(np.uint8))
    same, other = metric(ref, [ref.image, noisy])
    assert same == pytest.approx(1.0, abs=1e-6) and other < same
    # by hand: mean over all tokens of last_hidden_state, then cosine
    inputs = metric._processor(images=[ref.image, noisy], return_tensors="pt")
    assert inputs["pixel_values"].shape[-2:] == (32, 32)
    with torch.no_grad():
        hidden = metric._model(**inputs).last_hidden_state.double()
    a, b = hidden[0].mean(0), hidden[1].mean(0)
    assert other == pytest.approx(float(a @ b / (a.norm() * b.norm())), abs=1e-5)


def test_cls_pooling_differs_and_batching(tiny_dinov2_path, metric):
    cls = DinoV2Similarity(model=str(tiny_dinov2_path), pooling="cls", device="cpu", batch_size=2)
    assert cls._model is metric._model  # one load per process
    ref = Reference("r", _noise_image(0))
    cands = [_noise_image(s) for s in (1, 2, 3)]
    prepared = cls.prepare(ref)
    batch = cls.score(prepared, cands)
    assert batch == pytest.approx([cls.score(prepared, [c])[0] for c in cands], abs=1e-5)
    assert batch != pytest.approx(metric(ref, cands), abs=1e-6)
    assert cls.identity()["pooling"] == "cls"
    with pytest.raises(ValueError):
        DinoV2Similarity(model=str(tiny_dinov2_path), pooling="max")


def test_offline_missing_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with fails_fast():
        with pytest.raises(WeightsNotFoundError) as info:
            DinoV2Similarity(model="nobody/no-such-dinov2", device="cpu")
    assert "nobody/no-such-dinov2" in str(info.value)
    assert "hf download nobody/no-such-dinov2" in str(info.value)
    with pytest.raises(WeightsNotFoundError, match="no such local path"):
        DinoV2Similarity(model=str(tmp_path / "missing-folder"), device="cpu")
