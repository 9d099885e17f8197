"""Named presets: defaults a spec picks with ``preset: NAME``; the spec's own keys win. And the
defaults that follow the models a spec names: a spec with a real model (not a simulation-bench
component, registry trait ``bench``) and no ``metrics`` / ``selection`` gets
:data:`REAL_MODELS_PRESET`; the bench's metric list leaves out what would score nothing.

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
        "loop": {"rounds": 3, "variants": 3, "revise_from": "round_best", "strategy": "refine"},
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


#: The preset a spec that names real models gets when it chooses no metrics or selection: the
#: reference method's CLIP-I + DINOv2 selection, with LPIPS, SSIM and the judge as final scores.
REAL_MODELS_PRESET = "paper"


def _component_names(value: Any, default: str) -> list[str]:
    """The ``name`` of each component in a spec value (a name, a mapping or a list of either)."""
    if value is None:
        return [default]
    entries = value if isinstance(value, list) else [value]
    names = []
    for entry in entries:
        name = entry.get("name") if isinstance(entry, dict) else getattr(entry, "name", entry)
        if isinstance(name, str):
            names.append(name)
    return names


def real_components(data: dict[str, Any]) -> list[str]:
    """The T2I models and MLLMs in spec values ``data`` that are not simulation-bench components
    (registry trait ``bench``), as ``role name``; an unknown name counts as real.

        >>> real_components({}), real_components({"t2i": ["diffusers"], "mllm": "sim-describer"})
        ([], ['t2i diffusers'])
    """
    from repainter.registry import MLLM, T2I

    found = []
    for role, registry, default in (("t2i", T2I, "sim"), ("mllm", MLLM, "sim-describer")):
        for name in _component_names(data.get(role), default):
            if "bench" not in registry.traits(name):
                found.append(f"{role} {name}")
    return found


#: The simulation bench's default metrics (the selection is region_match + texture_energy).
BENCH_METRICS = ("region_match", "texture_energy", "lab_layout", "ssim", "color_histogram",
                 "scene_truth")


def metric_traits(name: str) -> frozenset[str]:
    from repainter.registry import METRICS

    return METRICS.traits(name)


def drawn_scene_gaps(data: dict[str, Any]) -> list[str]:
    """Why a metric that grades drawn scenes (trait ``needs_drawn_scene``) would score nothing
    for spec values ``data``: no T2I model reports a drawn scene, or the dataset has no true
    scenes (empty: it would score).

        >>> drawn_scene_gaps({}), drawn_scene_gaps({"dataset": "folder"})
        ([], ["dataset 'folder' has no true scenes"])
    """
    from repainter.registry import DATASETS, T2I

    gaps = []
    names = _component_names(data.get("t2i"), "sim")
    # one model that draws is enough: the others are left unscored, as in a sim-vs-real compare
    if not any("draws_scene" in T2I.traits(n) for n in names):
        gaps.append(f"no T2I model ({', '.join(names)}) reports a drawn scene")
    dataset = _component_names(data.get("dataset"), "world")
    if dataset and "truth_scenes" not in DATASETS.traits(dataset[0]):
        gaps.append(f"dataset {dataset[0]!r} has no true scenes")
    return gaps


def auto_preset_reason(own: dict[str, Any]) -> str | None:
    """Why a spec given as ``own`` (no ``preset`` key) gets :data:`REAL_MODELS_PRESET`, or None:
    it names a real model and leaves both ``metrics`` and ``selection`` out."""
    if "metrics" in own or "selection" in own:
        return None
    real = real_components(own)
    if not real:
        return None
    return (f"the spec names a real model ({', '.join(real)}) and no metrics or selection, so "
            f"the reference method's settings (preset {REAL_MODELS_PRESET}) apply, not the "
            "simulation bench's (set `metrics`/`selection` or `preset` to choose)")
