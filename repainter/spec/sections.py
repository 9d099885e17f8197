"""The sections of a run spec: pydantic models whose unknown keys are errors (the loop, the
dataset, components, the decision rule, the runtime, the budget). :class:`~repainter.spec.RunSpec`
holds them.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)


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

    @field_validator("label")
    @classmethod
    def _clean_label(cls, value: str | None) -> str | None:
        # a label names folders, leaderboard rows and columns: " a" and "a" would be two models
        if value is not None and (not value.strip() or value != value.strip()):
            raise ValueError(f"label {value!r} must be non-empty, without leading or trailing "
                             "whitespace")
        return value

    @property
    def display_name(self) -> str:
        return self.label or self.name


#: How a case spends its render budget. ``adaptive`` (the default since 0.3.0): round 1 renders
#: the initial prompt with every seed; later rounds render the revision of the best prompt so far
#: (by mean score, not one lucky render), revised only for the differences found in several of
#: its renders, or re-sample it when nothing recurred (:mod:`repainter.graph.strategy`).
#: ``refine``: the MLLM writes variants, critiques the best render and revises its prompt every
#: round (the reference method's loop; ``preset: paper`` uses it). ``best_of_n``: the initial
#: prompt only, rendered rounds x variants times with distinct seeds; no critique, no revision
#: (the baseline at equal render budget). ``one_shot``: the initial description's prompt
#: rendered once.
Strategy = Literal["refine", "best_of_n", "one_shot", "adaptive"]
DEFAULT_STRATEGY: Strategy = "adaptive"
#: The default before 0.3.0. A stored spec.yaml leaves ``loop.strategy`` out exactly when it is
#: this one (as specs always did), so a stored spec without the key ran it (``load_run_spec``).
LEGACY_DEFAULT_STRATEGY: Strategy = "refine"

#: ``loop.baseline``: the strategy every revising entry is run beside, at the same render
#: budget, so a leaderboard can tell the gain of more samples from the gain of revision.
Baseline = Literal["best_of_n"]
#: A baseline twin's label: its entry's label plus this suffix (``sim`` -> ``sim~best_of_n``).
BASELINE_TWIN_SUFFIX = "~best_of_n"
#: Strategies that spend a fixed render count without revising: they get no baseline twin
#: (best_of_n is the baseline itself; one_shot's single render has no equal-budget twin).
UNREVISED_STRATEGIES = frozenset({"best_of_n", "one_shot"})


def omit_defaults(data: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """Leave keys at their default out of a dump, so specs written before a key existed keep
    their spec.yaml and fingerprint byte for byte (the default is what they ran)."""
    return {k: v for k, v in data.items() if not (k in defaults and v == defaults[k])}


class T2ISpec(ComponentSpec):
    """A T2I model entry; ``strategy`` overrides ``loop.strategy`` for this entry only, so one
    comparison can hold the same model twice (e.g. labelled ``refine`` and ``best-of-n``)."""

    strategy: Strategy | None = None

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        return omit_defaults(handler(self), {"strategy": None})


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
    #: ``best_of_n``: run a best_of_n twin of every T2I entry that revises (same model and
    #: params, label ``<label>~best_of_n``, the same shared description and seeds), so the
    #: leaderboard splits the final score's gain into sampling and revision. None: no twin.
    baseline: Baseline | None = None
    #: ``adaptive``: how many of the best prompt's renders the MLLM critiques each round (a
    #: difference found in two of them is persistent, one found in a single render is luck).
    critique_renders: int = Field(default=3, ge=1, le=16)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # ``strategy`` is left out when it is refine, the default before 0.3.0, so those specs
        # keep their spec.yaml and fingerprint; a stored spec without it ran refine
        # (load_run_spec), while a spec a user writes without it gets today's default
        return omit_defaults(handler(self), {"strategy": LEGACY_DEFAULT_STRATEGY,
                                             "baseline": None, "critique_renders": 3})


def baseline_twin(entry: T2ISpec) -> T2ISpec:
    """The best_of_n twin of a T2I entry: same model and params, its own label.

    >>> baseline_twin(T2ISpec(name="sim", params={"vocabulary": 0.3})).display_name
    'sim~best_of_n'
    """
    return T2ISpec(name=entry.name, params=dict(entry.params), strategy="best_of_n",
                   label=entry.display_name + BASELINE_TWIN_SUFFIX)


def with_baseline_twins(entries: list[T2ISpec], loop: LoopSpec,
                        skip: frozenset[str] = frozenset()) -> list[T2ISpec]:
    """``entries`` with each revising entry's twin right after it (``loop.baseline`` set),
    idempotent: a twin already listed (a spec read back, or written by hand) is not added twice.
    ``skip``: labels that get no twin (a retrieval backend answers, it does not render)."""
    if loop.baseline is None:
        return list(entries)
    labels = {e.display_name for e in entries}
    expanded: list[T2ISpec] = []
    for entry in entries:
        expanded.append(entry)
        strategy = entry.strategy or loop.strategy
        twin = baseline_twin(entry)
        if (strategy not in UNREVISED_STRATEGIES and entry.display_name not in skip
                and twin.display_name not in labels):
            expanded.append(twin)
    return expanded


def generated_twins(entries: list[dict[str, Any]]) -> set[str]:
    """Labels of the dumped entries that are another listed entry's twin, exactly."""
    specs = [T2ISpec.model_validate(e) for e in entries]
    dumped = [baseline_twin(e).model_dump(mode="json") for e in specs]
    return {s.display_name for s in specs if s.model_dump(mode="json") in dumped}


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

    #: Cluster to join ("HEAD:6379", "auto", ...); None: ``RAY_ADDRESS``, else a private local
    #: Ray with room for the pool, started for this run and stopped with it (or the one this
    #: process initialised). A token found on the machine is sent where ``RAY_AUTH_MODE`` is
    #: unset (:mod:`repainter.executors.ray_cluster`).
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
    #: Seconds one case may take on a worker before the worker counts as hung (killed, replaced,
    #: the case retried): None derives a generous bound from the loop (:meth:`case_deadline`).
    case_timeout: float | None = Field(default=None, gt=0)

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # unset: left out, so specs written before the key existed keep their text and identity
        return omit_defaults(handler(self), {"case_timeout": None})

    def case_deadline(self, rounds: int, variants: int) -> float:
        """Seconds one case may take on a worker: ``case_timeout``, by default
        ``600 + 60 x rounds x variants`` (first model loads and slow renders included)."""
        return float(self.case_timeout or 600.0 + 60.0 * rounds * variants)


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

    #: Cases (references) in flight at once; MLLM calls of different cases overlap and renders
    #: queue for their model's device. ``auto``: as many as keep the T2I device from waiting on
    #: the MLLM, sized from the run's own render and MLLM times (:mod:`repainter.executors.pacing`),
    #: at most ``max_concurrency``; an int fixes it. Results are identical either way.
    concurrency: int | Literal["auto"] = Field(default="auto", union_mode="left_to_right")
    #: The most cases ``concurrency: auto`` keeps in flight (also bounded by free memory).
    max_concurrency: int = Field(default=64, ge=1, le=256)
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

    @field_validator("concurrency")
    @classmethod
    def _concurrency_range(cls, value: int | str) -> int | str:
        if value != "auto" and (isinstance(value, bool) or not 1 <= value <= 256):
            raise ValueError("runtime.concurrency must be auto or an integer from 1 to 256")
        return value

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # the default ceiling is left out, so specs written before the key existed keep their text
        return omit_defaults(handler(self), {"max_concurrency": 64})


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

