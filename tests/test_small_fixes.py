"""Issue 15 item 10: the smaller things a new user trips over."""

from __future__ import annotations

import json
import os
import stat

from typer.testing import CliRunner

import repainter
from repainter.cli import app
from repainter.images import atomic_write_bytes

runner = CliRunner()


def test_help_keeps_brackets_and_dar_help_suggests_a_valid_set():
    assert "{ignore: [color]}" in " ".join(runner.invoke(app, ["compare", "--help"]).stdout.split())
    dar_help = " ".join(runner.invoke(app, ["dar", "--help"]).stdout.split())
    assert "--set alpha=0.3" in dar_help and "loop.rounds" not in dar_help


def test_ls_describes_lazy_components_and_presets_without_importing_them():
    result = runner.invoke(app, ["ls"])
    assert result.exit_code == 0
    assert "(lazy)" not in result.stdout
    assert "diffusers text-to-image pipeline" in result.stdout
    assert "GILL evaluation" in result.stdout and "the procedural world" in result.stdout


def test_atomic_files_follow_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        from repainter import images

        images._UMASK = 0o022
        atomic_write_bytes(tmp_path / "a.json", b"{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.json").stat().st_mode) == 0o644


def test_rescore_table_shows_the_new_metric_and_summary_has_intervals(small_spec):
    result = repainter.run(small_spec, dataset={"limit": 2}, loop={"rounds": 1, "variants": 1})
    assert len(repr(result)) < 400 and "procedural" in repr(result)
    summary = result.summary()["models"]["procedural"]
    low, high = summary["selection_final_best_ci95"]
    assert low <= summary["selection_final_best"] <= high
    assert summary["metrics"]["ssim"]["ci95"][0] <= summary["metrics"]["ssim"]["mean"]
    rescored = runner.invoke(app, ["rescore", str(result.run_dir), "-m", "psnr"])
    assert rescored.exit_code == 0, rescored.output
    header = rescored.stdout
    assert "psnr" in header and "judge: semantic (1-5)" in " ".join(header.split())
    as_json = runner.invoke(app, ["rescore", str(result.run_dir), "-m", "psnr", "--json"])
    assert "psnr" in json.loads(as_json.stdout)["models"]["procedural"]["metrics"]
