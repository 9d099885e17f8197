"""The records a DAR run (:mod:`repainter.dar`) writes: one per dialogue turn (``dar.jsonl``) and
the run's summary (``dar_summary.json``).

Both carry ``schema_version``; version 0 is the format written before versions existed (same
keys, no ``schema_version``), upgraded on reading. Missing values follow
:mod:`repainter.records.base`: a mean over no turns is not written (a turn summary exists only
for turns that some dialogue reached), and no record holds NaN.

>>> row = DARTurnRecord(case="c", target="c", turn=0, query="a red circle", text_ahead=2,
...                     text_tied=1, fused_ahead=0, fused_tied=0, gallery_size=8)
>>> row.rank_text, row.rank_fused
(3.5, 1.0)
>>> dump_record(row)["schema_version"]
1
>>> old = {k: v for k, v in dump_record(row).items() if k != "schema_version"}
>>> load_record(DARTurnRecord, old) == row
True
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from repainter.records.base import VersionedRecord, dump_record, load_record, migration

#: The K of the Hits@K a DAR summary reports (the fields of :class:`DARModeSummary`).
HITS_AT = (1, 5, 10)


class DARTurnRecord(VersionedRecord):
    """The target's place in the two rankings of one turn of one dialogue (a ``dar.jsonl`` line).

    ``*_ahead``: gallery images scoring above the target; ``*_tied``: images tying with it. The
    expected ranks (ties broken at random in expectation) are stored for readers and computed
    here when absent.
    """

    kind: ClassVar[str] = "dar_turn"
    current_version: ClassVar[int] = 1

    case: str
    target: str
    turn: int = Field(ge=0)
    query: str
    text_ahead: int = Field(ge=0)
    text_tied: int = Field(ge=0)
    fused_ahead: int = Field(ge=0)
    fused_tied: int = Field(ge=0)
    gallery_size: int = Field(ge=0)
    #: Run-folder paths of the generated images (when the run saves them).
    images: list[str] = Field(default_factory=list)
    #: The first gallery ids of the fused ranking.
    top_fused: list[str] = Field(default_factory=list)
    rank_text: float | None = None
    rank_fused: float | None = None

    @model_validator(mode="after")
    def _expected_ranks(self) -> DARTurnRecord:
        self.rank_text = expected_rank(self.text_ahead, self.text_tied)
        self.rank_fused = expected_rank(self.fused_ahead, self.fused_tied)
        return self


def expected_rank(ahead: int, tied: int) -> float:
    """Expected rank (1 = first) of the target with ``ahead`` images above it and ``tied`` tying.

    >>> expected_rank(0, 0), expected_rank(3, 2)
    (1.0, 5.0)
    """
    return 1.0 + ahead + tied / 2.0


class DARModeSummary(BaseModel):
    """One turn's Hits@K and mean rank, by text alone or fused with the generated images."""

    model_config = ConfigDict(extra="forbid", validate_by_name=True, serialize_by_alias=True)

    #: ChatIR's cumulative Hits@K (target in the top K at this turn or an earlier one, over
    #: all dialogues); None only in a summary of version 1, written before it was computed.
    hits_at_1: float | None = Field(default=None, alias="hits@1", ge=0.0, le=1.0)
    hits_at_5: float | None = Field(default=None, alias="hits@5", ge=0.0, le=1.0)
    hits_at_10: float | None = Field(default=None, alias="hits@10", ge=0.0, le=1.0)
    #: Hits@K at this turn alone, over the dialogues that reach it.
    hits_at_1_per_turn: float = Field(alias="hits@1_per_turn", ge=0.0, le=1.0)
    hits_at_5_per_turn: float = Field(alias="hits@5_per_turn", ge=0.0, le=1.0)
    hits_at_10_per_turn: float = Field(alias="hits@10_per_turn", ge=0.0, le=1.0)
    mean_rank: float = Field(ge=1.0)


class DARTurnSummary(BaseModel):
    """Per turn: how many dialogues reached it, and both rankings' summaries."""

    model_config = ConfigDict(extra="forbid")

    turn: int = Field(ge=0)
    cases: int = Field(ge=0)
    text: DARModeSummary
    fused: DARModeSummary


class DARFailureRecord(BaseModel):
    """A dialogue that failed at ``turn`` (its T2I or MLLM call), with the reason."""

    model_config = ConfigDict(extra="forbid")

    case: str
    target: str
    turn: int
    error: str


class DARSummary(VersionedRecord):
    """``dar_summary.json``: the run's settings, the per-turn table and the failures."""

    kind: ClassVar[str] = "dar_summary"
    current_version: ClassVar[int] = 2

    alpha: float = Field(ge=0.0, le=1.0)
    images_per_turn: int = Field(ge=0)
    cases: int = Field(ge=0)
    failed: int = Field(default=0, ge=0)
    gallery_size: int = Field(ge=0)
    #: What ran: backends' identities, the gallery, the seed, the spec, cache counts.
    config: dict[str, Any] = Field(default_factory=dict)
    turns: list[DARTurnSummary] = Field(default_factory=list)
    failures: list[DARFailureRecord] = Field(default_factory=list)


# Version 0 (before schema versions): the same keys without schema_version. A v0 turn row always
# held rank_text / rank_fused; a v0 summary could lack "failed" (written before failures were
# recorded): it is the length of "failures".


@migration(DARTurnRecord.kind, 0)
def _dar_turn_v0(data: dict[str, Any]) -> dict[str, Any]:
    return data


@migration(DARSummary.kind, 0)
def _dar_summary_v0(data: dict[str, Any]) -> dict[str, Any]:
    data.setdefault("failed", len(data.get("failures") or []))
    return data


@migration(DARSummary.kind, 1)
def _dar_summary_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1's ``hits@K`` was the per-turn figure; the cumulative one was not computed
    (:meth:`repainter.dar.DARResult.summary_record` recomputes it from ``dar.jsonl``)."""
    for turn in data.get("turns") or []:
        for mode in ("text", "fused"):
            entry = turn.get(mode) or {}
            for k in HITS_AT:
                if f"hits@{k}" in entry:
                    entry[f"hits@{k}_per_turn"] = entry.pop(f"hits@{k}")
    return data


__all__ = ["HITS_AT", "DARFailureRecord", "DARModeSummary", "DARSummary", "DARTurnRecord", "DARTurnSummary",
           "dump_record", "expected_rank", "load_record"]
