"""Session fixtures: tiny random-initialised models of the real architectures, saved to disk."""

from .tiny_models import (  # noqa: F401
    tiny_dinov2_path,
    tiny_flux_path,
    tiny_open_clip_checkpoint,
    tiny_sd_lora_path,
    tiny_sd_path,
    tiny_sd_single_file,
    tiny_tokenizer,
)
