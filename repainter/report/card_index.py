"""The report's card index (RUN/report/cards.jsonl): the light records an unchanged run's
report is made from, so that ``repainter report`` does not read every record again."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

from repainter.images import atomic_write_bytes
from repainter.record_index import SlimRecord, read_slim_records
from repainter.records import CaseRecord, dump_record, load_case_record
from repainter.report.assets import REPORT_DIR
from repainter.store import RunStore

try:  # orjson (a dependency) parses the index about twice as fast
    from orjson import loads as _loads
except ImportError:  # pragma: no cover
    _loads = json.loads

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
    for model, name in _record_files(run_dir / "cases"):
        info = os.stat(os.path.join(run_dir, "cases", model, name))
        digest.update(f"{model}/{name}:{info.st_size}:{info.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _record_files(cases: Path) -> list[tuple[str, str]]:
    """(model folder, file name) of every ``cases/*/*.json``, in the order of the sorted glob
    (as strings: 20,000 Path objects cost more than the stat calls)."""
    try:
        folders = [entry.name for entry in os.scandir(cases) if entry.is_dir()]
    except OSError:
        return []
    return sorted((model, entry.name) for model in folders
                  for entry in os.scandir(cases / model)
                  if entry.name.endswith(".json"))


def read_card_index(run_dir: Path, spec) -> list[CaseRecord] | None:
    """The light records of the card index, or None where it is missing or out of date (or
    holds a line this repainter cannot read: the index is then rebuilt from the records)."""
    path = run_dir / REPORT_DIR / CARD_INDEX
    try:
        with path.open("rb") as handle:
            header = json.loads(handle.readline() or b"{}")
            if header.get("digest") != _folder_digest(run_dir, spec):
                return None
            return [load_case_record(_card(_loads(line))) for line in handle if line.strip()]
    except (OSError, ValueError):  # pydantic's ValidationError and RecordVersionError included
        return None


#: Fields of a line that only a detailed card shows (it reads the record's file for them), left
#: out of the records the report holds: a 5,000 x 4 report holds 20,000 of them.
_DETAILED_ONLY = ("timings", "render_flags", "judgement", "decision")


def _card(data: dict) -> dict:
    """A line as the report holds it: without what only detailed cards show, and without what
    a model recorded about its best renders (no card shows that)."""
    for key in _DETAILED_ONLY:
        data.pop(key, None)
    for key in ("best", "round1_best"):
        if isinstance(data.get(key), dict):
            data[key].pop("metadata", None)
    return data


def write_card_index(run_dir: Path, spec, records: list[CaseRecord]) -> None:
    text = io.BytesIO()  # one copy of the index in memory (20,000 lines: tens of MB), not three
    text.write(json.dumps({"digest": _folder_digest(run_dir, spec)}).encode() + b"\n")
    for record in records:
        line = {k: v for k, v in dump_record(record).items() if k not in _NOT_IN_CARDS}
        text.write(json.dumps(line, ensure_ascii=False, allow_nan=False, default=str)
                   .encode("utf-8") + b"\n")
    atomic_write_bytes(run_dir / REPORT_DIR / CARD_INDEX, text.getbuffer())


def load_report_records(store: RunStore, spec, records: list[CaseRecord] | None
                        ) -> tuple[list[CaseRecord], str]:
    """The records the report shows, and what they are: ``"index"`` (the card index's light
    records: no rounds, no descriptions), ``"slim"`` (:class:`repainter.record_index.SlimRecord`:
    enough for every table) or ``"full"``. The cards that show whole histories read the files
    of any but full records."""
    if records is not None:
        return records, "slim" if any(isinstance(r, SlimRecord) for r in records) else "full"
    light = read_card_index(store.root, spec)
    if light is not None:
        return light, "index"
    return read_slim_records(store), "slim"  # one record whole at a time
