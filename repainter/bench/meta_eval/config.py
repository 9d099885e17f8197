"""What ``repainter meta-eval`` runs: sizes, ladders, metrics, degradations (one pydantic spec)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from repainter.bench.meta_eval.degradations import DEGRADATIONS, STRENGTHS
from repainter.spec import ComponentSpec, DatasetSpec

Part = Literal["ladders", "degradations", "baselines"]

#: Weight-free metrics every degradation check includes (no weights to download).
WEIGHT_FREE = ("ssim", "psnr", "color_histogram")


#: Sizes of ``repainter meta-eval --quick``: a smoke check, too small to judge the acceptance.
QUICK = {"scenes": 8, "rounds": 2, "variants": 2}


class MetaEvalConfig(BaseModel):
    """Sizes and choices of a meta-evaluation. The defaults are the size the acceptance is
    judged at: all 32 scenes of the world (8 per category: the set the bench's true quality is
    defined on), seeds 0-2 and the run spec's 3 x 3 loop (about 12 minutes on 2 shared CPU
    cores, BENCHMARKS.md); ``QUICK`` sizes are a smoke check.

    ``None`` fields take the bench's defaults (the simulation bench where ``repainter.bench.sim`` is
    installed, else the built-in world); see ``repainter.bench.meta_eval.run.resolve``.
    """

    model_config = ConfigDict(extra="forbid")

    output_dir: str = "runs/meta-eval"
    #: Where VALIDITY.md goes (validity.json next to it); default: inside ``output_dir``.
    validity_path: str | None = None
    #: A run folder to add validity.json to; its HTML report is rebuilt with the validity section.
    run_dir: str | None = None
    parts: list[Part] = Field(default_factory=lambda: ["ladders", "degradations", "baselines"])
    #: Ladder name -> {name, description, nested, models: [best ... worst]}; None = default.
    ladders: dict[str, dict[str, Any]] | None = None
    #: References per ladder run; on the default world an equal share per category.
    scenes: int = Field(default=32, ge=2)
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    rounds: int = Field(default=3, ge=1)
    variants: int = Field(default=3, ge=1)
    dataset: DatasetSpec | None = None
    mllm: ComponentSpec | None = None
    metrics: list[ComponentSpec] | None = None
    selection: dict[str, float] | None = None
    #: Label of the ground-truth metric (the true fidelity), None = the bench's.
    truth: str | None = None
    #: The T2I model the loop and its baselines run on; None = the first ladder's best model.
    baseline_model: ComponentSpec | None = None
    judge: bool = False
    degradation_metrics: list[ComponentSpec] | None = None
    degradation_images: list[str] = Field(
        default_factory=lambda: ["astronaut", "chelsea", "coffee", "rocket", "cat"])
    #: References for the degradation check from a dataset instead of the skimage photos.
    degradation_dataset: DatasetSpec | None = None
    degradation_size: int = Field(default=128, ge=16)
    degradation_kinds: list[str] = Field(default_factory=lambda: list(DEGRADATIONS))
    degradation_strengths: list[float] = Field(default_factory=lambda: list(STRENGTHS))
    bootstrap_resamples: int = Field(default=1000, ge=100)
    #: The command line that ran this (written into VALIDITY.md).
    command: str | None = None
