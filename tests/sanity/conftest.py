"""Tiny random-init diffusers / open_clip / DINOv2 models for the end-to-end check (tests/backends' own)."""

from backends.tiny_models import (  # noqa: F401
    tiny_dinov2_path,
    tiny_open_clip_checkpoint,
    tiny_sd_path,
)
