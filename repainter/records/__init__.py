"""Typed, versioned records of a run: what each file in a run folder holds.

Every file a run writes (case records, ``run.json``, the leaderboard, DAR records) is a pydantic
model from this package with a ``schema_version``; readers go through :func:`load_record`, which
upgrades older files or says clearly why it cannot. :mod:`repainter.records.base` holds the one
missing-value policy.
"""

from repainter.records.base import (
    RecordVersionError,
    VersionedRecord,
    dump_record,
    finite_or_none,
    load_record,
    migration,
    upgrade,
)
from repainter.records.case import (
    LOCATION_FIELDS,
    VOLATILE_FIELDS,
    CandidateRecord,
    CaseRecord,
    CritiqueRecord,
    DecisionRecord,
    Difference,
    JudgementRecord,
    MllmUsage,
    RecordPart,
    RenderFlags,
    ResultLine,
    RetrievedRender,
    RoundRecord,
    Scores,
    dump_case_record,
    load_case_record,
)
from repainter.records.leaderboard import (
    AdaptiveSummary,
    CategoryRow,
    ComparisonFamily,
    ComparisonTest,
    DecisionSummary,
    GridRanking,
    GridSection,
    Leaderboard,
    LeaderboardRow,
    MetricSummary,
    PairDecision,
    SelectionSummary,
)
from repainter.records.run_info import CaseCounts, GridAxes, RunInfo

__all__ = ["RecordVersionError", "VersionedRecord", "dump_record", "finite_or_none", "load_record",
           "migration", "upgrade",
           # case records (repainter.records.case)
           "CandidateRecord", "CaseRecord", "CritiqueRecord", "DecisionRecord", "Difference",
           "JudgementRecord", "MllmUsage", "RecordPart", "RenderFlags", "ResultLine",
           "RetrievedRender", "RoundRecord", "Scores", "LOCATION_FIELDS", "VOLATILE_FIELDS",
           "dump_case_record", "load_case_record",
           # leaderboard.json (repainter.records.leaderboard)
           "AdaptiveSummary", "CategoryRow", "ComparisonFamily", "ComparisonTest",
           "DecisionSummary", "GridRanking", "GridSection", "Leaderboard", "LeaderboardRow",
           "MetricSummary", "PairDecision", "SelectionSummary",
           # run.json (repainter.records.run_info)
           "CaseCounts", "GridAxes", "RunInfo"]
