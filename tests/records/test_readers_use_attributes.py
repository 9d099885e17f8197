"""Readers of case records use the typed models' attributes, never dict-style access (issue 13).

Case records still answer ``record["key"]`` for the modules not converted yet; here that access
fails when it comes from inside the package (but those modules), while the readers run on the
migrated fixture run folder: the report, the result frames, rescore, export, merging and seeds.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from repainter.records.case import RecordPart

PACKAGE = Path(__file__).resolve().parents[2] / "repainter"
#: Modules that still read records dict-style: the leaderboard is converted on branch i13-board.
NOT_CONVERTED = {PACKAGE / "report" / "leaderboard.py", PACKAGE / "records" / "case.py"}
RUN_V0 = Path(__file__).resolve().parents[1] / "fixtures" / "run_v0"


@pytest.fixture
def strict_records(monkeypatch):
    """Dict-style access to a record from a converted package module raises."""
    def guarded(name):
        original = getattr(RecordPart, name)

        def access(self, *args, **kwargs):
            caller = Path(sys._getframe(1).f_code.co_filename).resolve()
            if caller.is_relative_to(PACKAGE) and caller not in NOT_CONVERTED:
                line = sys._getframe(1).f_lineno
                raise AssertionError(f"{caller.relative_to(PACKAGE)}:{line} reads a case record "
                                     f"dict-style ({name}); use its attributes")
            return original(self, *args, **kwargs)
        return access

    for name in ("__getitem__", "get", "__contains__", "keys"):
        monkeypatch.setattr(RecordPart, name, guarded(name))


def test_readers_of_case_records_use_attributes(tmp_path, strict_records):
    from repainter.export import export_preferences
    from repainter.merge_runs import merge_runs
    from repainter.report.html import write_report
    from repainter.rescore import rescore
    from repainter.result import RunResult
    from repainter.seeds import average_over_seeds

    run = Path(shutil.copytree(RUN_V0, tmp_path / "run"))
    other = Path(shutil.copytree(RUN_V0, tmp_path / "other"))
    merge_runs([run, other], out_dir=tmp_path / "merged")
    write_report(tmp_path / "merged")
    write_report(run)
    result = RunResult.load(run)
    result.to_pandas(), result.cases_frame(), result._repr_html_(), result.summary()
    result.best_ever_curves()
    average_over_seeds([result.records, result.records])
    rescore(run, ["psnr"], reselect=True, selection={"lab_layout": 0.5, "psnr": 0.5})
    export_preferences(run, tmp_path / "export", force=True)
