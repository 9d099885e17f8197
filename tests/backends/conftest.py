"""Session fixtures: tiny random-initialised models of the real architectures, saved to disk."""

from .tiny_models import tiny_dinov2_path, tiny_open_clip_checkpoint, tiny_sd_path  # noqa: F401
