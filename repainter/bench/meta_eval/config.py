"""What ``repainter meta-eval`` runs: sizes, ladders, metrics, degradations (one pydantic spec)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from repainter.bench.meta_eval.check_seeds import resolve_auto_seeds
from repainter.bench.meta_eval.degradations import BUNDLED_IMAGES, DEGRADATIONS, STRENGTHS
from repainter.bench.meta_eval.ladders import Ladder
from repainter.errors import UserError
from repainter.spec import ComponentSpec, DatasetSpec, T2ISpec

Part = Literal["ladders", "degradations", "baselines", "second_renderer"]

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
    parts: list[Part] = Field(
        default_factory=lambda: ["ladders", "degradations", "baselines", "second_renderer"])
    #: Ladder name -> {name, description, nested, models: [best ... worst]}; None = default.
    ladders: dict[str, dict[str, Any]] | None = None
    #: References per ladder run; on the default world an equal share per category.
    scenes: int = Field(default=32, ge=2)
    #: ``auto`` (``--seeds auto``): three seeds drawn from a hash of the git commit (or of
    #: ``seed_rule``), none used before (see ``repainter.bench.meta_eval.check_seeds``).
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1)
    #: The string ``seeds: auto`` hashes instead of the git commit (outside git, or to re-draw).
    seed_rule: str | None = None
    #: Where ``seeds: auto`` drew the seeds from (set by the rule; None: seeds given by hand).
    seeds_drawn_from: str | None = None
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
    #: Side in pixels; the cap keeps a typo (128000) from allocating gigabytes per image.
    degradation_size: int = Field(default=128, ge=16, le=2048)
    degradation_kinds: list[str] = Field(default_factory=lambda: list(DEGRADATIONS), min_length=1)
    #: Each in (0, 1] (see degradations.py); tau needs at least two.
    degradation_strengths: list[Annotated[float, Field(gt=0, le=1)]] = Field(
        default_factory=lambda: list(STRENGTHS), min_length=2)
    bootstrap_resamples: int = Field(default=1000, ge=100)
    #: The world renderer of the ladders' and baselines' sim models and world references:
    #: ``painterly`` is the second renderer, nothing was tuned on it (``with_renderer``).
    renderer: Literal["flat", "painterly"] = "flat"
    #: The renderer of part ``second_renderer``: the ladders again, drawn another way (see
    #: ``repainter.bench.meta_eval.renderers``); None = the one ``renderer`` is not.
    second_renderer: Literal["flat", "painterly"] | None = None
    #: ADAPTIVE_LOOP.json of ``bench/loop_vs_best_of_n.py``: its tables go into VALIDITY.md.
    loop_check: str | None = None
    #: The command line that ran this (written into VALIDITY.md).
    command: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _auto_seeds(cls, data: Any) -> Any:
        return resolve_auto_seeds(data) if isinstance(data, dict) else data

    @field_validator("ladders")
    @classmethod
    def _ladders_well_formed(cls, value: dict[str, dict[str, Any]] | None):
        for name, data in (value or {}).items():
            ladder = Ladder.from_data(name, data)  # its ValueError names what is wrong
            for model in ladder.models:
                T2ISpec.model_validate(model)
        return value

    @model_validator(mode="after")
    def _second_renderer_differs(self) -> MetaEvalConfig:
        if self.second_renderer is None:
            self.second_renderer = "painterly" if self.renderer == "flat" else "flat"
        if "second_renderer" in self.parts and self.second_renderer == self.renderer:
            raise ValueError(f"second_renderer {self.second_renderer!r} is the renderer the "
                             "ladders already use; choose the other one")
        return self

    @field_validator("loop_check")
    @classmethod
    def _loop_check_readable(cls, value: str | None) -> str | None:
        if value is not None and not Path(value).is_file():
            raise ValueError(f"loop_check {value}: no such file (bench/loop_vs_best_of_n.py "
                             "writes it next to ADAPTIVE_LOOP.md)")
        return value

    @field_validator("degradation_kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        unknown = [k for k in value if k not in DEGRADATIONS]
        if unknown:
            raise ValueError(f"unknown degradation kind(s) {unknown}; known: "
                             f"{', '.join(DEGRADATIONS)}")
        return value

    @field_validator("degradation_images")
    @classmethod
    def _bundled_images(cls, value: list[str]) -> list[str]:
        unknown = [n for n in value if n not in BUNDLED_IMAGES]
        if unknown:
            raise ValueError(f"{unknown} are not images bundled with scikit-image; choose from "
                             f"{', '.join(BUNDLED_IMAGES)} (or set degradation_dataset)")
        return value


def check_validity_path(config: MetaEvalConfig) -> None:
    """Refuse a ``validity_path`` that cannot be written, before anything runs: an existing
    folder, or a file in a folder that does not exist (only the output folder, which the run
    creates, may be missing; a typo elsewhere would otherwise make folders, even at /)."""
    if config.validity_path is None:
        return
    path = Path(config.validity_path)
    if path.is_dir():
        raise UserError(f"--validity {path} is a folder; name the VALIDITY.md file to write")
    parent = path.parent.resolve()
    output = Path(config.output_dir).resolve()
    if parent == output or output in parent.parents:
        return
    if not parent.is_dir():
        raise UserError(f"--validity {path}: the folder {path.parent} does not exist (or is a "
                        "file); create it first or choose another path")
    try:  # a probe, so a folder that takes no files fails now, not after the whole run
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UserError(f"--validity {path}: cannot write into {path.parent} ({reason}); "
                        "choose another path") from exc


def with_renderer(renderer: str, data: dict[str, Any]) -> dict[str, Any]:
    """A meta-eval run spec (``data``) whose sim models and world references draw with
    ``renderer``; a model or dataset that cannot is refused, not silently left flat."""
    if renderer == "flat":
        return data
    t2i = []
    for entry in data["t2i"]:
        if entry.get("name") != "sim":
            raise UserError(f"renderer {renderer}: t2i {entry.get('name')!r} is not the sim "
                            "model; only sim draws with the world's renderers")
        t2i.append({**entry, "params": {**(entry.get("params") or {}), "renderer": renderer}})
    dataset = data["dataset"]
    if dataset.get("name") != "world":
        raise UserError(f"renderer {renderer}: dataset {dataset.get('name')!r} is not the world")
    dataset = {**dataset, "params": {**(dataset.get("params") or {}), "renderer": renderer}}
    return {**data, "t2i": t2i, "dataset": dataset}
