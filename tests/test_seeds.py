"""Several seeds of one spec: sub-runs, and seed-aggregated means with the seed spread."""

import json

from typer.testing import CliRunner

from repainter.cli import app
from repainter.runner import run
from repainter.spec import build_spec


def test_seeds_run_one_sub_run_each_and_aggregate(tmp_path):
    spec = build_spec({"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 2}, "judge": False,
                       "loop": {"rounds": 1, "variants": 2}, "seeds": [0, 1],
                       "t2i": ["procedural", {"name": "procedural", "label": "colourblind",
                                              "params": {"ignore": ["color"]}}]})
    result = run(spec)
    root = tmp_path / "run"
    for seed in (0, 1):
        sub = json.loads((root / f"seed-{seed}" / "run.json").read_text())
        assert sub["status"] == "finished"
        assert f"seed: {seed}" in (root / f"seed-{seed}" / "spec.yaml").read_text()
    assert "seeds:" in (root / "spec.yaml").read_text()
    board = json.loads((root / "leaderboard.json").read_text())
    row = board["models"][0]
    assert board["schema_version"] == 1 and row["seeds"] == 2 and row["done"] == 2
    per_seed = json.loads((root / "seeds.json").read_text())["leaderboards"]
    model_means = [next(r for r in per_seed[s] if r["model"] == row["model"])["selection"]["mean"]
                   for s in ("0", "1")]
    # the same cases finished under both seeds, so the mean of case means is the mean of seed means
    assert abs(row["selection"]["mean"] - sum(model_means) / 2) < 1e-9
    assert row["selection"]["seed_sd"] is not None and row["selection"]["seed_sd"] >= 0
    assert all(m["seed_sd"] is not None for m in row["metrics"].values())
    assert result.leaderboard[0].flat()["selection_final_seed_sd"] == row["selection"]["seed_sd"]
    assert json.loads((root / "run.json").read_text())["seeds"] == [0, 1]
    assert "seed sd" in (root / "leaderboard.md").read_text()
    assert len(result.records) == 8 and {r.seed for r in result.records} == {0, 1}


def test_cli_seeds_flag_checks_its_value(tmp_path):
    outcome = CliRunner().invoke(app, ["run", "--seeds", "0,x", "-o", str(tmp_path / "r")])
    assert outcome.exit_code == 2 and "--seeds" in outcome.output


def test_cost_columns_are_the_seeds_mean(tmp_path):
    spec = build_spec({"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 1}, "judge": False,
                       "loop": {"rounds": 2, "variants": 1}, "seeds": [3, 4]})
    (row,) = run(spec).leaderboard
    assert row.mean_rounds == 2 and row.seconds_per_case > 0
