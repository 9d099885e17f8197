"""meta-eval's part (e): the ladders again on the renderer nothing was tuned on."""

import json

import pytest

from repainter.bench.meta_eval import meta_eval
from repainter.bench.meta_eval.config import MetaEvalConfig

SIM_LADDER = {"two": {"description": "default sim, then a short token budget", "nested": True,
                      "models": [{"name": "sim"}, {"name": "sim", "params": {"token_budget": 8}}]}}


@pytest.mark.slow
def test_second_renderer_reruns_the_ladders_drawn_painterly(tmp_path):
    data = meta_eval(parts=["ladders", "second_renderer"], ladders=SIM_LADDER, scenes=2,
                     seeds=[5], rounds=1, variants=1, bootstrap_resamples=100,
                     output_dir=str(tmp_path / "work"), validity_path=str(tmp_path / "V.md"))
    second = data["second_renderer"]
    assert second["renderer"] == "painterly" and second["first_renderer"] == "flat"
    assert set(second["ladders"]["two"]["metrics"]) == set(data["ladders"]["two"]["metrics"])
    # the painterly run's references and renders really are drawn painterly
    spec = (tmp_path / "work" / "second-renderer" / "ladders" / "two" / "spec.yaml").read_text()
    assert spec.count("renderer: painterly") >= 3  # two models and the dataset
    markdown = (tmp_path / "V.md").read_text()
    assert "## (e) The second renderer" in markdown
    assert "Second renderer `painterly`" in markdown
    assert json.loads((tmp_path / "validity.json").read_text())["second_renderer"]["renderer"] \
        == "painterly"


def test_second_renderer_is_skipped_with_its_reason_for_models_that_cannot_change(tmp_path):
    ladder = {"proc": {"description": "procedural", "nested": True,
                       "models": [{"name": "procedural"},
                                  {"name": "procedural", "params": {"ignore": ["color"]}}]}}
    from repainter.bench.meta_eval.renderers import run_second_renderer

    config = MetaEvalConfig(ladders=ladder, output_dir=str(tmp_path))
    from repainter.bench.meta_eval.ladders import Ladder

    ladders = {n: Ladder.from_data(n, d) for n, d in ladder.items()}
    found = run_second_renderer(config, ladders, run_ladders=None)
    assert found["skipped"].startswith("ladder 'proc' has models that are not the sim model")


def test_second_renderer_defaults_to_the_other_renderer_and_refuses_the_same():
    assert MetaEvalConfig().second_renderer == "painterly"
    assert MetaEvalConfig(renderer="painterly").second_renderer == "flat"
    with pytest.raises(ValueError, match="is the renderer the ladders already use"):
        MetaEvalConfig(renderer="flat", second_renderer="flat")
