"""PSNR: hand-computed values, the cap, resize policy and batching."""

from __future__ import annotations

import math

import numpy as np
import pytest
from PIL import Image

from repainter.backends.base import Reference
from repainter.backends.metrics.psnr import PSNR, psnr


def _img(value, size=(8, 8)):
    return Image.new("RGB", size, value)


def test_identical_images_hit_the_cap():
    ref = Reference("r", _img((10, 20, 30)))
    assert PSNR(size=None)(ref, [ref.image]) == [100.0]
    assert PSNR(size=None, max_db=60)(ref, [ref.image]) == [60.0]


def test_hand_computed_value():
    # one channel off by 10 everywhere: MSE = 100 / 3
    ref = Reference("r", _img((100, 100, 100)))
    [value] = PSNR(size=None)(ref, [_img((110, 100, 100))])
    assert math.isclose(value, 10 * math.log10(255**2 / (100 / 3)), rel_tol=1e-12)


def test_more_noise_lower_psnr_and_data_range_is_explicit():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (16, 16, 3)).astype(np.float64)
    small = np.clip(base + rng.normal(0, 5, base.shape), 0, 255)
    big = np.clip(base + rng.normal(0, 40, base.shape), 0, 255)
    assert psnr(base, small) > psnr(base, big)
    # the same pixel error scores the same whatever the image's own range
    dark = np.zeros((4, 4, 3))
    assert math.isclose(psnr(dark, dark + 1), psnr(dark + 200, dark + 201))


def test_resize_policy_and_batching():
    ref = Reference("r", _img((50, 60, 70), (20, 10)))
    cands = [_img((50, 60, 70), (40, 40)), _img((0, 0, 0), (5, 5)), _img((55, 60, 70))]
    # size=None: candidates resized to the reference size (a flat image stays identical)
    metric = PSNR(size=None)
    prepared = metric.prepare(ref)
    assert prepared.shape == (10, 20, 3)
    batch = metric.score(prepared, cands)
    assert batch[0] == 100.0
    assert batch == [metric.score(prepared, [c])[0] for c in cands]
    # size=N: both resized to N x N
    assert PSNR(size=16).prepare(ref).shape == (16, 16, 3)
    assert PSNR(size=16)(ref, cands)[0] == 100.0


def test_similarity_and_identity():
    metric = PSNR()
    assert metric.similarity(100.0) == 1.0 and metric.similarity(50.0) == 0.5
    assert metric.identity() == {"metric": "psnr", "size": None, "data_range": 255.0,
                                 "max_db": 100.0, "resize": metric.identity()["resize"]}


def test_doctest_example():
    import doctest

    import repainter.backends.metrics.psnr as module

    assert doctest.testmod(module).failed == 0


def test_native_resolution_by_default_matches_the_standard_computation():
    """Issue 12 item 3: PSNR / SSIM used to resize every pair to 256x256 (PSNR off by ~4 dB)."""
    import math

    from skimage.metrics import structural_similarity

    from repainter.backends.metrics.ssim import SSIM

    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    b = np.clip(a + rng.normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    ref = Reference("r", Image.fromarray(a))
    mse = np.mean((a.astype(np.float64) - b) ** 2)
    assert PSNR()(ref, [Image.fromarray(b)])[0] == pytest.approx(10 * math.log10(255**2 / mse))
    expected = structural_similarity(a, b, channel_axis=2, data_range=255)
    assert SSIM()(ref, [Image.fromarray(b)])[0] == pytest.approx(expected)
    assert "native" in PSNR().identity()["resize"] and "native" in SSIM().identity()["resize"]
    assert "64x64" in SSIM(size=64).identity()["resize"]
    # sizes that differ: the candidate is resized to the reference's size
    assert len(SSIM()(ref, [Image.fromarray(b).resize((45, 30))])) == 1
