"""The run spec: :class:`RunSpec`, everything that defines a run, with its preset filled in,
its checks across sections, its output folder and its fingerprint.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from repainter.presets import (
    BENCH_METRICS,
    PRESETS,
    REAL_MODELS_PRESET,
    auto_preset_reason,
    drawn_scene_gaps,
    metric_traits,
)
from repainter.spec.sections import (
    BudgetSpec,
    ComponentSpec,
    DatasetSpec,
    DecisionSpec,
    LoopSpec,
    RuntimeSpec,
    SpecModel,
    Strategy,
    T2ISpec,
    generated_twins,
    omit_defaults,
    with_baseline_twins,
)

#: Record fields a metric label must not take. leaderboard.json nests each metric's statistics
#: (a label cannot overwrite a built-in column there), but the flat views still derive columns
#: from labels: the leaderboard CSV and tracker metrics, ``results.jsonl``, the data frames of
#: ``RunResult``, and a case's ``final_scores`` (which holds ``selection`` and ``judge_*``).
RESERVED_METRIC_LABELS = frozenset({
    "rank", "model", "cases", "done", "failed", "selection", "selection_round1",
    "selection_final", "steerability", "mean_rounds", "seconds_per_case", "t2i_seconds_per_case",
    "mllm_seconds_per_case", "mllm_tokens_per_case", "mllm_cost_usd", "case_id", "category",
    "status", "error", "rounds", "round", "variant", "prompt", "image", "seed", "scores",
    # loop.baseline's gain decomposition (leaderboard CSV, to_pandas)
    "best_of_n_same_budget", "sampling_gain", "revision_gain", "baseline_model",
})
#: Prefixes and suffixes the leaderboard derives from metric labels (judge scores, decisions,
#: round-1 means and confidence intervals).
RESERVED_METRIC_PREFIXES = ("judge_", "decision_", "selection_")
RESERVED_METRIC_SUFFIXES = ("_round1", "_ci_low", "_ci_high")


def reserved_label_problem(label: str) -> str | None:
    """Why ``label`` cannot name a metric, or None when it can.

    >>> reserved_label_problem("clip_i") is None
    True
    >>> reserved_label_problem("done")
    "'done' is a built-in record / leaderboard field"
    """
    if label in RESERVED_METRIC_LABELS:
        return f"{label!r} is a built-in record / leaderboard field"
    for prefix in RESERVED_METRIC_PREFIXES:
        if label.startswith(prefix):
            return f"{label!r} starts with the reserved prefix {prefix!r}"
    for suffix in RESERVED_METRIC_SUFFIXES:
        if label.endswith(suffix):
            return f"{label!r} ends with the reserved suffix {suffix!r}"
    return None


def preset_values(name: Any) -> dict[str, Any]:
    """The values preset ``name`` fills in; ValueError for an unknown preset."""
    if not isinstance(name, str) or name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; known: {', '.join(sorted(PRESETS))}")
    return copy.deepcopy(PRESETS[name])


def plain_values(value: Any) -> Any:
    """Spec input as plain data: pydantic models become the values their user set."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, dict):
        return {k: plain_values(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_values(v) for v in value]
    return value


def deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    """``top`` over a copy of ``base``, mappings merged key by key (other values replaced)."""
    merged = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


DEFAULT_OUTPUT_DIR = "runs/{dataset}-{models}-{fingerprint}"


def folder_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "_"


class RunSpec(SpecModel):
    """Everything that defines a run. ``RunSpec()`` is the offline simulation bench: the world's
    scenes as references, the simulated T2I model ``sim``, the ``sim-describer`` MLLM and the
    ground-truth metric ``scene_truth`` (see datasets/sim/README.md)."""

    name: str = Field(default="world", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    preset: str | None = None
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    t2i: list[T2ISpec] = Field(
        default_factory=lambda: [T2ISpec(name="sim")], min_length=1
    )
    #: The describer; a list (labels like ``t2i``) makes the run an MLLM x T2I grid
    #: (see :mod:`repainter.mllm_grid`), even a list of one.
    mllm: ComponentSpec | list[ComponentSpec] = Field(
        default_factory=lambda: ComponentSpec(name="sim-describer"))
    #: Default: :data:`BENCH_METRICS` (``scene_truth`` only where a T2I model draws scenes and
    #: the references have true ones); a spec with real models gets its preset's instead.
    metrics: list[ComponentSpec] = Field(
        default_factory=lambda: [ComponentSpec(name=n) for n in BENCH_METRICS], min_length=1)
    #: Metric label (its name unless given a label) -> weight of its similarity in the selection score (weights are normalised).
    #: Default: which objects are there, in which colour, place, size and shape (region_match)
    #: and where how much fine detail is (texture_energy, which sees the texture and outlines
    #: region_match does not grade); VALIDITY.md measures it and datasets/sim/README.md says how
    #: it was chosen.
    selection: dict[str, float] = Field(
        default_factory=lambda: {"region_match": 1.0, "texture_energy": 1.0}
    )
    loop: LoopSpec = Field(default_factory=LoopSpec)
    judge: bool = True
    #: strict: YAML's ``true`` is a bool, not the seed 1
    seed: int = Field(default=0, strict=True)
    #: Run the whole spec once per seed (sub-run folders seed-<s>/) and aggregate over seeds;
    #: None: one run with ``seed``. See repainter.seed_runs.
    seeds: list[Annotated[int, Field(strict=True)]] | None = Field(default=None, min_length=1)
    #: Placeholders: {name}, {dataset}, {models} (T2I labels joined by +), {fingerprint} (8 hex
    #: digits of the spec's hash): by default every spec gets its own folder; the same spec
    #: resumes its folder.
    output_dir: str = DEFAULT_OUTPUT_DIR
    decision: DecisionSpec | None = None
    #: Multiple-comparison correction of the leaderboard's paired tests with more than two
    #: models: holm (family-wise error), bh (Benjamini-Hochberg, false discovery rate) or none.
    correction: Literal["holm", "bh", "none"] = "holm"
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)
    budget: BudgetSpec | None = None
    #: The values given at construction, before the preset filled in the rest.
    _own_values: dict[str, Any] | None = PrivateAttr(default=None)
    #: Why the preset was applied without being named (None: named, or none applied).
    _auto_preset: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _apply_preset(cls, data: Any, handler: Any) -> RunSpec:
        """A named preset fills in what the given values leave out, however the spec is built
        (file, ``build_spec``, ``RunSpec(preset=...)``); an unknown preset is an error. A spec
        that names a real model and no ``preset`` key, ``metrics`` or ``selection`` gets
        :data:`REAL_MODELS_PRESET` (the bench's defaults were chosen on the bench's scenes)."""
        if not isinstance(data, dict):  # an instance (assignment, re-validation): as it is
            return handler(data)
        own = plain_values(data)
        merged, preset = own, own.get("preset")
        auto = None if "preset" in own else auto_preset_reason(own)
        if auto is not None:
            preset = REAL_MODELS_PRESET
        if preset is None and "metrics" not in own and drawn_scene_gaps(own):
            # the bench's truth metric would be empty here: the default leaves it out
            merged = {**own, "metrics": [{"name": n} for n in BENCH_METRICS
                                         if "needs_drawn_scene" not in metric_traits(n)]}
        if preset is not None:
            merged = deep_merge(preset_values(preset), own)
            merged["preset"] = preset
            if "selection" in own:  # weights are one choice: the spec's replace the preset's
                merged["selection"] = copy.deepcopy(own["selection"])
        spec = handler(merged)
        spec._own_values = own
        spec._auto_preset = auto
        return spec

    def settings_origin(self) -> dict[str, Any]:
        """Where the metrics, selection and loop settings came from, for run.json, the report
        and ``--dry-run``: ``{"preset": name or None, "why": sentence}``.

            >>> RunSpec().settings_origin()["preset"] is None
            True
            >>> RunSpec(t2i=["diffusers"]).settings_origin()["why"][:40]
            'applied automatically: the spec names a '
        """
        if self._auto_preset is not None:
            return {"preset": self.preset, "why": f"applied automatically: {self._auto_preset}"}
        if self.preset is not None:
            return {"preset": self.preset, "why": "named in the spec"}
        own = self.own_values()
        if "metrics" in own or "selection" in own:
            return {"preset": None, "why": "the spec's own metrics and selection"}
        return {"preset": None, "why": "the simulation bench's defaults: every model named is "
                                       "a bench component"}

    def __eq__(self, other: object) -> bool:  # the values, not how they were given
        if not isinstance(other, RunSpec):
            return NotImplemented
        return self.model_dump() == other.model_dump()

    __hash__ = None  # mutable, like every pydantic model

    def own_values(self) -> dict[str, Any]:
        """The values given when this spec was built, without what its preset filled in."""
        if self._own_values is not None:
            return copy.deepcopy(self._own_values)
        return self.model_dump(mode="json", exclude_unset=True)

    @field_validator("output_dir")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        import string

        used = {field for _, field, _, _ in string.Formatter().parse(value) if field is not None}
        unknown = used - {"name", "dataset", "models", "fingerprint"}
        if unknown:
            raise ValueError(f"output_dir {value!r}: unknown placeholder(s) {sorted(unknown)}; "
                             "use {name}, {dataset}, {models}, {fingerprint}")
        return value

    @field_validator("t2i", mode="before")
    @classmethod
    def _t2i_entries(cls, value: Any) -> Any:
        # a plain ComponentSpec (from older code) becomes a T2I entry
        if isinstance(value, list):
            return [v.model_dump() if type(v) is ComponentSpec else v for v in value]
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError(f"seeds must be distinct; got {value}")
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data = omit_defaults(handler(self), {"seeds": None, "correction": "holm", "budget": None})
        if self.loop.baseline is not None and isinstance(data.get("t2i"), list):
            # loop.baseline makes the twins: spec.yaml and the fingerprint hold what was written
            twins = generated_twins(data["t2i"])
            data["t2i"] = [e for e in data["t2i"]
                           if (e.get("label") or e.get("name")) not in twins]
        return data

    @model_validator(mode="after")
    def _baseline_twins(self) -> RunSpec:
        """``loop.baseline``: each revising entry's twin joins the T2I list (in place: an
        assignment would validate the spec again)."""
        if self.loop.baseline is not None:
            retriever = frozenset({self.decision.retriever} if self.decision else ())
            self.t2i[:] = with_baseline_twins(self.t2i, self.loop, retriever)
        return self

    def written_t2i(self) -> list[T2ISpec]:
        """The T2I entries as written: without the twins ``loop.baseline`` made (an override of
        ``t2i.<i>`` indexes these; each twin is made again from its overridden entry)."""
        if self.loop.baseline is None:
            return list(self.t2i)
        twins = generated_twins([t.model_dump(mode="json") for t in self.t2i])
        return [t for t in self.t2i if t.display_name not in twins]

    def strategy_of(self, label: str) -> Strategy:
        """The loop strategy of the T2I entry labelled ``label``."""
        entry = next((t for t in self.t2i if t.display_name == label), None)
        return (entry.strategy if entry is not None and entry.strategy else None) or self.loop.strategy

    @field_validator("selection")
    @classmethod
    def _weights_positive(cls, value: dict[str, float]) -> dict[str, float]:
        if not value:
            raise ValueError("selection needs at least one metric weight")
        for metric, weight in value.items():
            if not (weight >= 0.0 and weight != float("inf")):
                raise ValueError(f"selection weight of {metric!r} must be a finite number >= 0")
        if sum(value.values()) <= 0:
            raise ValueError("selection weights must not all be zero")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RunSpec:
        metric_names = [m.display_name for m in self.metrics]
        reserved = [p for p in map(reserved_label_problem, metric_names) if p]
        if reserved:
            raise ValueError("metric labels must not be reserved names: " + "; ".join(reserved)
                             + " (give the metric another `label`)")
        repeated = sorted({n for n in metric_names if metric_names.count(n) > 1})
        if repeated:
            raise ValueError(f"metrics need distinct labels; repeated: {repeated}")
        missing = sorted(set(self.selection) - set(metric_names))
        if missing:
            raise ValueError(f"selection uses metrics not listed in 'metrics': {missing} (set "
                             "`selection` to weights of listed metrics, e.g. {clip_i: 0.5, "
                             "dinov2: 0.5}, or name a preset such as `preset: paper`)")
        labels = [t.display_name for t in self.t2i]
        if self.decision is not None:
            if self.decision.retriever not in labels:
                raise ValueError(f"decision.retriever {self.decision.retriever!r} is not a T2I label")
            if self.decision.metric != "selection" and self.decision.metric not in metric_names:
                raise ValueError(f"decision.metric {self.decision.metric!r} is not a listed metric")
        duplicates = sorted({label for label in labels if labels.count(label) > 1})
        if duplicates:
            raise ValueError(f"T2I models need distinct labels; repeated: {duplicates}")
        if isinstance(self.mllm, list):
            names = [m.display_name for m in self.mllm]
            if not names:
                raise ValueError("mllm needs at least one describer")
            repeated = sorted({n for n in names if names.count(n) > 1})
            if repeated:
                raise ValueError(f"MLLMs need distinct labels; repeated: {repeated}")
        if (self.budget is not None and self.budget.metric != "selection"
                and self.budget.metric not in metric_names):
            raise ValueError(f"budget.metric {self.budget.metric!r} is not a listed metric")
        return self

    # -- derived -------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        """``output_dir`` with its placeholders filled.

            >>> str(RunSpec().run_dir).startswith("runs/world-sim-")
            True
        """
        labels = [folder_part(t.display_name) for t in self.t2i]
        models = "+".join(labels) if len(labels) <= 3 else f"{'+'.join(labels[:2])}+{len(labels) - 2}more"
        return Path(self.output_dir.format(
            name=self.name, dataset=folder_part(self.dataset.name), models=models[:80],
            fingerprint=self.fingerprint()[:8]))

    @property
    def is_grid(self) -> bool:
        """True where ``mllm`` is a list: the run is an MLLM x T2I grid."""
        return isinstance(self.mllm, list)

    @property
    def mllms(self) -> list[ComponentSpec]:
        """The describers, a list either way."""
        return list(self.mllm) if isinstance(self.mllm, list) else [self.mllm]

    def fingerprint(self, *, without_models: bool = False) -> str:
        """Hash of everything that determines results (output folder, runtime and budget
        excluded: a budget decides how many references run, not what they compute).

        ``without_models`` leaves out the T2I list (and an MLLM list) too: two specs that agree
        on it differ only in which models they compare.
        """
        exclude = {"output_dir", "runtime", "budget"}
        if without_models:
            exclude |= {"t2i"} | ({"mllm"} if self.is_grid else set())
        data = self.model_dump(mode="json", exclude=exclude)
        return hashlib.sha256(canonical_json(data).encode()).hexdigest()[:16]

    def extends(self, previous: RunSpec) -> bool:
        """True where this spec is ``previous`` with T2I models (or, in a grid, MLLMs) added."""
        if self.fingerprint(without_models=True) != previous.fingerprint(without_models=True):
            return False
        if self.is_grid != previous.is_grid:
            return False
        mine = [t.model_dump(mode="json") for t in [*self.t2i, *self.mllms]]
        return all(t.model_dump(mode="json") in mine for t in [*previous.t2i, *previous.mllms])

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(mode="json"), sort_keys=False)


def canonical_json(data: Any) -> str:
    """Stable JSON text (sorted keys, no whitespace): used for hashes and cache keys."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

