"""The report's card index (RUN/report/cards.jsonl): the light records an unchanged run's
report is made from, so that ``repainter report`` does not read every record again."""

from __future__ import annotations

import json
from pathlib import Path

from repainter.images import atomic_write_bytes
from repainter.records import CaseRecord, dump_record, load_case_record
from repainter.report.assets import REPORT_DIR
from repainter.store import RunStore

#: An index of the fields the overview cards, failures and progress table need, one line per
#: record, with a digest of the record files it was made from: `repainter report` on an
#: unchanged run reads this one file instead of every record (full records only for the cards
#: that show whole histories). Each line is a CaseRecord (with its schema_version) without the
#: fields in _NOT_IN_CARDS; an index this repainter cannot read is rebuilt from the records.
CARD_INDEX = "cards.jsonl"

_NOT_IN_CARDS = ("rounds", "iut", "ground_truth", "draft_prompt", "initial_prompt", "t2i", "metrics",
                 "mllm_usage")


def _folder_digest(run_dir: Path, spec) -> str:
    """Size and modification time of every record file, and the spec's models (one stat each)."""
    import hashlib

    digest = hashlib.sha256(
        "\n".join(t.display_name for t in spec.t2i).encode() if spec is not None else b"")
    for path in sorted((run_dir / "cases").glob("*/*.json")):
        info = path.stat()
        digest.update(f"{path.parent.name}/{path.name}:{info.st_size}:{info.st_mtime_ns}\n"
                      .encode())
    return digest.hexdigest()


def read_card_index(run_dir: Path, spec) -> list[CaseRecord] | None:
    """The light records of the card index, or None where it is missing or out of date (or
    holds a line this repainter cannot read: the index is then rebuilt from the records)."""
    path = run_dir / REPORT_DIR / CARD_INDEX
    try:
        with path.open("rb") as handle:
            header = json.loads(handle.readline() or b"{}")
            if header.get("digest") != _folder_digest(run_dir, spec):
                return None
            return [load_case_record(json.loads(line)) for line in handle if line.strip()]
    except (OSError, ValueError):  # pydantic's ValidationError and RecordVersionError included
        return None


def write_card_index(run_dir: Path, spec, records: list[CaseRecord]) -> None:
    lines = [json.dumps({"digest": _folder_digest(run_dir, spec)})]
    lines += [json.dumps({k: v for k, v in dump_record(r).items() if k not in _NOT_IN_CARDS},
                         ensure_ascii=False, allow_nan=False, default=str) for r in records]
    atomic_write_bytes(run_dir / REPORT_DIR / CARD_INDEX, ("\n".join(lines) + "\n").encode("utf-8"))


def load_report_records(store: RunStore, spec, records: list[CaseRecord] | None
                        ) -> tuple[list[CaseRecord], bool]:
    """The records the report shows, and whether they are the card index's light records
    (without rounds and descriptions: the cards that show whole histories read their files)."""
    if records is not None:
        return records, False
    light = read_card_index(store.root, spec)
    if light is not None:
        return light, True
    return store.records(), False
