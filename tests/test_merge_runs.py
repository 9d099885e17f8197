"""repainter compare RUN_A RUN_B: one leaderboard from finished runs, nothing run again."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import repainter
from repainter.cli import app
from repainter.errors import UserError
from repainter.merge_runs import merge_runs
from repainter.store import RunStore

runner = CliRunner()
BASE = {"dataset": {"limit": 2}, "loop": {"rounds": 1, "variants": 1}}


def _run(tmp_path, name, t2i, **extra):
    spec = repainter.build_spec({**BASE, **extra, "output_dir": str(tmp_path / name), "t2i": [t2i]})
    return repainter.run(spec)


def test_two_finished_runs_make_one_comparison(tmp_path):
    a = _run(tmp_path, "a", "procedural")
    b = _run(tmp_path, "b", {"name": "procedural", "label": "colourblind", "params": {"ignore": ["color"]}})
    result = runner.invoke(app, ["compare", str(a.run_dir), str(b.run_dir), "-o", str(tmp_path / "ab"),
                                 "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert set(summary["models"]) == {"procedural", "colourblind"}
    board = {row["model"]: row for row in json.loads((tmp_path / "ab" / "leaderboard.json").read_text())["models"]}
    assert RunStore(tmp_path / "ab").read_run_info().merged_from == [str(a.run_dir), str(b.run_dir)]
    # the numbers are the runs' own, not re-run
    assert board["procedural"]["selection"]["mean"] == pytest.approx(a.leaderboard[0].selection.mean)
    assert board["colourblind"]["selection"]["mean"] == pytest.approx(b.leaderboard[0].selection.mean)
    html = (tmp_path / "ab" / "report" / "index.html").read_text()
    assert "colourblind" in html
    record = json.loads(next((tmp_path / "ab" / "cases" / "colourblind").glob("*.json")).read_text())
    assert (tmp_path / "ab" / record["best"]["image"]).exists()


def test_different_protocols_are_refused(tmp_path):
    a = _run(tmp_path, "a", "procedural")
    b = _run(tmp_path, "b", {"name": "procedural", "label": "other"}, seed=5)
    with pytest.raises(UserError, match="differs in: seed"):
        merge_runs([a.run_dir, b.run_dir], tmp_path / "ab")
    result = runner.invoke(app, ["compare", str(a.run_dir), str(b.run_dir)])
    assert result.exit_code == 2 and "different protocol" in result.stderr
