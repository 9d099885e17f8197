"""LPIPS: input scaling, resize policy, identical = 0, noise raises the distance, backbone loading,
offline error for a missing backbone."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("lpips")

from repainter.backends.base import Reference  # noqa: E402
from repainter.backends.metrics.lpips import LPIPSDistance, to_lpips_tensor  # noqa: E402
from repainter.weights import WeightsNotFoundError  # noqa: E402

from .tiny_models import (  # noqa: E402
    build_random_alexnet_checkpoint,
    fails_fast,
)


def _noise_image(seed, size=(48, 48)):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _noisy(img, sigma, seed=1):
    rng = np.random.default_rng(seed)
    arr = np.asarray(img, dtype=np.float64) + rng.normal(0, sigma, (img.height, img.width, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def test_scaling_to_minus_one_one():
    img = Image.fromarray(np.array([[[0, 255, 127.5 // 1]]], dtype=np.uint8))
    t = to_lpips_tensor(img)
    assert t.shape == (1, 3, 1, 1) and t.dtype == torch.float32
    assert t[0, 0, 0, 0].item() == -1.0
    assert t[0, 1, 0, 0].item() == 1.0
    assert abs(t[0, 2, 0, 0].item() - (127 / 127.5 - 1)) < 1e-7
    # resize to (W, H)
    assert to_lpips_tensor(_noise_image(0, (30, 20)), (16, 24)).shape == (1, 3, 24, 16)


@pytest.fixture(scope="module")
def metric():
    return LPIPSDistance(net="alex", resize=64, device="cpu", random_backbone_for_tests=True)


def test_identical_is_zero_noise_raises(metric):
    ref = Reference("r", _noise_image(0))
    scores = metric(ref, [ref.image, _noisy(ref.image, 10), _noisy(ref.image, 60)])
    assert scores[0] == pytest.approx(0.0, abs=1e-6)
    assert 0 < scores[1] < scores[2]
    assert metric.similarity(scores[0]) == pytest.approx(1.0)


def test_batched_equals_single_and_resize_policy(metric):
    ref = Reference("r", _noise_image(0))
    cands = [_noise_image(s) for s in (1, 2, 3)]
    prepared = metric.prepare(ref)
    assert prepared.shape == (1, 3, 64, 64)
    batch = metric.score(prepared, cands)
    single = [metric.score(prepared, [c])[0] for c in cands]
    assert batch == pytest.approx(single, abs=1e-5)
    keep = LPIPSDistance(resize=None, device="cpu", random_backbone_for_tests=True)
    assert keep.prepare(Reference("r", _noise_image(0, (40, 32)))).shape == (1, 3, 32, 40)
    # a candidate of another size is resized to the reference's size
    assert len(keep(Reference("r", _noise_image(0, (40, 32))), [_noise_image(1, (64, 64))])) == 1


def test_random_backbone_is_recorded(metric):
    ident = metric.identity()
    assert ident["random_backbone_for_tests"] is True and "NOT LPIPS" in ident["warning"]
    assert metric.higher_is_better is False


def test_local_backbone_weights_are_loaded(tmp_path):
    path = build_random_alexnet_checkpoint(tmp_path)
    m = LPIPSDistance(net="alex", resize=64, device="cpu", backbone_weights=str(path))
    state = torch.load(path, weights_only=True)
    assert torch.equal(getattr(m._model.net.slice1, "0").weight, state["features.0.weight"])
    assert torch.equal(getattr(m._model.net.slice5, "10").bias, state["features.10.bias"])
    assert "random_backbone_for_tests" not in m.identity()
    ref = Reference("r", _noise_image(0))
    assert m(ref, [ref.image])[0] == pytest.approx(0.0, abs=1e-6)


def test_wrong_backbone_file_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"something": torch.zeros(1)}, bad)
    with pytest.raises(WeightsNotFoundError, match="not a torchvision alex checkpoint"):
        LPIPSDistance(backbone_weights=str(bad), device="cpu")


def test_offline_missing_backbone_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    with fails_fast():
        with pytest.raises(WeightsNotFoundError) as info:
            LPIPSDistance(net="vgg", device="cpu")
    message = str(info.value)
    assert "lpips-vgg backbone" in message and "vgg16-397923af.pth" in message
    assert "backbone_weights" in message
    with pytest.raises(WeightsNotFoundError, match="no such file"):
        LPIPSDistance(backbone_weights=str(tmp_path / "missing.pth"), device="cpu")


# -- issue 12 items 2-4: GILL's LPIPS steps, native resolution, one image-mode policy -------------


def _gill_lpips(model, img0, img1):
    """GILL's evals/lpips_2dirs.py (kohjingyu/gill), reimplemented: lpips.im2tensor of the RGB
    uint8 array, torchvision resize to (256, 256) with antialias, then loss_fn.forward."""
    import lpips
    import torchvision

    t0 = lpips.im2tensor(np.asarray(img0))
    t1 = lpips.im2tensor(np.asarray(img1))
    t0 = torchvision.transforms.functional.resize(t0, (256, 256), antialias=True)
    t1 = torchvision.transforms.functional.resize(t1, (256, 256), antialias=True)
    with torch.no_grad():
        return model.forward(t0, t1).item()


def test_gill_lpips_matches_gills_script():
    gill = LPIPSDistance(net="alex", resize=256, device="cpu", random_backbone_for_tests=True)
    ref, cands = _noise_image(0, (300, 200)), [_noise_image(s, (90, 120)) for s in (1, 2)]
    expected = [_gill_lpips(gill._model, ref, c) for c in cands]
    assert gill(Reference("r", ref), cands) == pytest.approx(expected, abs=1e-6)
    assert "torchvision bilinear" in gill.identity()["resize_policy"]


def test_gill_preset_lpips_resizes_to_256():
    from repainter.spec import build_spec

    lpips_spec = build_spec({"preset": "gill"}).metrics[1]
    assert lpips_spec.name == "lpips" and lpips_spec.params["resize"] == 256


def test_native_resolution_by_default_when_sizes_match():
    """Item 3: LPIPS used to squash every pair to 256x256."""
    import lpips

    default = LPIPSDistance(device="cpu", random_backbone_for_tests=True)
    assert default.resize is None and "native" in default.identity()["resize_policy"]
    ref, cand = _noise_image(0, (48, 40)), _noise_image(1, (48, 40))
    with torch.no_grad():
        expected = default._model.forward(lpips.im2tensor(np.asarray(ref)),
                                          lpips.im2tensor(np.asarray(cand))).item()
    assert default(Reference("r", ref), [cand])[0] == pytest.approx(expected, abs=1e-6)


def test_rgba_called_directly_equals_loader_conversion():
    """Item 4: a metric called directly applies the loader's image-mode policy."""
    from repainter.images import to_rgb

    metric = LPIPSDistance(device="cpu", random_backbone_for_tests=True)
    rgba = Image.new("RGBA", (32, 32), (10, 200, 10, 0))
    ref = Reference("r", _noise_image(0, (32, 32)))
    assert metric(ref, [rgba]) == pytest.approx(metric(ref, [to_rgb(rgba)]), abs=1e-7)
    assert metric(ref, [rgba]) != pytest.approx(metric(ref, [rgba.convert("RGB")]), abs=1e-3)
