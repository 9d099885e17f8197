"""Metrics, one module each. Light ones are imported here; model-backed ones register lazily."""

from repainter.backends.metrics import color_histogram, ssim  # noqa: F401
from repainter.registry import METRICS

# Model-backed metrics import torch only when used (issue 3).
METRICS.register_lazy("clip_i", "repainter.backends.metrics.clip_i:ClipImageSimilarity")
METRICS.register_lazy("dinov2", "repainter.backends.metrics.dinov2:DinoV2Similarity")
METRICS.register_lazy("lpips", "repainter.backends.metrics.lpips:LPIPSDistance")
# object_f1 uses the built-in world's detector: loaded only when asked for, so that importing any
# other metric (e.g. the default selection's) never loads a detector (tests/sim/test_independence.py).
METRICS.register_lazy("object_f1", "repainter.backends.metrics.object_f1:ObjectF1",
                       traits={"bench"})
METRICS.register_lazy("psnr", "repainter.backends.metrics.psnr:PSNR")
METRICS.register_lazy("identification", "repainter.backends.metrics.identification:IdentificationMetric")
METRICS.register_lazy("self_feedback", "repainter.backends.metrics.self_feedback:SelfFeedbackMetric")
