"""DAR records are typed and versioned; a DAR folder written before versions existed is migrated."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from repainter.dar import read_result, write_dar
from repainter.records.base import RecordVersionError
from repainter.records.dar import DARSummary, DARTurnRecord, load_record

#: Written by repainter at b660596 (before schema versions), see tests/fixtures/README.md.
DAR_V0 = Path(__file__).resolve().parents[1] / "fixtures" / "dar_v0"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def test_a_dar_folder_from_before_schema_versions_is_read_and_rewritten_at_the_current_version(tmp_path):
    old_rows = _lines(DAR_V0 / "dar.jsonl")
    old_summary = json.loads((DAR_V0 / "dar_summary.json").read_text(encoding="utf-8"))
    assert "schema_version" not in old_summary and "schema_version" not in old_rows[0]

    result = read_result(DAR_V0)
    assert len(result.records) == len(old_rows) == 9
    assert [r.rank_fused for r in result.records] == [row["rank_fused"] for row in old_rows]
    # the per-turn table recomputed from the migrated rows is the one the old code wrote, its
    # hits@K now named hits@K_per_turn (hits@K is ChatIR's cumulative figure since summary v2)
    def per_turn(turns):
        return [{"turn": t["turn"], "cases": t["cases"],
                 **{m: {k.removesuffix("_per_turn"): v for k, v in t[m].items()
                        if k.endswith("_per_turn") or k == "mean_rank"} for m in ("text", "fused")}}
                for t in turns]
    assert per_turn(result.summary()["turns"]) == old_summary["turns"]
    assert result.config == old_summary["config"]

    folder = tmp_path / "dar"
    shutil.copytree(DAR_V0, folder)
    write_dar(result, folder)
    new_rows = _lines(folder / "dar.jsonl")
    new_summary = json.loads((folder / "dar_summary.json").read_text(encoding="utf-8"))
    assert {row["schema_version"] for row in new_rows} == {1}
    assert new_summary["schema_version"] == 2
    assert [{k: v for k, v in row.items() if k != "schema_version"} for row in new_rows] == old_rows
    assert per_turn(new_summary["turns"]) == old_summary["turns"]
    assert ({k: v for k, v in new_summary.items() if k not in ("schema_version", "turns")}
            == {k: v for k, v in old_summary.items() if k != "turns"})
    again = read_result(folder)
    assert [r.as_dict() for r in again.records] == [r.as_dict() for r in result.records]


def test_dar_records_refuse_newer_versions_and_bad_values():
    row = _lines(DAR_V0 / "dar.jsonl")[0]
    with pytest.raises(RecordVersionError, match="dar_turn has schema_version 2 .* reads up to 1"):
        load_record(DARTurnRecord, {**row, "schema_version": 2})
    with pytest.raises(ValidationError, match="text_ahead"):
        load_record(DARTurnRecord, {**row, "text_ahead": -1})
    summary = json.loads((DAR_V0 / "dar_summary.json").read_text(encoding="utf-8"))
    summary["turns"][0]["fused"]["hits@10"] = float("nan")
    with pytest.raises(ValidationError, match="hits@10"):
        load_record(DARSummary, summary)
