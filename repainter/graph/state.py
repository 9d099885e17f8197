"""The typed state of one case (one reference x one T2I model) flowing through the graph.

Everything in it is JSON-able (images are paths into the run folder), so the SQLite checkpointer
can persist it after every node and an interrupted case resumes where it stopped.
"""

from __future__ import annotations

from typing import Annotated, Any

# typing_extensions' TypedDict: pydantic builds the graph's JSON schemas (Studio's input form)
# from it on Python < 3.12 too
from typing_extensions import TypedDict


def add_timings(current: dict[str, float] | None, new: dict[str, float] | None) -> dict[str, float]:
    """Reducer: per-node seconds add up across rounds."""
    total = dict(current or {})
    for node, seconds in (new or {}).items():
        total[node] = total.get(node, 0.0) + seconds
    return total


class Candidate(TypedDict, total=False):
    round: int
    variant: int
    prompt: str
    seed: int
    image: str  # path relative to the run folder
    flagged: str | None  # why it is not scored (e.g. safety checker blanked it)
    scores: dict[str, float]
    selection: float | None  # None: not selectable (flagged, or a metric gave NaN / inf)
    invalid_reason: str | None
    #: What the T2I model marks as worth recording about the render (its
    #: ``recorded_metadata``; set only where there is some), read by ``reads_metadata`` metrics.
    metadata: dict[str, Any]


class RoundRecord(TypedDict, total=False):
    round: int
    prompt: str  # the prompt the variants were written from
    candidates: list[Candidate]
    round_best: int | None  # variant index of the round's best selectable candidate
    round_best_selection: float | None
    best_ever_selection: float | None
    critique: dict[str, Any] | None
    revised_prompt: str | None


class CaseInput(TypedDict):
    """What starts a case: which reference (a dataset id) and which T2I model (its label)."""

    case_id: str
    model: str


class CaseState(TypedDict, total=False):
    case_id: str
    model: str  # the T2I model's display label
    #: Pixel hash of the reference this case started from: a resume whose reference changed
    #: starts the case over (see repainter.runner).
    reference_sha256: str
    iut: dict[str, Any]
    draft_prompt: str
    initial_prompt: str
    prompt: str  # the prompt the next round's variants are written from
    round: int  # rounds completed so far
    pending: list[Candidate]  # this round's candidates between write_variants and select
    rounds: list[RoundRecord]
    best: Candidate | None  # best-ever candidate
    stale_rounds: int  # consecutive rounds without a best-ever gain of min_delta
    stop_reason: str
    judgement: dict[str, Any] | None
    decision: dict[str, Any] | None  # retrieve-or-generate outcome (when the spec asks for one)
    final_scores: dict[str, float]
    status: str
    #: Seconds spent in each node, summed over rounds (and over resumed attempts).
    timings: Annotated[dict[str, float], add_timings]


def round_best_candidate(record: RoundRecord) -> Candidate | None:
    """The candidate a round picked (None when no candidate of the round was selectable)."""
    variant = record.get("round_best")
    if variant is None:
        return None
    return next((c for c in record.get("candidates") or [] if c.get("variant") == variant), None)
