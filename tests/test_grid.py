"""Several MLLMs in one run: the MLLM x T2I grid (issue 17)."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from repainter.cli import app
from repainter.report.leaderboard import read_leaderboard
from repainter.result import RunResult
from repainter.runner import run
from repainter.spec import RunSpec, build_spec

SHARP = {"name": "sim-describer", "label": "sharp"}
BLURRY = {"name": "sim-describer", "label": "blurry", "params": {"resolution": 48, "noise": 3.0}}
GOOD = {"name": "sim", "label": "good"}
BAD = {"name": "sim", "label": "bad", "params": {"spatial_error": 0.6, "count_error": 0.3}}


def grid_spec(tmp_path, mllm, t2i=(GOOD, BAD), cases=2, **extra) -> RunSpec:
    return build_spec({
        "name": "grid", "output_dir": str(tmp_path / "run"), "mllm": list(mllm),
        "t2i": list(t2i), "metrics": ["scene_truth"], "selection": {"scene_truth": 1.0},
        "judge": False, "loop": {"rounds": 1, "variants": 2}, "dataset": {"limit": cases},
        **extra,
    })


def test_single_mllm_specs_keep_their_fingerprint():
    # values computed on main before issue 17 (commit ccf55a7): old run folders still resume;
    # the metrics and selection are that commit's defaults (issue 11 later added texture_energy)
    # and that commit's loop (refine: the default until 0.3.0, which a stored spec.yaml
    # without loop.strategy still means, repainter.spec.load_run_spec)
    before = {"metrics": ["lab_layout", "ssim", "color_histogram", "scene_truth"],
              "selection": {"lab_layout": 1.0}, "loop": {"strategy": "refine"}}
    assert RunSpec(**before).fingerprint() == "a855023a51c0b8ef"
    assert RunSpec(t2i=["sim", "procedural"], mllm="procedural-mllm",
                   **before).fingerprint() == "f562963c8c983bd3"
    assert not RunSpec().is_grid and RunSpec(mllm=["sim-describer"]).is_grid


def test_mllm_labels_must_differ():
    with pytest.raises(ValueError, match="MLLMs need distinct labels"):
        RunSpec(mllm=["sim-describer", "sim-describer"])


def test_two_by_two_grid_end_to_end(tmp_path):
    result = run(grid_spec(tmp_path, [SHARP, BLURRY]))
    root = tmp_path / "run"
    cells = {row.model for row in result.leaderboard}
    assert cells == {"good@sharp", "bad@sharp", "good@blurry", "bad@blurry"}
    assert all(row.done == 2 for row in result.leaderboard)
    # descriptions per (reference, MLLM): each MLLM's sub-run holds its own, never shared
    for mllm in ("sharp", "blurry"):
        assert len(list((root / "mllm" / mllm / "descriptions").glob("*.json"))) == 2
    one = json.loads(next((root / "mllm" / "sharp" / "descriptions").glob("*.json")).read_text())
    same = root / "mllm" / "blurry" / "descriptions" / next(
        (root / "mllm" / "sharp" / "descriptions").glob("*.json")).name
    assert json.loads(same.read_text()) != one  # a different describer saw it differently

    board = json.loads((root / "leaderboard.json").read_text())
    assert board["schema_version"] == 1
    grid = board["grid"]
    for t2i in ("good", "bad"):
        ranking = grid["mllm_by_t2i"][t2i]
        assert {r["mllm"] for r in ranking["ranking"]} == {"sharp", "blurry"}
        assert [t["n"] for t in ranking["comparisons"]["tests"]] == [2]
    assert set(grid["t2i_by_mllm"]) == {"sharp", "blurry"}
    assert grid["mllm_usage"]["sharp"]["calls"] > 0
    assert read_leaderboard(root).grid.mllm_by_t2i["good"].ranking[0].rank == 1
    markdown = (root / "leaderboard.md").read_text()
    assert "MLLM x T2I grid" in markdown and "MLLMs ranked for T2I good" in markdown
    report = (root / "report" / "index.html").read_text()
    assert "<table>" in report and "blurry" in report
    assert (root / "report" / "../mllm/sharp/report/index.html").is_file()
    assert "../mllm/sharp/report/index.html" in report
    (root / "report" / "index.html").unlink()  # `repainter report` rebuilds the grid page
    assert CliRunner().invoke(app, ["report", str(root)]).exit_code == 0
    assert "MLLM x T2I grid" in (root / "report" / "index.html").read_text()
    lines = [json.loads(line) for line in (root / "results.jsonl").read_text().splitlines()]
    assert {(r["t2i"], r["mllm"]) for r in lines} == {(t, m) for t in ("good", "bad")
                                                      for m in ("sharp", "blurry")}

    loaded = RunResult.load(root)
    assert {r.model for r in loaded.leaderboard} == cells
    frame = loaded.to_pandas()
    assert set(frame["mllm"]) == {"sharp", "blurry"}
    assert all(__import__("os").path.exists(p) for p in frame["round_best_image"])


def test_growing_by_one_mllm_runs_only_the_new_cells(tmp_path):
    run(grid_spec(tmp_path, [SHARP, BLURRY]))
    third = {"name": "sim-describer", "label": "coarse", "params": {"resolution": 96}}
    grown = run(grid_spec(tmp_path, [SHARP, BLURRY, third]))
    usage = grown.info.mllm_usage
    assert usage["sharp"].get("calls", 0) == 0 and usage["blurry"].get("calls", 0) == 0
    assert usage["coarse"]["calls"] > 0
    assert len(grown.leaderboard) == 6


def test_compare_short_form_ranks_mllms(tmp_path):
    out = tmp_path / "cmp"
    result = CliRunner().invoke(app, [
        "compare", "--mllm", json.dumps(SHARP), "--mllm", json.dumps(BLURRY), "--t2i", "sim",
        "-o", str(out), "--limit", "2", "--set", "loop.rounds=1", "--set", "loop.variants=2",
        "--set", "judge=false", "--json"])
    assert result.exit_code == 0, result.output
    grid = json.loads((out / "leaderboard.json").read_text())["grid"]
    assert [r["mllm"] for r in grid["mllm_by_t2i"]["sim"]["ranking"]] != []
    assert grid["mllm_by_t2i"]["sim"]["comparisons"]["tests"][0]["p_value"] is not None
    assert "MLLM x T2I grid" in (out / "report" / "index.html").read_text()


def test_loopback_openai_server_as_a_second_mllm(tmp_path, monkeypatch):
    pytest.importorskip("openai")
    from repainter.testing.openai_server import OpenAICompatServer

    monkeypatch.setenv("TEST_MLLM_KEY", "sk-test-grid")
    with OpenAICompatServer() as server:
        remote = {"name": "openai", "label": "remote",
                  "params": {"model": "fake-model", "base_url": server.url,
                             "api_key_env": "TEST_MLLM_KEY", "retry_initial_wait": 0.001,
                             "retry_max_wait": 0.05, "timeout": 5.0}}
        result = run(grid_spec(tmp_path, [SHARP, remote], t2i=[GOOD]))
        assert server.stats()["requests"] > 0
    rows = {row.mllm: row for row in result.leaderboard}
    assert rows["remote"].done == 2 and rows["sharp"].done == 2
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert board["grid"]["mllm_usage"]["remote"].get("total_tokens", 0) > 0


def test_adaptive_grid_ranks_mllms_and_stops_when_settled(tmp_path):
    blind = {"name": "sim-describer", "label": "blind", "params": {"resolution": 32, "noise": 6.0}}
    spec = grid_spec(tmp_path, [SHARP, blind], t2i=[GOOD], cases=30,
                     budget={"mode": "adaptive", "min_cases": 6, "batch": 6, "alpha": 0.05})
    result = run(spec)
    summary = result.info.adaptive
    assert [(p.model_a, p.model_b) for p in summary.pairs] == [("good@sharp", "good@blind")]
    assert summary.references_used <= 30
    assert {r.case_id for r in result.records} == set(summary.order)
    assert "Adaptive budget" in (tmp_path / "run" / "report" / "index.html").read_text()
