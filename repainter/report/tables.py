"""The report's tables: the leaderboard, its per-metric paired comparisons and the categories,
read back from leaderboard.json where it was written from the very records shown."""

from __future__ import annotations

from dataclasses import dataclass

from repainter.records import CaseRecord, RecordVersionError
from repainter.records.leaderboard import CategoryRow, ComparisonFamily, LeaderboardRow
from repainter.report.leaderboard import read_leaderboard
from repainter.store import RunStore


@dataclass
class ReportTables:
    """The leaderboard, its per-metric paired comparisons and the per-category table."""

    rows: list[LeaderboardRow]
    by_metric: dict[str, ComparisonFamily]
    categories: list[CategoryRow]
    #: True where they come from leaderboard.json, written from exactly these records.
    saved: bool

    def category_names(self) -> list[str]:
        return sorted({c.category for c in self.categories})


def saved_tables(store: RunStore, models: list[str], records: list[CaseRecord]
                 ) -> ReportTables | None:
    """The tables of leaderboard.json where run.json says it was written from these very
    records (same digest), else None (compute them)."""
    digest = store.read_run_info().records_digest
    path = store.root / "leaderboard.json"
    if not digest or not path.exists():
        return None
    if digest != store.records_digest(models, [(r.model, r.case_id) for r in records]):
        return None
    try:
        saved = read_leaderboard(store.root)
    except (OSError, ValueError, RecordVersionError):  # pydantic's ValidationError is a ValueError
        return None
    if saved is None:
        return None
    return ReportTables(saved.models, saved.comparisons, saved.categories, saved=True)
