"""The DAR run spec: everything that defines a diffusion-augmented retrieval run, saved with it.

``DARSpec()`` is the offline world: dialogues built from the 32 world scenes, a gallery of those
scenes plus near variants and random distractors, the ``procedural`` T2I model, the
``scene-analyst`` MLLM refining each dialogue into a query, the ``concepts`` text scorer and the
``scene_layout`` image embedding. A real-model spec::

    dialogues: {manifest: chatir_dialogues.jsonl}
    gallery: {name: folder, params: {path: /data/visdial_val_images}}
    t2i: {name: diffusers, params: {model: stabilityai/sdxl-turbo, steps: 1}}
    mllm: {name: openai, params: {model: gpt-4o-mini}}
    text_scorer: {name: clip, params: {model: ViT-B-32, pretrained: openai}}
    embedding: {name: clip_i, params: {model: ViT-B-32, pretrained: openai}}
"""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

from pydantic import Field

from repainter.spec import (
    ComponentSpec,
    DatasetSpec,
    SpecError,
    SpecModel,
    apply_override,
    canonical_json,
    read_spec_file,
)

#: The default gallery: the world's 32 scenes, 3 near variants of each (an object moved,
#: recoloured, reshaped, colours swapped ...) and 200 random scenes: 360 images.
DEFAULT_GALLERY = {"name": "world", "params": {"variants": 3, "distractors": 200}}


class DialoguesSpec(SpecModel):
    """A JSONL manifest of dialogues, or dialogues built from a world dataset's scenes."""

    manifest: str | None = None
    #: Scenes to build dialogues from when there is no manifest.
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    #: Picks the length and wording of built dialogues.
    seed: int = 0
    limit: int | None = Field(default=None, ge=1)


class DARSpec(SpecModel):
    """A DAR run: dialogues, gallery, models, scorers and fusion."""

    name: str = Field(default="dar", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    dialogues: DialoguesSpec = Field(default_factory=DialoguesSpec)
    gallery: DatasetSpec = Field(default_factory=lambda: DatasetSpec(**DEFAULT_GALLERY))
    t2i: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="procedural"))
    #: Refines the dialogue so far into one query each turn; null: caption and answers joined.
    mllm: ComponentSpec | None = Field(default_factory=lambda: ComponentSpec(name="scene-analyst"))
    text_scorer: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="concepts"))
    embedding: ComponentSpec = Field(default_factory=lambda: ComponentSpec(name="scene_layout"))
    #: Weight of the text score in the fusion (1 = text only).
    alpha: float = Field(default=0.5, ge=0.0, le=1.0)
    images_per_turn: int = Field(default=1, ge=1, le=16)
    seed: int = 0
    output_dir: str = "runs/{name}"
    #: Cache MLLM replies and renders in the output folder (content-addressed).
    cache: bool = True

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir.format(name=self.name))

    def fingerprint(self) -> str:
        data = self.model_dump(mode="json", exclude={"output_dir", "cache"})
        return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:16]


def build_dar_spec(data: dict[str, Any] | None = None, overrides: list[str] = ()) -> DARSpec:
    """Validate ``data`` then apply ``key.path=value`` overrides to the full spec."""
    try:
        spec = DARSpec.model_validate(copy.deepcopy(data or {}))
        if overrides:
            full = spec.model_dump(mode="json")
            for assignment in overrides:
                apply_override(full, assignment)
            spec = DARSpec.model_validate(full)
    except ValueError as exc:
        if isinstance(exc, SpecError):
            raise
        raise SpecError(f"invalid DAR spec:\n{exc}") from exc
    return spec


def load_dar_spec(path: str | Path | None = None, overrides: list[str] = ()) -> DARSpec:
    """Load a DAR spec file (YAML or TOML; none = the offline world) and apply overrides."""
    return build_dar_spec(read_spec_file(path) if path is not None else {}, overrides)
