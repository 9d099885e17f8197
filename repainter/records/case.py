"""The case record: everything one case (one reference x one T2I model) left behind.

``cases/<model>/<case>.json`` holds a :class:`CaseRecord`; ``results.jsonl`` holds one
:class:`ResultLine` per record. The graph builds the record (``repainter.graph.nodes``), the
store writes it with :func:`~repainter.records.base.dump_record` and reads it with
:func:`~repainter.records.base.load_record`; every reader uses the attributes below.

Fields a record only sometimes carries (a failed case's ``traceback``, a candidate's
``metadata`` or ``prompt_tokens_dropped``, a baseline's ``strategy``, the ``rescored`` metrics, a grid
cell's ``mllm``) are written only when they were set, so a record's JSON is exactly what the
loop produced: the field order below is the key order of the files. Reading one leaves unset
fields at their defaults (``None`` or empty), the missing-value policy of
:mod:`repainter.records.base`.

Version 0 is the format written before records carried a ``schema_version`` (identical
otherwise); version 1 adds ``schema_version``; version 2 replaces a candidate's ``drawn`` scene
(a simulated model's) with the generic ``metadata`` a T2I backend records (the scene is
``metadata["drawn_scene"]``). Optional fields added since (``mllm_adaptations``) are written
only where they were set, so every record without them reads as before and no version step is
needed; a record that has them is refused by an older repainter, naming the unknown field.

>>> record = CaseRecord(case_id="c1", model="sd", status="failed", error="loop: boom",
...                     traceback=[], rounds=[], final_scores={})
>>> list(dump_record(record))
['schema_version', 'case_id', 'model', 'status', 'error', 'traceback', 'rounds', 'final_scores']
>>> load_record(CaseRecord, {"case_id": "c1", "model": "sd", "status": "done"}).schema_version
2
>>> old = {"schema_version": 1, "case_id": "c1", "model": "sim", "status": "done",
...        "rounds": [{"round": 1, "candidates": [{"round": 1, "variant": 0, "drawn": {"objects": []}}]}]}
>>> load_record(CaseRecord, old).rounds[0].candidates[0].metadata
{'drawn_scene': {'objects': []}}
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_serializer

from repainter.records.base import VersionedRecord, dump_record, load_record, migration
from repainter.schemas import Critique, Difference, ImageUnderstandingTree

Scores = dict[str, float | None]
"""Metric label -> value (None: the metric gave no finite value for this image)."""


class RecordPart(BaseModel):
    """A part of a record: unknown keys and non-finite numbers are refused (a NaN reaching a
    record is a bug upstream: it fails where the record is built), unset fields are not written.

    Until every reader uses attributes, a part also answers ``part["key"]`` and
    ``part.get("key")`` as the dict it replaces did (a field that was never set counts as
    absent): the leaderboard module still reads records that way.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    @model_serializer(mode="wrap")
    def _only_set_fields(self, handler):
        data = handler(self)
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if k in self.model_fields_set}
        return data


class CandidateRecord(RecordPart):
    """One render of one prompt variant, with its scores (``round`` and ``variant`` are None
    only in synthetic records, such as the meta-evaluation's oracle)."""

    round: int | None = None
    variant: int | None = None
    prompt: str | None = None
    seed: int | None = None
    image: str | None = None  # path relative to the run folder
    flagged: str | None = None  # why it is not scored (safety checker, NaN decode, all black)
    #: Prompt tokens the T2I model's text encoder dropped (set only where it dropped some).
    prompt_tokens_dropped: int | None = None
    #: What the T2I model marks as worth recording about this render (its
    #: ``recorded_metadata``); set only where there is some.
    metadata: dict[str, Any] = Field(default_factory=dict)
    scores: Scores = Field(default_factory=dict)
    selection: float | None = None  # None: not selectable (flagged, or a metric gave no value)
    invalid_reason: str | None = None

    @property
    def key(self) -> tuple[int | None, int | None]:
        """(round, variant): names the candidate within its case."""
        return (self.round, self.variant)


#: What the MLLM found still differs from the reference: the reply's own schema, as stored.
CritiqueRecord = Critique


class RoundRecord(RecordPart):
    """One round of the loop: the prompt, its candidates, the pick, the critique, the revision."""

    round: int | None = None
    prompt: str | None = None  # the prompt the variants were written from
    candidates: list[CandidateRecord] = Field(default_factory=list)
    round_best: int | None = None  # variant of the round's best selectable candidate
    round_best_selection: float | None = None
    best_ever_selection: float | None = None
    critique: CritiqueRecord | None = None
    #: How the critique was drawn from several renders (``adaptive``; None: one render's).
    critique_basis: str | None = None
    revised_prompt: str | None = None

    def best_candidate(self) -> CandidateRecord | None:
        """The candidate the round picked (None when none of it was selectable)."""
        if self.round_best is None:
            return None
        return next((c for c in self.candidates if c.variant == self.round_best), None)


class JudgementRecord(RecordPart):
    """The MLLM judge's verdict on the best-ever candidate (1 to 5 each)."""

    aesthetic: int
    semantic: int
    rationale: str = ""
    #: Set by a rescore that changed the best-ever candidate: the verdict is of this image.
    judged_image: str | None = None
    stale: str | None = None


class RenderFlags(RecordPart):
    """Candidates rendered, how many were flagged (per flag) and the flagged share."""

    candidates: int = 0
    flagged: int = 0
    by_flag: dict[str, int] = Field(default_factory=dict)
    flagged_share: float | None = None


class MllmUsage(RecordPart):
    """Calls, tokens and cost of the MLLM calls made for one case (empty for offline MLLMs)."""

    calls: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    cached_tokens: int | None = None
    calls_without_usage: int | None = None
    cost_usd: float | int | None = None  # an int where no call was priced (sum of nothing)
    served_by: list[str] | None = None


class MllmAdaptation(RecordPart):
    """Something the MLLM backend changed to make its calls work, or suspects a server changed
    silently (:mod:`repainter.backends.mllm.adaptations` lists the kinds): ``requested`` ->
    ``used``, ``count`` (images or calls, per kind), ``calls`` it concerned, the first call's
    task and why."""

    kind: str
    requested: str | None = None
    used: str | None = None
    count: int | None = None
    calls: int | None = None
    first_task: str | None = None
    detail: str | None = None


class RetrievedRender(RecordPart):
    """The retriever's answer to the best prompt, scored like a candidate."""

    image: str | None = None
    scores: Scores | None = None
    selection: float | None = None
    flagged: str | None = None


class DecisionRecord(RecordPart):
    """Retrieve or generate: which image the rule picked, and whether that was right."""

    rule: str
    metric: str | None = None
    margin: float = 0.0
    choice: str
    generated_value: int | float | None = None
    retrieved_value: int | float | None = None
    retrieved: RetrievedRender | None = None
    truly_closer: str | None = None  # "generated" / "retrieved" / "tie"; None: not known
    correct: bool | None = None


#: Fields in which two runs of the same spec on the same machine may differ: ``timings`` holds
#: wall-clock seconds per graph node. ``source`` also differs where the dataset lies elsewhere
#: (it names the dataset file by its absolute path), so records of one spec run from two
#: checkouts agree once both are left out. Everything else (prompts, seeds, scores, choices,
#: judgements, usage counts) is a function of the spec.
VOLATILE_FIELDS = ("timings",)
LOCATION_FIELDS = ("source",)


class CaseRecord(RecordPart, VersionedRecord):
    """``cases/<model>/<case>.json``: a finished case, or a failed one with its reason."""

    kind: ClassVar[str] = "case"
    current_version: ClassVar[int] = 2

    case_id: str
    model: str  # the T2I model's label (a grid cell's label in a grid)
    category: str | None = None
    status: Literal["done", "failed"]
    error: str | None = None
    #: A failed case: what failed, without the case's particulars, so failures group by it
    #: (``stage: ExceptionType`` and the backend's reason key, e.g. ``loop: MLLMError
    #: [image_limit]``); see repainter.failures.
    error_kind: str | None = None
    #: A failed case: the error will not go away by trying again (a 4xx rejection, a missing
    #: capability); a run's first cases failing alike stop it (``runtime.fail_fast``).
    error_permanent: bool | None = None
    traceback: list[str] | None = None  # a failed case: the last frames
    reference: str | None = None  # path of the reference in the run folder
    reference_sha256: str | None = None  # pixel hash of the reference the case ran on
    source: str | None = None
    license: str | None = None
    ground_truth: dict[str, Any] | None = None  # the dataset's scene, where it has one
    iut: ImageUnderstandingTree | None = None
    draft_prompt: str | None = None
    initial_prompt: str | None = None
    rounds: list[RoundRecord] = Field(default_factory=list)
    round1_best: CandidateRecord | None = None
    best: CandidateRecord | None = None  # the best-ever candidate
    best_ever_by_round: list[float | None] = Field(default_factory=list)
    stop_reason: str | None = None
    judgement: JudgementRecord | None = None
    #: The best-ever candidate's scores, its ``selection`` and the judge's ``judge_*`` scores.
    final_scores: Scores = Field(default_factory=dict)
    #: The T2I model's identity (a grid's records carry the T2I label here instead).
    t2i: dict[str, Any] | str | None = None
    #: Metric label -> what the metric did: its identity (model, weights, preprocessing,
    #: resize), the repainter version and its libraries' versions
    #: (:func:`repainter.backends.metric_identity.metric_identity`); absent in older records.
    metrics: dict[str, dict[str, Any]] | None = None
    timings: dict[str, float] = Field(default_factory=dict)  # seconds per graph node
    mllm_usage: MllmUsage = Field(default_factory=MllmUsage)
    #: The MLLM's adaptations during this case (response format stepped down, images
    #: downscaled, context suspected cut ...); set only where there were some.
    mllm_adaptations: list[MllmAdaptation] = Field(default_factory=list)
    render_flags: RenderFlags | None = None
    decision: DecisionRecord | None = None
    strategy: str | None = None  # set for every strategy but refine (the default)
    rescored: list[str] | None = None  # metric labels added by ``repainter rescore``
    # -- set in memory by the aggregating commands, never in a case file --------------------
    seed: int | None = None  # repainter.seed_runs: the sub-run's seed
    seeds_done: int | None = None  # repainter.seed_runs: seeds the averaged case finished
    mllm: str | None = None  # repainter.mllm_grid: the cell's MLLM
    run_subdir: str | None = None  # repainter.mllm_grid: the cell's sub-run folder

    @property
    def done(self) -> bool:
        return self.status == "done"

    @property
    def strategy_name(self) -> str:
        """The loop's strategy (records of the default method do not name it)."""
        return self.strategy or "refine"

    def candidates(self) -> list[CandidateRecord]:
        """Every candidate of every round, in order."""
        return [c for r in self.rounds for c in r.candidates]

    @property
    def round1_selection(self) -> float | None:
        """The selection score of round 1's best candidate (None: none, or not selectable)."""
        return self.round1_best.selection if self.round1_best is not None else None

    def final_score(self, label: str) -> float | None:
        """A final score by metric label (``selection``, ``judge_semantic`` ...); None if absent."""
        return self.final_scores.get(label)

    def comparable(self, exclude: frozenset[str] | set[str] = frozenset(VOLATILE_FIELDS)
                   ) -> dict[str, Any]:
        """The record as written, without the fields two runs of one spec may differ in."""
        return {k: v for k, v in dump_record(self).items() if k not in exclude}


class ResultLine(RecordPart, VersionedRecord):
    """One line of ``results.jsonl``: the flat summary of a case record (rebuilt from the records
    whenever they change; version 0 lines had no ``schema_version`` and are otherwise the same)."""

    kind: ClassVar[str] = "result-line"
    current_version: ClassVar[int] = 1

    case_id: str
    model: str
    t2i: dict[str, Any] | str | None = None
    mllm: str | None = None
    run_subdir: str | None = None
    category: str | None = None
    status: str | None = None
    error: str | None = None
    rounds: int = 0
    stop_reason: str | None = None
    round1_selection: float | None = None
    round1_scores: Scores = Field(default_factory=dict)
    final_scores: Scores = Field(default_factory=dict)
    best_prompt: str | None = None
    best_image: str | None = None

    @classmethod
    def of(cls, record: CaseRecord) -> ResultLine:
        """The line of ``record`` (a grid's cell fields only where the record has them)."""
        round1, best = record.round1_best, record.best
        cell = {k: getattr(record, k) for k in ("t2i", "mllm", "run_subdir")
                if k in record.model_fields_set}
        return cls(case_id=record.case_id, model=record.model, **cell,
                   category=record.category, status=record.status, error=record.error,
                   rounds=len(record.rounds), stop_reason=record.stop_reason,
                   round1_selection=record.round1_selection,
                   round1_scores=dict(round1.scores) if round1 else {},
                   final_scores=dict(record.final_scores),
                   best_prompt=best.prompt if best else None,
                   best_image=best.image if best else None)


@migration(CaseRecord.kind, 0)
def _case_v0(data: dict[str, Any]) -> dict[str, Any]:
    # version 0 differs only in having no schema_version
    return data


@migration(CaseRecord.kind, 1)
def _case_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 kept a simulated model's scene as the candidate field ``drawn``; version 2
    keeps it in the candidate's ``metadata`` as ``drawn_scene`` (the caller's dicts are left
    as they were)."""
    rounds = [{**r, "candidates": [_candidate_v1(c) for c in r.get("candidates") or []]}
              if isinstance(r, dict) and "candidates" in r else r
              for r in data.get("rounds") or []]
    moved = {**data, **({"rounds": rounds} if "rounds" in data else {})}
    for key in ("round1_best", "best"):
        if key in data:
            moved[key] = _candidate_v1(data[key])
    return moved


def _candidate_v1(candidate: Any) -> Any:
    if not isinstance(candidate, dict) or "drawn" not in candidate:
        return candidate
    moved = {k: v for k, v in candidate.items() if k != "drawn"}
    if candidate["drawn"] is not None:
        moved["metadata"] = {"drawn_scene": candidate["drawn"], **(candidate.get("metadata") or {})}
    return moved


@migration(ResultLine.kind, 0)
def _result_line_v0(data: dict[str, Any]) -> dict[str, Any]:
    return data  # version 0 differs only in having no schema_version


def load_case_record(data: dict[str, Any]) -> CaseRecord:
    """A case record as read from a file (older versions migrated)."""
    return load_record(CaseRecord, data)


def dump_case_record(record: CaseRecord) -> dict[str, Any]:
    """The JSON-ready dict written to ``cases/<model>/<case>.json``."""
    return dump_record(record)


__all__ = ["CandidateRecord", "CaseRecord", "CritiqueRecord", "DecisionRecord", "Difference",
           "JudgementRecord", "MllmAdaptation", "MllmUsage", "RecordPart", "RenderFlags",
           "ResultLine", "RetrievedRender", "RoundRecord", "Scores", "LOCATION_FIELDS", "VOLATILE_FIELDS",
           "dump_case_record", "load_case_record"]
