import json

import pytest
import yaml
from typer.testing import CliRunner

from repainter.cli import app

runner = CliRunner()


def _spec(tmp_path, **extra):
    path = tmp_path / "spec.yaml"
    data = {"output_dir": str(tmp_path / "run"), "dataset": {"limit": 3},
            "loop": {"rounds": 2, "variants": 2}, **extra}
    path.write_text(yaml.safe_dump(data))
    return path


def test_run_json_summary(tmp_path):
    result = runner.invoke(app, ["run", "--spec", str(_spec(tmp_path)), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    model = summary["models"]["sim"]
    assert model["cases"] == 3 and model["done"] == 3
    for key in ("selection_round1_best", "selection_final_best", "scene_truth_round1_best",
                "scene_truth_final_best"):
        assert 0.0 <= model[key] <= 1.0
    assert model["selection_final_best"] >= model["selection_round1_best"]
    assert (tmp_path / "run" / "leaderboard.md").exists()


def test_run_prints_a_summary_table_and_flags_override(tmp_path):
    result = runner.invoke(
        app, ["run", "--spec", str(_spec(tmp_path)), "--rounds", "1", "--limit", "2", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "sim" in result.stdout and "run folder" in result.stdout
    saved = yaml.safe_load((tmp_path / "run" / "spec.yaml").read_text())
    assert saved["loop"]["rounds"] == 1 and saved["dataset"]["limit"] == 2


def test_invalid_spec_exits_2_with_a_reason(tmp_path):
    result = runner.invoke(app, ["run", "--spec", str(_spec(tmp_path)), "--set", "loop.rounds=0"])
    assert result.exit_code == 2
    assert "rounds" in result.output


def test_rerun_into_a_folder_of_another_spec_is_refused(tmp_path):
    spec = _spec(tmp_path)
    assert runner.invoke(app, ["run", "--spec", str(spec), "-q", "--limit", "1"]).exit_code == 0
    clash = runner.invoke(app, ["run", "--spec", str(spec), "-q", "--limit", "1", "--set", "seed=9"])
    assert clash.exit_code == 2 and "different spec" in clash.output


def test_validate_accepts_good_and_rejects_unknown_components(tmp_path):
    good = runner.invoke(app, ["validate", str(_spec(tmp_path))])
    assert good.exit_code == 0 and "ok" in good.stdout
    bad = runner.invoke(app, ["validate", str(_spec(tmp_path, t2i=[{"name": "nope"}]))])
    assert bad.exit_code == 2 and "unknown t2i 'nope'" in bad.output


def test_ls_lists_components_and_presets():
    result = runner.invoke(app, ["ls", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert "procedural" in listed["t2i"] and "scene-analyst" in listed["mllm"]
    assert {"ssim", "object_f1", "clip_i"} <= set(listed["metrics"])
    assert "world" in listed["datasets"] and {"paper", "gill"} <= set(listed["presets"])
    table = runner.invoke(app, ["ls"])
    assert table.exit_code == 0 and "scene-analyst" in table.stdout


@pytest.mark.slow
def test_compare_ranks_the_better_model_first_with_a_significant_test(tmp_path):
    result = runner.invoke(app, [
        "compare", "--t2i", "procedural",
        "--t2i", "{name: procedural, label: colourblind, params: {ignore: [color]}}",
        "--spec", str(_spec(tmp_path, preset="world", dataset={"limit": 12})), "--json",
    ])
    assert result.exit_code == 0, result.output
    models = json.loads(result.stdout)["models"]
    assert list(models) == ["procedural", "colourblind"]
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    (comparison,) = board["comparisons"]["selection"]["tests"]
    assert comparison["model_a"] == "procedural" and comparison["n"] == 12
    assert comparison["mean_difference"] > 0 and comparison["significant"]
    # the description is computed once per reference and shared by both models
    assert len(list((tmp_path / "run" / "descriptions").glob("*.json"))) == 12


def test_compare_needs_two_models_and_a_fixed_budget(tmp_path):
    one = runner.invoke(app, ["compare", "--t2i", "procedural", "--spec", str(_spec(tmp_path))])
    assert one.exit_code == 2 and "at least two" in one.output
    early = runner.invoke(app, [
        "compare", "--t2i", "procedural", "--t2i", "{name: procedural, label: b}",
        "--spec", str(_spec(tmp_path)), "--set", "loop.early_stop.patience=1",
    ])
    assert early.exit_code == 2 and "early_stop" in early.output


def test_doctor_reports_missing_weights_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))
    builtin = runner.invoke(app, ["doctor", "--spec", str(_spec(tmp_path)), "--json"])
    assert builtin.exit_code == 0, builtin.output
    assert all(row["present"] for row in json.loads(builtin.stdout))
    paper = runner.invoke(app, ["doctor", "--spec", str(_spec(tmp_path, preset="paper")), "--json"])
    assert paper.exit_code == 1
    missing = {row["model"] for row in json.loads(paper.stdout) if not row["present"]}
    assert "facebook/dinov2-base" in missing
