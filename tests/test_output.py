"""Output outside a terminal: progress lines, logs/run.log, --version, full-width tables."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import repainter
from repainter.cli import app
from repainter.logging_setup import ProgressLines

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REPAINTER_PROGRESS_SECONDS": "0",
           "COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "repainter.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_piped_run_prints_progress_lines_full_tables_and_writes_a_log(tmp_path):
    out = tmp_path / "run"
    proc = _cli("run", "--limit", "2", "--rounds", "1", "--variants", "1", "-o", str(out),
                cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    progress = [line for line in proc.stderr.splitlines() if " progress " in line]
    assert [line.split("progress ")[1].split(" ")[0] for line in progress] == ["1/2", "2/2"]
    # stdout is a pipe: the table is printed at full width, not cut at 80 columns
    assert "selection final" in proc.stdout and "selection r1" in proc.stdout
    log = (out / "logs" / "run.log").read_text()
    assert "start: 2 case(s)" in log and log.count(" done selection ") == 2
    assert "run finished" in log


@pytest.mark.slow
def test_quiet_prints_no_progress(tmp_path):
    proc = _cli("run", "--limit", "1", "--rounds", "1", "--variants", "1", "-q", "-o",
                str(tmp_path / "run"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "progress" not in proc.stderr


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.strip() == f"repainter {repainter.__version__}"


def test_progress_lines_are_throttled():
    stream = io.StringIO()
    lines = ProgressLines(stream, interval=3600)
    lines({"event": "start", "total": 3, "models": ["m"]})
    for case in ("a", "b", "c"):
        lines({"event": "case", "model": "m", "case_id": case, "status": "done", "selection": 0.5})
    printed = stream.getvalue().splitlines()
    # start, the first case and the last case; the middle one falls inside the interval
    assert len(printed) == 3 and "1/3" in printed[1] and "3/3" in printed[2]


def test_verbose_shows_info_lines(tmp_path):
    result = runner.invoke(app, ["run", "--limit", "1", "--rounds", "1", "--variants", "1", "-v",
                                 "-o", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "INFO case " in result.stderr and "INFO run finished" in result.stderr
