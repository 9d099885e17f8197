"""The degradation check runs unchanged with model-based metrics: tiny random-init CLIP, DINOv2
and LPIPS (meaningless weights: this checks the code path, not the models' quality)."""

import math

import pytest

pytest.importorskip("torch")

from backends.tiny_models import TINY_OPEN_CLIP, TINY_OPEN_CLIP_NAME  # noqa: E402

from repainter.bench.meta_eval import meta_eval  # noqa: E402
from repainter.spec import ComponentSpec  # noqa: E402

pytestmark = pytest.mark.models


def test_degradations_with_tiny_clip_dinov2_lpips(tiny_open_clip_checkpoint, tiny_dinov2_path, tmp_path):
    metrics = [
        ComponentSpec(name="clip_i", params={
            "model": TINY_OPEN_CLIP_NAME, "pretrained": None, "device": "cpu",
            "checkpoint": str(tiny_open_clip_checkpoint), "model_config": TINY_OPEN_CLIP}),
        ComponentSpec(name="dinov2", params={"model": str(tiny_dinov2_path), "device": "cpu"}),
        ComponentSpec(name="lpips", params={"net": "alex", "resize": 64, "device": "cpu",
                                            "random_backbone_for_tests": True}),
    ]
    data = meta_eval(parts=["degradations"], degradation_metrics=metrics,
                     degradation_images=["chelsea"], degradation_size=32,
                     degradation_kinds=["blur", "noise", "patch_shuffle"],
                     output_dir=str(tmp_path))
    results = data["degradations"]["metrics"]
    assert set(results) == {"clip_i", "dinov2", "lpips"}
    for result in results.values():
        for entry in result["kinds"].values():
            assert -1.0 <= entry["tau"] <= 1.0 and len(entry["similarity"]) == 5
            assert all(math.isfinite(v) for v in entry["similarity"])
    assert "| lpips |" in (tmp_path / "VALIDITY.md").read_text()
