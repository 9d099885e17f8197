import json

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
    model = summary["models"]["procedural"]
    assert model["cases"] == 3 and model["done"] == 3
    for key in ("selection_round1_best", "selection_final_best", "object_f1_round1_best",
                "object_f1_final_best"):
        assert 0.0 <= model[key] <= 1.0
    assert model["selection_final_best"] >= model["selection_round1_best"]
    assert (tmp_path / "run" / "leaderboard.md").exists()


def test_run_prints_a_summary_table_and_flags_override(tmp_path):
    result = runner.invoke(
        app, ["run", "--spec", str(_spec(tmp_path)), "--rounds", "1", "--limit", "2", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "procedural" in result.stdout and "run folder" in result.stdout
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
    assert bad.exit_code == 1 and "unknown t2i 'nope'" in bad.output


def test_ls_lists_components_and_presets():
    result = runner.invoke(app, ["ls", "--json"])
    assert result.exit_code == 0
    listed = json.loads(result.stdout)
    assert "procedural" in listed["t2i"] and "scene-analyst" in listed["mllm"]
    assert {"ssim", "object_f1", "clip_i"} <= set(listed["metrics"])
    assert "world" in listed["datasets"] and {"paper", "gill"} <= set(listed["presets"])
    table = runner.invoke(app, ["ls"])
    assert table.exit_code == 0 and "scene-analyst" in table.stdout
