"""Metrics, one module each. Light ones are imported here; model-backed ones register lazily.

The bench's weight-free scene metrics (``scene_truth``, ``object_f1``, ``lab_layout``,
``texture_energy``, ``region_match``) register from :mod:`repainter.bench` through the
``repainter.plugins`` entry point.
"""

from repainter.backends.metrics import color_histogram, ssim  # noqa: F401
from repainter.registry import METRICS

# Model-backed metrics import torch only when used (issue 3).
METRICS.register_lazy("clip_i", "repainter.backends.metrics.clip_i:ClipImageSimilarity")
METRICS.register_lazy("dinov2", "repainter.backends.metrics.dinov2:DinoV2Similarity")
METRICS.register_lazy("lpips", "repainter.backends.metrics.lpips:LPIPSDistance")
METRICS.register_lazy("psnr", "repainter.backends.metrics.psnr:PSNR")
METRICS.register_lazy("identification", "repainter.backends.metrics.identification:IdentificationMetric")
METRICS.register_lazy("self_feedback", "repainter.backends.metrics.self_feedback:SelfFeedbackMetric")
