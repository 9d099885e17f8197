"""Named presets: defaults a spec picks with ``preset: NAME``; the spec's own keys win.

* ``paper`` - the reference ImageRepainter method: CLIP ViT-B/32 + DINOv2-base image cosine,
  selection 0.5 / 0.5, 3 rounds x 3 variants, critique of each round's best;
* ``gill`` - GILL's image-generation protocol: CLIP ViT-L/14 image cosine and LPIPS AlexNet,
  both at 256x256;
* ``world`` - the procedural world (the default before the simulation bench): the
  ``procedural`` T2I model, the ``scene-analyst`` MLLM, SSIM + colour histogram selection and
  ``object_f1``. Its describer and its T2I model share one grammar and one detector, so it shows
  how the loop works, not how much it helps (see datasets/sim/README.md).
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {
        "metrics": [
            {"name": "clip_i", "params": {"model": "ViT-B-32", "pretrained": "openai"}},
            {"name": "dinov2", "params": {"model": "facebook/dinov2-base", "pooling": "mean"}},
            {"name": "lpips", "params": {"net": "alex"}},
            {"name": "ssim"},
        ],
        "selection": {"clip_i": 0.5, "dinov2": 0.5},
        "loop": {"rounds": 3, "variants": 3, "revise_from": "round_best"},
    },
    "gill": {
        "metrics": [
            {"name": "clip_i", "params": {"model": "ViT-L-14", "pretrained": "openai", "resize": 256}},
            {"name": "lpips", "params": {"net": "alex", "resize": 256}},
        ],
        "selection": {"clip_i": 1.0},
    },
    "world": {
        "t2i": [{"name": "procedural"}],
        "mllm": {"name": "scene-analyst"},
        "metrics": [{"name": "ssim"}, {"name": "color_histogram"}, {"name": "object_f1"}],
        "selection": {"ssim": 0.5, "color_histogram": 0.5},
    },
}
