"""Tiny random-init CLIP / DINOv2 for the model-based degradation checks (tests/backends' own)."""

from backends.tiny_models import tiny_dinov2_path, tiny_open_clip_checkpoint  # noqa: F401
