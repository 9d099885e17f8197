"""An index of a run folder's case records, so that a re-run need not read them all.

``RUN/cases.index`` (JSON) keeps, for every record file, its size, modification time and inode
(the file's stamp) with what a run needs to plan and to report progress: model, case id,
status, error, reference hash and final selection score. A record whose file still carries
its stamp is taken from the index; any other (a new, rewritten or replaced file: an atomic
write gives it a new inode) is read and validated as always. The index is a cache: deleting it
costs one full read, a stale entry is never used.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import astuple, dataclass
from typing import TYPE_CHECKING, Any

from repainter.images import atomic_write_bytes
from repainter.records import CaseRecord

if TYPE_CHECKING:  # pragma: no cover
    from repainter.store import RunStore

logger = logging.getLogger(__name__)

INDEX = "cases.index"  # JSON; not under cases/, whose *.json files are all records
VERSION = 1


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


def finished_cases(store: RunStore) -> dict[tuple[str, str], AnyRecord]:
    """The finished ("done") cases of the folder by (model, case id): from the index where the
    file is unchanged, else read (and validated) from the file."""
    index = read_index(store)
    found: dict[tuple[str, str], AnyRecord] = {}
    for path in sorted((store.root / "cases").glob("*/*.json")):
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
    """``records`` as full case records (summaries read from their files; unreadable ones
    are left out, and named in the store's ``unreadable``)."""
    full = []
    for record in records:
        if isinstance(record, RecordSummary):
            record = store.read_case_record(record.model, record.case_id)
        if record is not None:
            full.append(record)
    return full


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
