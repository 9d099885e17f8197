"""Defaults follow the models a spec names, not the bench (issue 24 item 3): a spec with real
models and no metrics gets the reference method's settings and says so; the bench's scene
metrics warn on real models; a truth metric with nothing to grade is refused; a typo'd key gets
a "did you mean"."""

from __future__ import annotations

import json

import pytest
import yaml
from typer.testing import CliRunner

from repainter.cli import app
from repainter.spec import SpecError, build_spec, load_spec

runner = CliRunner()

REAL = {"t2i": [{"name": "diffusers", "params": {"model": "stabilityai/sdxl-turbo"}}],
        "mllm": {"name": "openai", "params": {"model": "gpt-4o"}}}
BENCH_ONLY = {"region_match", "texture_energy", "lab_layout", "scene_truth"}


def _write(tmp_path, data, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def test_real_models_without_metrics_get_the_paper_preset_and_say_why():
    spec = build_spec(REAL)
    assert spec.selection == {"clip_i": 0.5, "dinov2": 0.5}
    assert [m.name for m in spec.metrics] == ["clip_i", "dinov2", "lpips", "ssim"]
    assert not BENCH_ONLY & {m.name for m in spec.metrics}
    assert spec.judge is True and spec.loop.revise_from == "round_best"
    origin = spec.settings_origin()
    assert origin["preset"] == "paper" and origin["why"].startswith("applied automatically")
    assert "t2i diffusers" in origin["why"] and "mllm openai" in origin["why"]


@pytest.mark.parametrize("real", [{"t2i": ["diffusers"]}, {"mllm": "openai"},
                                  {"t2i": [{"name": "my-plugin-model"}]}])
def test_any_real_component_is_enough_and_an_unknown_name_counts_as_real(real):
    assert build_spec(real).selection == {"clip_i": 0.5, "dinov2": 0.5}


def test_the_bench_keeps_its_own_defaults():
    spec = build_spec({})
    assert spec.preset is None and spec.selection == {"region_match": 1.0, "texture_energy": 1.0}
    assert spec.settings_origin()["why"].startswith("the simulation bench's defaults")


def test_an_override_that_names_a_real_model_gets_the_same_defaults_as_a_file():
    """``--set t2i.0.name=diffusers`` on the bench resolves like a file naming diffusers."""
    by_flag = build_spec({}, ["t2i.0.name=diffusers", "t2i.0.params.model=stabilityai/sdxl-turbo",
                              "mllm.name=openai", "mllm.params.model=gpt-4o", "loop.rounds=2"])
    by_file = build_spec({**REAL, "loop": {"rounds": 2}})
    assert by_flag == by_file and by_flag.fingerprint() == by_file.fingerprint()
    assert by_flag.settings_origin() == by_file.settings_origin()


def test_the_spec_choosing_metrics_or_a_preset_is_respected():
    chosen = build_spec({**REAL, "metrics": ["ssim"], "selection": {"ssim": 1}})
    assert chosen.preset is None and chosen.selection == {"ssim": 1}
    assert chosen.settings_origin()["why"] == "the spec's own metrics and selection"
    gill = build_spec({**REAL, "preset": "gill"})
    assert gill.selection == {"clip_i": 1.0} and gill.settings_origin()["why"] == "named in the spec"


def test_metrics_without_a_selection_name_the_way_out():
    with pytest.raises(SpecError, match="preset: paper"):
        build_spec({**REAL, "metrics": ["clip_i", "dinov2"]})


def test_the_resolved_spec_reloads_to_itself(tmp_path):
    """spec.yaml of an auto-preset run reproduces the run (same fingerprint: it resumes)."""
    spec = build_spec(REAL)
    again = load_spec(_write(tmp_path, spec.model_dump(mode="json")))
    assert again == spec and again.fingerprint() == spec.fingerprint()


def test_validate_and_dry_run_name_the_preset_and_never_region_match(tmp_path):
    path = _write(tmp_path, {**REAL, "output_dir": str(tmp_path / "run")})
    ok = runner.invoke(app, ["validate", str(path)])
    assert ok.exit_code == 0, ok.output
    assert "preset paper (applied automatically" in ok.stdout
    shown = runner.invoke(app, ["run", "--spec", str(path), "--dry-run", "--json"])
    plan = json.loads(shown.stdout)
    assert plan["spec"]["selection"] == {"clip_i": 0.5, "dinov2": 0.5}
    assert plan["settings"]["preset"] == "paper" and "region_match" not in shown.stdout
    assert not (tmp_path / "run").exists()


def test_run_json_records_where_the_settings_came_from(tmp_path):
    from repainter.runner import prepare

    plan = prepare(build_spec({**REAL, "output_dir": str(tmp_path / "run")}))
    info = json.loads((plan.store.root / "run.json").read_text())
    assert info["settings"]["preset"] == "paper"
    assert info["settings"]["why"].startswith("applied automatically")


def test_bench_metrics_on_real_models_or_photos_warn(tmp_path):
    from repainter.spec_checks import spec_warnings

    spec = build_spec({**REAL, "metrics": ["ssim", "region_match"],
                       "selection": {"region_match": 1}})
    (warning,) = spec_warnings(spec)
    assert "region_match" in warning and "real models (t2i diffusers, mllm openai)" in warning
    photos = build_spec({"dataset": {"name": "folder", "params": {"path": str(tmp_path)}}})
    assert any("references of dataset 'folder'" in w for w in spec_warnings(photos))
    assert spec_warnings(build_spec({})) == []
    shown = runner.invoke(app, ["validate", str(_write(tmp_path, spec.model_dump(mode="json")))])
    assert shown.exit_code == 0 and "warning" in shown.stdout and "region_match" in shown.stdout


def test_scene_truth_without_drawn_scenes_is_refused_and_left_out_of_defaults(tmp_path):
    folder = {"name": "folder", "params": {"path": str(tmp_path)}}
    # the bench's default list drops it where it could score nothing ...
    assert "scene_truth" not in {m.name for m in build_spec({"dataset": folder}).metrics}
    assert "scene_truth" not in {m.name for m in build_spec({"t2i": ["procedural"]}).metrics}
    assert "scene_truth" in {m.name for m in build_spec({}).metrics}
    # ... and a spec that names it there is refused, with the reason
    path = _write(tmp_path, {"t2i": ["procedural"], "metrics": ["ssim", "scene_truth"],
                             "selection": {"ssim": 1}})
    refused = runner.invoke(app, ["validate", str(path)])
    assert refused.exit_code == 2
    assert "scene_truth" in refused.stderr and "no T2I model (procedural)" in refused.stderr
    # one model that draws is enough: the other is left unscored (a bench-vs-other comparison)
    assert "scene_truth" in {m.name for m in build_spec({"t2i": ["sim", "procedural"]}).metrics}


@pytest.mark.parametrize(("data", "hint"), [
    ({"loop": {"roudns": 3}}, "loop.roudns: unknown key; did you mean 'rounds'?"),
    ({"metircs": ["ssim"]}, "metircs: unknown key; did you mean 'metrics'?"),
    ({"mllm": {"name": "openai", "parms": {}}}, "mllm.parms: unknown key; did you mean 'params'?"),
    ({"t2i": [{"name": "sim", "lable": "a"}]}, "t2i.0.lable: unknown key; did you mean 'label'?"),
])
def test_a_typo_in_a_key_gets_did_you_mean(data, hint):
    with pytest.raises(SpecError) as caught:
        build_spec(data)
    assert hint in str(caught.value)


def test_registry_traits_are_read_without_importing_the_component():
    import subprocess
    import sys

    code = ("import sys; from repainter.registry import METRICS, T2I; "
            "assert 'bench' in METRICS.traits('region_match'); "
            "assert 'needs_drawn_scene' in METRICS.traits('scene_truth'); "
            "assert T2I.traits('diffusers') == frozenset(); "
            "assert 'repainter.bench.sim.truth' not in sys.modules; "
            "assert 'repainter.bench.metrics.region_match' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_ls_marks_the_bench_components():
    listed = runner.invoke(app, ["ls"])
    lines = {line.split("│")[1].strip(): line for line in listed.stdout.splitlines()
             if line.count("│") >= 3}
    assert "[bench]" in lines["sim"] and "[bench]" in lines["region_match"]
    assert "[bench]" not in lines["diffusers"] and "[bench]" not in lines["clip_i"]
