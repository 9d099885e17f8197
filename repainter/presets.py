"""Named presets: defaults a spec picks with ``preset: NAME``; the spec's own keys win.

* ``paper`` - the reference ImageRepainter method: CLIP ViT-B/32 + DINOv2-base image cosine,
  selection 0.5 / 0.5, 3 rounds x 3 variants, critique of each round's best;
* ``gill`` - GILL's image-generation protocol, following its evaluation scripts in
  https://github.com/kohjingyu/gill: CLIP ViT-L/14 image cosine with CLIP's own preprocessing only
  (``evals/compute_clip_similarity_vist.py``: Hugging Face ``CLIPProcessor``, no other resize) and
  LPIPS AlexNet v0.1 on float [-1, 1] tensors resized to 256x256 with torchvision bilinear +
  antialias (``evals/lpips_2dirs.py``);
* ``world`` - the procedural world (the default before the simulation bench): the
  ``procedural`` T2I model, the ``scene-analyst`` MLLM, SSIM + colour histogram selection and
  ``object_f1``. Its describer and its T2I model share one grammar and one detector, so it shows
  how the loop works, not how much it helps (see datasets/sim/README.md).
"""

from __future__ import annotations

from typing import Any

#: One line per preset, shown by ``repainter ls``.
DESCRIPTIONS: dict[str, str] = {
    "paper": "ImageRepainter reference method: CLIP-B/32 + DINOv2-base selection, 3 x 3 rounds",
    "gill": "GILL evaluation (kohjingyu/gill evals/compute_clip_similarity_vist.py, "
            "evals/lpips_2dirs.py): CLIP-L/14 image cosine, LPIPS AlexNet at 256",
    "world": "the procedural world: procedural T2I, scene-analyst MLLM, SSIM + colour histogram",
}

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
            {"name": "clip_i", "params": {"model": "ViT-L-14", "pretrained": "openai",
                                          "preprocess": "gill"}},
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
