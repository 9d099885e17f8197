"""The run spec: one validated, serialisable description of a run.

A spec names the dataset, the T2I model(s), the MLLM, the metrics and the selection weights, the
loop's rounds / variants / early-stop rule, the seed and the output folder. It is loaded from YAML
or TOML, overridden by ``--set key.path=value`` flags, saved as ``spec.yaml`` in every run folder,
and a run is reproduced by running that file again.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
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

#: Record fields a metric label must not take. leaderboard.json nests each metric's statistics
#: (a label cannot overwrite a built-in column there), but the flat views still derive columns
#: from labels: the leaderboard CSV and tracker metrics, ``results.jsonl``, the data frames of
#: ``RunResult``, and a case's ``final_scores`` (which holds ``selection`` and ``judge_*``).
RESERVED_METRIC_LABELS = frozenset({
    "rank", "model", "cases", "done", "failed", "selection", "selection_round1",
    "selection_final", "steerability", "mean_rounds", "seconds_per_case", "t2i_seconds_per_case",
    "mllm_seconds_per_case", "mllm_tokens_per_case", "mllm_cost_usd", "case_id", "category",
    "status", "error", "rounds", "round", "variant", "prompt", "image", "seed", "scores",
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


def _plain(value: Any) -> Any:
    """Spec input as plain data: pydantic models become the values their user set."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


class SpecModel(BaseModel):
    """Base of every spec section (here and in :mod:`repainter.dar.spec`): unknown keys are
    errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)




class ComponentSpec(SpecModel):
    """A registered component by name, with the parameters its constructor takes."""

    name: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    #: Display name in records and leaderboards; defaults to ``name``.
    label: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @property
    def display_name(self) -> str:
        return self.label or self.name


#: How a case spends its render budget. ``refine``: the MLLM writes variants, critiques the best
#: render and revises its prompt every round (the method). ``best_of_n``: the initial prompt only,
#: rendered rounds x variants times with distinct seeds; no critique, no revision (the baseline at
#: equal render budget). ``one_shot``: the initial description's prompt rendered once.
Strategy = Literal["refine", "best_of_n", "one_shot"]
DEFAULT_STRATEGY: Strategy = "refine"


def _omit_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Leave keys at their default out of a dump, so specs written before a key existed keep
    their spec.yaml and fingerprint byte for byte (the default is what they ran)."""
    return {k: v for k, v in data.items() if not (k in defaults and v == defaults[k])}


class T2ISpec(ComponentSpec):
    """A T2I model entry; ``strategy`` overrides ``loop.strategy`` for this entry only, so one
    comparison can hold the same model twice (e.g. labelled ``refine`` and ``best-of-n``)."""

    strategy: Strategy | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_defaults(handler(self), {"strategy": None})


class DatasetSpec(SpecModel):
    name: str = "world"
    params: dict[str, Any] = Field(default_factory=dict)
    categories: list[str] | None = None
    limit: int | None = Field(default=None, ge=1)

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class EarlyStopSpec(SpecModel):
    """Stop a case before the round limit once its best-ever score has plateaued.

    The loop stops after ``patience`` consecutive rounds that raise the best-ever selection score
    by less than ``min_delta``, or once the score reaches ``target``. ``patience: 0`` disables
    the plateau rule.
    """

    patience: int = Field(default=0, ge=0)
    min_delta: float = Field(default=1e-3, ge=0.0)
    target: float | None = None


class LoopSpec(SpecModel):
    rounds: int = Field(default=3, ge=1, le=100)
    variants: int = Field(default=3, ge=1, le=64)
    #: Which candidate the MLLM critiques and revises: this round's best (the reference method)
    #: or the best seen so far (hill climbing; never revises from a worse prompt).
    revise_from: Literal["best_ever", "round_best"] = "best_ever"
    early_stop: EarlyStopSpec = Field(default_factory=EarlyStopSpec)
    #: How each case spends its rounds x variants renders (see ``Strategy``); a T2I entry's own
    #: ``strategy`` wins over this one.
    strategy: Strategy = DEFAULT_STRATEGY

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return _omit_defaults(handler(self), {"strategy": DEFAULT_STRATEGY})


class DecisionSpec(SpecModel):
    """Retrieve-or-generate (TIGeR's decision, GILL's decision module), per case and model.

    After the loop, the T2I model labelled ``retriever`` (a ``retrieval`` backend) answers the best
    prompt too, and the rule picks the generated or the retrieved image as the case's answer:
    ``metric`` compares the named metric's similarity to the reference (``selection`` = the
    selection score), ``mllm`` the judge's aesthetic + semantic scores. The retrieved image wins
    only by more than ``margin``.
    """

    retriever: str
    rule: Literal["metric", "mllm"] = "metric"
    metric: str = "selection"
    margin: float = 0.0


class RaySpec(SpecModel):
    """The Ray executor's pool: one actor per worker, each with its own pipelines."""

    #: Cluster to join ("auto", "ray://host:10001", ...); None: ``RAY_ADDRESS``, else a local
    #: Ray started for this run (or the one this process already initialised).
    address: str | None = None
    num_workers: int = Field(default=2, ge=1, le=1024)
    #: GPUs reserved per actor (fractional allowed: 0.5 puts two actors on one GPU).
    num_gpus_per_worker: float = Field(default=0.0, ge=0.0)
    num_cpus_per_worker: float = Field(default=1.0, ge=0.0)
    #: References in flight per worker (threads in the actor): their MLLM calls overlap, their
    #: renders queue for the worker's model. num_workers x cases_per_worker cases run at once.
    cases_per_worker: int = Field(default=1, ge=1, le=64)
    #: Times a case whose actor died is tried again elsewhere before it is recorded failed.
    max_retries: int = Field(default=2, ge=0, le=100)


class FailFastSpec(SpecModel):
    """When a run stops early: ``after`` cases failed first, all with one permanent error."""

    enabled: bool = True
    after: int = Field(default=3, ge=1, le=10_000)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        # ``fail_fast: false`` / ``fail_fast: 5``
        if isinstance(value, bool):
            return {"enabled": value}
        if isinstance(value, int):
            return {"after": value}
        return value


class RuntimeSpec(SpecModel):
    """How a run executes. None of it changes results, so it is left out of the fingerprint."""

    #: Cases (references) in flight at once; MLLM calls of different cases overlap.
    concurrency: int = Field(default=1, ge=1, le=256)
    #: Batches one T2I model renders at once (1 keeps a GPU busy without oversubscribing it).
    t2i_concurrency: int = Field(default=1, ge=1, le=64)
    #: Cache MLLM replies, renders and metric scores (content-addressed; see repainter.cache).
    cache: bool = True
    #: A cache folder shared between runs; default: the run folder's own cache.sqlite.
    cache_dir: str | None = None
    #: Where cases run: ``local`` (this process) or ``ray`` (a pool of Ray actors; see ``ray``).
    executor: Literal["local", "ray"] = "local"
    #: ``model_major``: load one T2I model, run all of its pending cases, release it, then the
    #: next (one model resident at a time); ``case_major``: all models of a reference, then the
    #: next reference (every model resident). Records are identical either way.
    schedule: Literal["model_major", "case_major"] = "model_major"
    ray: RaySpec = Field(default_factory=lambda: RaySpec())
    #: Experiment trackers the finished run is sent to: mlflow, wandb, tensorboard (see
    #: repainter.trackers); e.g. [mlflow, {name: wandb, params: {mode: offline}}].
    trackers: list[ComponentSpec] = Field(default_factory=list)
    #: Stop the run when its first cases all fail with the same permanent backend error (a 4xx
    #: rejection, a missing capability) instead of spending renders on the rest; ``false`` runs
    #: every case whatever happens. See :mod:`repainter.failures`.
    fail_fast: FailFastSpec = Field(default_factory=lambda: FailFastSpec())


DEFAULT_OUTPUT_DIR = "runs/{dataset}-{models}-{fingerprint}"


def _folder_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.") or "_"


class BudgetSpec(SpecModel):
    """How many references a run spends. ``full``: every selected reference. ``adaptive``:
    references in a fixed seeded random order, ``batch`` at a time from ``min_cases`` up to
    ``max_cases``, stopping once an anytime-valid paired test (see :mod:`repainter.adaptive`)
    has decided every pair of models at level ``alpha`` on the ``metric``'s final score.
    Left out of the fingerprint: it decides how many references run, never what a reference's
    results are, so a stopped run is resumed or grown with a larger ``max_cases``."""

    mode: Literal["full", "adaptive"] = "full"
    min_cases: int = Field(default=20, ge=1)
    max_cases: int | None = Field(default=None, ge=1)
    alpha: float = Field(default=0.05, gt=0.0, lt=1.0)
    batch: int = Field(default=10, ge=1)
    metric: str = "selection"

    @model_validator(mode="after")
    def _ordered(self) -> BudgetSpec:
        if self.max_cases is not None and self.max_cases < self.min_cases:
            raise ValueError("budget.max_cases must be >= budget.min_cases")
        return self


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
    #: (see :mod:`repainter.grid`), even a list of one.
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
    seed: int = 0
    #: Run the whole spec once per seed (sub-run folders seed-<s>/) and aggregate over seeds;
    #: None: one run with ``seed``. See repainter.seeds.
    seeds: list[int] | None = Field(default=None, min_length=1)
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
        own = _plain(data)
        merged, preset = own, own.get("preset")
        auto = None if "preset" in own else auto_preset_reason(own)
        if auto is not None:
            preset = REAL_MODELS_PRESET
        if preset is None and "metrics" not in own and drawn_scene_gaps(own):
            # the bench's truth metric would be empty here: the default leaves it out
            merged = {**own, "metrics": [{"name": n} for n in BENCH_METRICS
                                         if "needs_drawn_scene" not in metric_traits(n)]}
        if preset is not None:
            merged = _deep_merge(preset_values(preset), own)
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
        return _omit_defaults(handler(self), {"seeds": None, "correction": "holm", "budget": None})

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
        labels = [_folder_part(t.display_name) for t in self.t2i]
        models = "+".join(labels) if len(labels) <= 3 else f"{'+'.join(labels[:2])}+{len(labels) - 2}more"
        return Path(self.output_dir.format(
            name=self.name, dataset=_folder_part(self.dataset.name), models=models[:80],
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


class SpecError(ValueError):
    """A spec file or override could not be read or validated."""


#: A spec file larger than this is not a spec (checked before reading it).
MAX_SPEC_BYTES = 1_000_000
#: YAML aliases a spec may use, and nodes it may expand to ("billion laughs" defence).
MAX_YAML_ALIASES = 100
MAX_YAML_NODES = 100_000


def safe_load_bounded(text: str) -> Any:
    """``yaml.safe_load`` that refuses documents whose aliases expand beyond a small bound.

    Aliases are resolved by reference while parsing, but everything after (validation, dumps,
    deep copies) walks the expanded tree: 400 bytes of nested aliases make billions of nodes.

    >>> safe_load_bounded("a: &x [1, 2]\\nb: *x")
    {'a': [1, 2], 'b': [1, 2]}
    """
    loader = yaml.SafeLoader(text)
    try:
        if text.count("*") > MAX_YAML_ALIASES and _alias_count(text) > MAX_YAML_ALIASES:
            raise SpecError(f"the YAML uses more than {MAX_YAML_ALIASES} aliases")
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise SpecError(f"the YAML expands to more than {MAX_YAML_NODES} nodes through its "
                            "aliases")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _alias_count(text: str) -> int:
    return sum(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, yaml.SafeLoader))


def _expanded_size(node: yaml.Node, sizes: dict[int, int]) -> int:
    """Nodes of ``node`` with every alias expanded; memoised, so shared nodes cost one visit."""
    key = id(node)
    if key not in sizes:
        sizes[key] = 0  # a recursive alias counts once (its construction fails on its own)
        if isinstance(node, yaml.SequenceNode):
            children = node.value
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        else:
            children = []
        sizes[key] = min(1 + sum(_expanded_size(c, sizes) for c in children), 10 * MAX_YAML_NODES)
    return sizes[key]


def read_spec_file(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from exc
    if size > MAX_SPEC_BYTES:
        raise SpecError(f"cannot read spec {path}: {size} bytes is over the "
                        f"{MAX_SPEC_BYTES}-byte limit for a spec file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"cannot read spec {path}: {exc}") from exc
    try:
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(text)
        else:
            data = safe_load_bounded(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, SpecError) as exc:
        raise SpecError(f"cannot parse spec {path}: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise SpecError(f"spec {path} must hold a mapping at the top level")
    return data


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply ``"loop.rounds=5"`` or ``"t2i.0.params.steps=4"`` to ``data`` in place.

    Values are parsed as YAML, so ``5`` is an int, ``[a, b]`` a list and ``null`` None.
    """
    key, sep, raw = assignment.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"override {assignment!r} must look like key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise SpecError(f"override {assignment!r}: cannot parse value ({exc})") from exc
    parts = key.strip().split(".")
    node: Any = data
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            node = node[_list_index(node, part, assignment)]
            continue
        nxt = node.get(part)
        if nxt is None:
            # create a list when the next key is an index, else a mapping
            nxt = [] if parts[i + 1].isdigit() else {}
            node[part] = nxt
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, assignment)] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise SpecError(f"override {assignment!r}: {'.'.join(parts[:-1])} is not a mapping")


def _list_index(node: list, part: str, assignment: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise SpecError(f"override {assignment!r}: {part!r} is not an index of a {len(node)}-list")
    return int(part)


def _deep_merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def build_spec(data: dict[str, Any] | None = None, overrides: list[str] = ()) -> RunSpec:
    """Validate ``data`` (a parsed spec file) with ``overrides`` applied, over its preset.

    Overrides apply to the given values, so a spec keeps what it did not give open to its preset
    and to the defaults that follow its models (``--set t2i.0.name=diffusers`` on the bench gets
    the real-model preset, as a file naming diffusers does). An override that reaches into what
    the values leave out (``t2i.0.params.steps=4`` where ``data`` lists no ``t2i``) first copies
    that list or component from the spec ``data`` makes. ``preset=NAME`` among the overrides
    replaces the file's preset: NAME fills in what the file leaves out.

    >>> build_spec({}, ["preset=paper"]).selection
    {'clip_i': 0.5, 'dinov2': 0.5}
    >>> build_spec({}, ["t2i.0.params.steps=4"]).t2i[0].model_dump(mode="json")["params"]
    {'steps': 4}
    """
    data = copy.deepcopy(data or {})
    rest = []
    for assignment in overrides:
        if assignment.partition("=")[0].strip() == "preset":
            apply_override(data, assignment)
        else:
            rest.append(assignment)
    if not rest:
        return _validate(data)
    first = _validate(data)
    full = first.model_dump(mode="json")
    for assignment in rest:
        _materialise(data, full, assignment)
        apply_override(data, assignment)
    auto = first._auto_preset
    if auto is not None and "preset" not in data and ("metrics" in data or "selection" in data):
        data["preset"] = first.preset  # what was copied in came from that preset: keep it
    spec = _validate(data)
    if auto is not None and spec._auto_preset is None and spec.preset == first.preset:
        spec._auto_preset = auto
    return spec


def _materialise(data: dict[str, Any], full: dict[str, Any], assignment: str) -> None:
    """Copy from ``full`` (the validated spec's dump) what an override reaches into that
    ``data`` lacks and that an empty mapping cannot stand for: a list it indexes, a component
    (a mapping with a ``name``, or a component given by its name alone)."""
    parts = assignment.partition("=")[0].strip().split(".")
    node: Any = data
    source: Any = full
    for i, part in enumerate(parts[:-1]):
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                return  # apply_override names the bad index
            index = int(part)
            node = node[index]
            source = source[index] if isinstance(source, list) and index < len(source) else None
            continue
        if not isinstance(node, dict):
            return
        src = source.get(part) if isinstance(source, dict) else None
        component = isinstance(src, dict) and "name" in src
        if node.get(part) is None or (isinstance(node.get(part), str) and component):
            if src is None or not (parts[i + 1].isdigit() or component):
                return  # apply_override makes the mapping
            node[part] = copy.deepcopy(src)
        node, source = node[part], src


def override_spec(spec: RunSpec, overrides: list[str]) -> RunSpec:
    """``spec`` with ``overrides`` applied (the Python API's ``run(spec, overrides=...)``).

    A ``preset=`` override starts again from the values ``spec`` was built from, so the new
    preset fills in what they leave out; otherwise the overrides apply to ``spec`` as it is now.

    >>> override_spec(RunSpec(), ["preset=gill"]).selection
    {'clip_i': 1.0}
    """
    switches_preset = any(a.partition("=")[0].strip() == "preset" for a in overrides)
    base = spec.own_values() if switches_preset else spec.model_dump(mode="json")
    return build_spec(base, overrides)


def _validate(data: dict[str, Any]) -> RunSpec:
    try:
        return RunSpec.model_validate(data)
    except ValueError as exc:
        hints = unknown_key_hints(exc)
        raise SpecError(f"invalid run spec:\n{exc}" + "".join(f"\n{h}" for h in hints)) from exc


def _section_model(model: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The spec section (a pydantic model) at ``loc`` under ``model``; list indexes and
    pydantic's union tags are stepped over."""
    import typing

    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            continue  # an index or a union member's tag
        candidates = [field.annotation]
        found = None
        while candidates:
            annotation = candidates.pop()
            if isinstance(annotation, type) and issubclass(annotation, BaseModel):
                found = annotation
                break
            candidates.extend(typing.get_args(annotation))
        if found is None:
            return None
        model = found
    return model


def unknown_key_hints(exc: Exception, root: type[BaseModel] | None = None) -> list[str]:
    """``did you mean`` lines for the unknown keys of a validation error.

        >>> from pydantic import ValidationError
        >>> try:
        ...     RunSpec.model_validate({"loop": {"roudns": 3}})
        ... except ValidationError as exc:
        ...     unknown_key_hints(exc)
        ["loop.roudns: unknown key; did you mean 'rounds'?"]
    """
    import difflib

    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return []
    hints = []
    for error in errors():
        if error.get("type") != "extra_forbidden":
            continue
        loc = tuple(error["loc"])
        section = _section_model(root or RunSpec, loc[:-1])
        if section is None or not isinstance(loc[-1], str):
            continue
        close = difflib.get_close_matches(loc[-1], list(section.model_fields), n=1, cutoff=0.6)
        # pydantic names union members in loc ("ComponentSpec", "list[ComponentSpec]"): not keys
        where = ".".join(str(p) for p in loc if not _UNION_TAG.match(str(p)))
        if close:
            hints.append(f"{where}: unknown key; did you mean {close[0]!r}?")
    return hints


_UNION_TAG = re.compile(r"^[A-Z]|^list\[|^dict\[")


def load_spec(path: str | Path | None = None, overrides: list[str] = ()) -> RunSpec:
    """Load a spec file (YAML or TOML; none = the built-in world) and apply overrides."""
    data = read_spec_file(path) if path is not None else {}
    return build_spec(data, overrides)


def resolve_spec(spec: RunSpec | str | Path | None = None, overrides: list[str] = (),
                 settings: dict[str, Any] | None = None) -> RunSpec:
    """A spec from a RunSpec, a file or None (the built-in world), with Python-value ``settings``
    merged in (``{"loop": {"rounds": 5}}``) and then ``overrides`` strings applied.

        >>> resolve_spec(None, ["loop.variants=2"], {"loop": {"rounds": 5}}).loop.rounds
        5
    """
    if isinstance(spec, RunSpec):
        if not settings:
            return override_spec(spec, overrides) if overrides else spec
        # a new preset starts again from the values the spec was built from (as override_spec)
        data = spec.own_values() if "preset" in settings else spec.model_dump(mode="json")
    else:
        data = read_spec_file(spec) if spec is not None else {}
    if settings:
        data = _deep_merge(data, settings)
    return build_spec(data, overrides)
