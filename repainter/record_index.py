"""An index of a run folder's case records, so that a re-run need not read them all.

``RUN/cases.index`` (JSON) keeps, for every record file, its size, modification time and inode
(the file's stamp) with what a run needs to plan and to report progress: model, case id,
status, error, reference hash and final selection score. A record whose file still carries
its stamp is taken from the index; any other (a new, rewritten or replaced file: an atomic
write gives it a new inode) is read and validated as always. The index is a cache: deleting it
costs one full read, a stale entry is never used.
"""

from __future__ import annotations

import gc
import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any

from repainter.images import atomic_write_bytes
from repainter.records import CandidateRecord, CaseRecord, RoundRecord

if TYPE_CHECKING:  # pragma: no cover
    from repainter.store import RunStore

logger = logging.getLogger(__name__)

INDEX = "cases.index"  # JSON; not under cases/, whose *.json files are all records
VERSION = 1


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause Python's cyclic garbage collector for bulk work over many records. Reading 20,000
    records makes it walk every one of them again and again (a third of the CPU time of a
    5,000 x 4 report); reference counting still frees all that is not in a cycle, and the
    collector runs again as soon as the block ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class RecordSummary:
    """What the index keeps of one case record (read like the record for these fields)."""

    model: str
    case_id: str
    status: str
    error: str | None
    reference_sha256: str | None
    selection: float | None

    @property
    def done(self) -> bool:
        return self.status == "done"

    def final_score(self, name: str) -> float | None:
        return self.selection if name == "selection" else None

    @classmethod
    def of(cls, record: CaseRecord | RecordSummary) -> RecordSummary:
        if isinstance(record, RecordSummary):
            return record
        return cls(record.model, record.case_id, record.status, record.error,
                   record.reference_sha256, record.final_score("selection"))


class SlimRecord(CaseRecord):
    """A case record as the end of a run holds it in memory, for results.jsonl, the leaderboard,
    run.json and the report: every field but the bulky ones nobody there reads. ``rounds`` keep
    each candidate's round, variant and flag only (the round count and the render flags), and
    ``ground_truth``, ``draft_prompt`` and ``initial_prompt`` are dropped (the report's detailed
    cards read the full record from its file); equal descriptions and identities are one shared
    object. Never written as a case file: read the file for the whole record."""


class Slimmer:
    """Makes :class:`SlimRecord` s, sharing equal parts between the records it is given (a
    20,000-record run holds a few distinct metric identities and one description per
    reference, not 20,000 copies of each)."""

    #: Distinct values kept for sharing per field (older ones are simply no longer shared).
    KEEP = 16

    def __init__(self) -> None:
        self._seen: dict[str, list[Any]] = {}
        self._descriptions: dict[str, Any] = {}
        self._rounds: dict[tuple, RoundRecord] = {}

    def _shared(self, field: str, value: Any) -> Any:
        if not value:
            return value
        seen = self._seen.setdefault(field, [])
        for known in seen:
            if known == value:
                return known
        seen.append(value)
        del seen[:-self.KEEP]
        return value

    def _description(self, record: CaseRecord) -> Any:
        known = self._descriptions.get(record.case_id)
        if known is not None and known == record.iut:
            return known
        if record.iut is not None:
            self._descriptions[record.case_id] = record.iut
        return record.iut

    def _round(self, rnd: RoundRecord) -> RoundRecord:
        key = (rnd.round, tuple((c.round, c.variant, c.flagged) for c in rnd.candidates))
        shared = self._rounds.get(key)
        if shared is None:  # nothing reads these but the count and the flags: never mutated
            shared = self._rounds[key] = RoundRecord.model_construct(
                round=rnd.round, candidates=[CandidateRecord.model_construct(
                    round=r, variant=v, flagged=f) for r, v, f in key[1]])
        return shared

    def __call__(self, record: CaseRecord) -> SlimRecord:
        if isinstance(record, SlimRecord):
            return record
        values = dict(record.__dict__)
        values.update(rounds=[self._round(r) for r in record.rounds], ground_truth=None,
                      draft_prompt=None, initial_prompt=None, iut=self._description(record),
                      t2i=self._shared("t2i", record.t2i),
                      metrics=self._shared("metrics", record.metrics))
        return SlimRecord.model_construct(_fields_set=set(record.model_fields_set), **values)


AnyRecord = CaseRecord | RecordSummary


def _stamp(info: os.stat_result) -> list[int]:
    return [info.st_size, info.st_mtime_ns, info.st_ino]


def read_index(store: RunStore) -> dict[str, list[Any]]:
    """Relative record path -> [stamp..., summary fields...] (empty where there is no index)."""
    try:
        data = json.loads((store.root / INDEX).read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != VERSION:
        return {}
    entries = data.get("records")
    return entries if isinstance(entries, dict) else {}


def finished_cases(store: RunStore, slim: Slimmer | None = None
                   ) -> dict[tuple[str, str], AnyRecord]:
    """The finished ("done") cases of the folder by (model, case id): from the index where the
    file is unchanged, else read (and validated) from the file and kept slim."""
    index = read_index(store)
    slim = slim or Slimmer()
    found: dict[tuple[str, str], AnyRecord] = {}
    for path in store.record_paths():
        entry = index.get(path.relative_to(store.root).as_posix())
        record: AnyRecord | None = None
        if entry is not None and len(entry) == 9:
            try:
                if _stamp(path.stat()) == entry[:3]:
                    record = RecordSummary(*entry[3:])
            except OSError:
                continue
        if record is None:
            record = store._read_record(path)
            record = slim(record) if record is not None else None
        if record is not None and record.done:
            found[(record.model, record.case_id)] = record
    return found


def write_index(store: RunStore, records: Iterable[AnyRecord]) -> None:
    """Index ``records`` as their files are now (a file that is gone is left out)."""
    entries = {}
    for record in records:
        relative = store.record_relpath(record.model, record.case_id)
        try:
            info = (store.root / relative).stat()
        except OSError:
            continue
        entries[relative] = [*_stamp(info), *astuple(RecordSummary.of(record))]
    text = json.dumps({"version": VERSION, "records": entries}, ensure_ascii=False,
                      allow_nan=False, separators=(",", ":"))
    try:  # a cache: a failure costs the next run one full read, nothing else
        atomic_write_bytes(store.root / INDEX, text.encode("utf-8"), durable=False)
    except OSError as exc:
        logger.warning("could not write the record index %s: %s", INDEX, exc)


def full_records(store: RunStore, records: Iterable[AnyRecord]) -> list[CaseRecord]:
    """``records`` as full case records (summaries and slim records read from their files;
    unreadable ones are left out, and named in the store's ``unreadable``)."""
    full = []
    for record in records:
        if isinstance(record, (RecordSummary, SlimRecord)):
            record = store.read_case_record(record.model, record.case_id)
        if record is not None:
            full.append(record)
    return full


def read_slim_records(store: RunStore) -> list[SlimRecord]:
    """Every readable case record of the folder, slim (as :meth:`RunStore.records`, which holds
    them whole)."""
    slim = Slimmer()
    return [slim(record) for record in store.iter_records()]


def slim_records(store: RunStore, records: Iterable[AnyRecord],
                 slim: Slimmer | None = None) -> list[SlimRecord]:
    """``records`` as slim records, a summary's file read (one at a time: the whole records
    are never all in memory); unreadable ones are left out, as in :func:`full_records`."""
    slim = slim or Slimmer()
    out = []
    for record in records:
        if isinstance(record, RecordSummary):
            record = store.read_case_record(record.model, record.case_id)
        if record is not None:
            out.append(slim(record))
    return out


class LazyRecords(Sequence):
    """A run's records, read from their files on first use (a re-run that changed nothing
    returns these: most callers never look at the records)."""

    def __init__(self, store: RunStore, records: Sequence[AnyRecord]):
        self._store, self._records = store, list(records)
        self._full: list[CaseRecord] | None = None

    def _load(self) -> list[CaseRecord]:
        if self._full is None:
            self._full = full_records(self._store, self._records)
        return self._full

    def summaries(self) -> list[AnyRecord]:
        """What the run held of each record (summaries or slim records: nothing is read)."""
        return self._records

    def failed(self) -> list[CaseRecord]:
        """The records that are not done (only they are read)."""
        return full_records(self._store, [r for r in self._records if not r.done])

    def __len__(self) -> int:
        return len(self._load()) if self._full is not None else len(self._records)

    def __getitem__(self, index):
        return self._load()[index]

    def __iter__(self) -> Iterator[CaseRecord]:
        return iter(self._load())

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return f"LazyRecords({len(self._records)} records of {self._store.root})"
