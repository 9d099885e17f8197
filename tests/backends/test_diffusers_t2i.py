"""DiffusersT2I on a tiny StableDiffusionPipeline saved to disk and loaded by its local path."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from repainter.backends.t2i.diffusers import (  # noqa: E402
    ALL_BLACK,
    BLANKED,
    DiffusersT2I,
    is_blank,
)
from repainter.weights import WeightsNotFoundError  # noqa: E402

from .tiny_models import (  # noqa: E402
    fails_fast,
)


@pytest.fixture(scope="module")
def t2i(tiny_sd_path):
    return DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, guidance_scale=3.0)


def _arr(generated):
    return np.asarray(generated.image)


def test_batch_seeds_and_metadata(t2i, tiny_sd_path):
    prompts = ["a red cat", "a blue dog", "a red cat"]
    out = t2i.generate(prompts, [1, 2, 1])
    assert len(out) == 3
    assert [g.prompt for g in out] == prompts and [g.seed for g in out] == [1, 2, 1]
    assert all(g.image.mode == "RGB" and g.image.size == (32, 32) for g in out)
    # same prompt + seed -> same image (to one grey level: batched float arithmetic on CPU
    # may differ in the last bit between batch positions)
    assert np.abs(_arr(out[0]).astype(int) - _arr(out[2]).astype(int)).max() <= 1
    again = t2i.generate(["a red cat"], [1])
    assert np.allclose(_arr(again[0]).astype(int), _arr(out[0]).astype(int), atol=1)
    different_seed = t2i.generate(["a red cat"], [3])
    assert np.abs(_arr(different_seed[0]).astype(int) - _arr(out[0]).astype(int)).mean() > 5
    meta = out[1].metadata
    assert meta["model"] == str(tiny_sd_path) and meta["revision"] is None
    assert meta["params"]["steps"] == 2 and meta["params"]["guidance_scale"] == 3.0
    assert meta["params"]["scheduler"] == "DDIMScheduler"
    assert meta["pipeline"] == "StableDiffusionPipeline"
    assert meta["seed"] == 2 and meta["batch_index"] == 1 and meta["generator_device"] == "cpu"
    assert all(g.flagged is None for g in out)
    assert t2i.identity()["model"] == str(tiny_sd_path)


def test_chunked_batches_match_one_batch(t2i, tiny_sd_path):
    chunked = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, guidance_scale=3.0,
                           batch_size=2)
    assert chunked.pipe is t2i.pipe  # one load per process for the same load params
    prompts, seeds = ["a", "b", "c"], [4, 5, 6]
    whole = t2i.generate(prompts, seeds)
    parts = chunked.generate(prompts, seeds)
    for a, b in zip(whole, parts):
        assert np.allclose(_arr(a).astype(int), _arr(b).astype(int), atol=2)
    assert [g.metadata["batch_size"] for g in parts] == [2, 2, 1]
    with pytest.raises(ValueError):
        t2i.generate(["a", "b"], [1])
    assert t2i.generate([], []) == []


def test_scheduler_override_and_call_params(tiny_sd_path):
    euler = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2,
                         scheduler="EulerDiscreteScheduler", width=48, height=40,
                         negative_prompt="blurry")
    assert type(euler.pipe.scheduler).__name__ == "EulerDiscreteScheduler"
    out = euler.generate(["a cat"], [0])
    assert out[0].image.size == (48, 40)
    assert out[0].metadata["params"]["scheduler"] == "EulerDiscreteScheduler"
    assert out[0].metadata["params"]["negative_prompt"] == "blurry"
    with pytest.raises(ValueError, match="no scheduler class"):
        DiffusersT2I(model=str(tiny_sd_path), device="cpu", scheduler="NoSuchScheduler")


@pytest.mark.slow
def test_safety_checker_blanked_images_are_flagged(tiny_sd_path, monkeypatch):
    t2i = DiffusersT2I(model=str(tiny_sd_path), device="cpu", steps=2, dtype="float32",
                       scheduler="DDIMScheduler")

    def blank_first(image, device, dtype):
        image = image.clone()
        image[0] = 0  # what the safety checker does: a black image, flag set
        return image, [True] + [False] * (image.shape[0] - 1)

    monkeypatch.setattr(t2i.pipe, "run_safety_checker", blank_first)
    out = t2i.generate(["x", "y"], [0, 1])
    assert out[0].flagged == BLANKED and is_blank(out[0].image)
    assert out[0].metadata["nsfw_content_detected"] is True
    assert out[1].flagged is None

    def black_without_flag(image, device, dtype):
        # the image is decoded in [-1, 1]; -1 becomes black after denormalisation
        return torch.full_like(image, -1.0), None

    monkeypatch.setattr(t2i.pipe, "run_safety_checker", black_without_flag)
    # black without the checker's flag is not called safety blanking (issue 16 item 11)
    assert [g.flagged for g in t2i.generate(["x"], [0])] == [ALL_BLACK]


def test_offline_missing_weights(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with fails_fast():
        with pytest.raises(WeightsNotFoundError) as info:
            DiffusersT2I(model="nobody/no-such-sd-model", device="cpu")
    msg = str(info.value)
    assert "nobody/no-such-sd-model" in msg and "hf download" in msg
    assert "local path" in msg
    with pytest.raises(WeightsNotFoundError, match="no such local path"):
        DiffusersT2I(model=str(tmp_path / "no-folder"), device="cpu")
