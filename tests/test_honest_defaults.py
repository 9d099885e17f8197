"""The offline world's models on other data: warned in the terminal, run.json and the report;
export-preferences refuses unless forced (issue 15 item 8)."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from repainter.cli import app

runner = CliRunner()


def test_offline_world_models_on_photos_are_flagged_everywhere(tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i, colour in enumerate(["red", "navy"]):  # two colours: a constant image is refused
        image = Image.new("RGB", (64, 64), colour)
        image.paste("white", (16, 16, 48, 48))
        image.save(photos / f"p{i}.png")
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--set", "dataset.name=folder", "--set",
                                 f"dataset.params.path={photos}", "--rounds", "1", "--variants", "1",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.stderr and "only understand the world's scenes" in result.stderr
    info = json.loads((out / "run.json").read_text())
    assert info["warnings"] and "use real models for photos" in info["warnings"][0]
    html = (out / "report" / "index.html").read_text()
    assert 'class="banner"' in html and "only understand the world" in html

    refused = runner.invoke(app, ["export-preferences", str(out), str(tmp_path / "prefs")])
    assert refused.exit_code == 2 and "--force" in refused.stderr
    forced = runner.invoke(app, ["export-preferences", str(out), str(tmp_path / "prefs"), "--force"])
    assert forced.exit_code == 0, forced.output


def test_the_world_itself_has_no_warning(small_spec):
    import repainter

    result = repainter.run(small_spec, dataset={"limit": 1}, loop={"rounds": 1, "variants": 1})
    assert result.info.warnings == []
    assert 'class="banner"' not in (result.run_dir / "report" / "index.html").read_text()


def test_an_mllm_list_is_checked_member_by_member():
    """A grid spec (several MLLMs) gets the same warning, naming every offline-world MLLM."""
    from repainter.spec import RunSpec
    from repainter.spec_checks import offline_world_warnings

    spec = RunSpec.model_validate({
        "dataset": {"name": "folder", "params": {"path": "photos"}},
        "t2i": [{"name": "diffusers", "params": {"model": "some/model"}}],
        "mllm": [{"name": "sim-describer", "label": "a"}, {"name": "scene-analyst", "label": "b"}],
    })
    (warning,) = offline_world_warnings(spec)
    assert "scene-analyst" in warning and "sim-describer" in warning
