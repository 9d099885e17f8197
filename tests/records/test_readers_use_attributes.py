"""Readers of case records use the typed models' attributes, never dict-style access (issue 13).

A record part is not a mapping: ``record["model"]`` raises, so a reader left on dict access fails
wherever it runs. The readers then run end to end on the migrated fixture run folder (written by
the code before records were typed): the report, the result frames, rescore, export, merging
and seed averaging.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from repainter.records import load_case_record

RUN_V0 = Path(__file__).resolve().parents[1] / "fixtures" / "run_v0"


def test_a_case_record_is_not_a_mapping():
    record = load_case_record(json.loads((RUN_V0 / "cases" / "sim-a" / "single-00.json").read_text()))
    assert record.model == "sim-a"
    with pytest.raises(TypeError):
        record["model"]  # noqa: B018 - the access itself is the test
    with pytest.raises(AttributeError):
        record.get("model")
    with pytest.raises(TypeError):
        record.rounds[0]["candidates"]  # noqa: B018


def test_readers_of_case_records_run_on_the_migrated_fixture(tmp_path):
    from repainter.export import export_preferences
    from repainter.merge_runs import merge_runs
    from repainter.report.html import write_report
    from repainter.rescore import rescore
    from repainter.result import RunResult
    from repainter.seed_runs import average_over_seeds

    run = Path(shutil.copytree(RUN_V0, tmp_path / "run"))
    other = Path(shutil.copytree(RUN_V0, tmp_path / "other"))
    merge_runs([run, other], out_dir=tmp_path / "merged")
    assert (tmp_path / "merged" / "leaderboard.json").exists()
    write_report(tmp_path / "merged")
    write_report(run)
    assert (run / "report" / "index.html").stat().st_size > 0
    result = RunResult.load(run)
    assert {r.model for r in result.records} == {"sim-a", "sim-b"}
    assert len(result.cases_frame()) == 6
    assert "sim-a" in result._repr_html_()
    result.to_pandas(), result.summary(), result.best_ever_curves()
    averaged = average_over_seeds([result.records, result.records])
    assert len(averaged) == len(result.records)
    rescore(run, ["psnr"], reselect=True, selection={"lab_layout": 0.5, "psnr": 0.5})
    assert all("psnr" in r.final_scores for r in RunResult.load(run).records)
    export_preferences(run, tmp_path / "export", force=True)
    assert any((tmp_path / "export").iterdir())
