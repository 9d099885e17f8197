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
    assert gill.identity()["resize"] == 256  # still available, but no preset uses it
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


# -- issue 12 item 2: GILL's CLIP image similarity, reproduced step by step ------------------------


def _gill_reference_score(model, ref_img, gen_img, mean, std, size):
    """GILL's evals/compute_clip_similarity_vist.py (kohjingyu/gill), reimplemented: the
    transformers 4.x CLIPImageProcessor steps, get_image_features, then the cosine as written."""

    def processor(img):
        img = img.convert("RGB")  # do_convert_rgb
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(size * long / short)
        nh, nw = (new_long, size) if w <= h else (size, new_long)
        arr = np.array(img.resize((nw, nh), resample=Image.BICUBIC, reducing_gap=None))
        top, left = (nh - size) // 2, (nw - size) // 2
        arr = arr[top:top + size, left:left + size]
        arr = (arr * (1 / 255)).astype(np.float32)
        arr = (arr - np.array(mean, dtype=np.float32)) / np.array(std, dtype=np.float32)
        return torch.from_numpy(arr.transpose(2, 0, 1).copy()).unsqueeze(0)

    with torch.no_grad():
        gt_feat = model.encode_image(processor(ref_img))
        image_feat = model.encode_image(processor(gen_img))
    return ((image_feat / image_feat.norm()) @ (gt_feat / gt_feat.norm()).T).item()


def test_gill_preprocess_matches_gills_clip_script(tiny_open_clip_checkpoint):
    """No 256x256 pre-resize: only CLIP's own preprocessing, as GILL's script does. Non-square
    images (odd margins, where open_clip's and HF's centre crops differ by a pixel)."""
    gill = ClipImageSimilarity(model=TINY_OPEN_CLIP_NAME, pretrained=None,
                               checkpoint=str(tiny_open_clip_checkpoint),
                               model_config=TINY_OPEN_CLIP, device="cpu", preprocess="gill")
    assert gill.identity()["preprocess"] == "gill" and gill.identity()["resize"] is None
    mean, std = [0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]
    ref, cands = _noise_image(0, (71, 40)), [_noise_image(s, (37, 64)) for s in (1, 2, 3)]
    expected = [_gill_reference_score(gill._model, ref.copy(), c, mean, std, 32) for c in cands]
    assert gill(Reference("r", ref), cands) == pytest.approx(expected, abs=1e-5)


def test_gill_preset_has_no_pre_resize():
    from repainter.spec import build_spec

    clip = build_spec({"preset": "gill"}).metrics[0]
    assert clip.name == "clip_i" and clip.params.get("resize") is None
    assert clip.params["preprocess"] == "gill"


def test_metric_called_directly_composites_alpha_like_the_loader(metric, tmp_path):
    """Item 4: one image-mode policy; RGBA used to lose its alpha when given to a metric."""
    from repainter.images import load_image

    rgba = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    rgba.paste((200, 20, 20, 255), (10, 10, 30, 30))
    path = tmp_path / "a.png"
    rgba.save(path)
    loaded = load_image(path)
    ref = Reference("r", _noise_image(3))
    assert metric(ref, [rgba]) == pytest.approx(metric(ref, [loaded]), abs=1e-6)
