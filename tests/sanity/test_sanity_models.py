"""``repainter sanity`` end to end with real architectures: a tiny random-weight diffusers
pipeline, open_clip CLIP and DINOv2 (saved to disk, loaded through the user's code path), and
the real ``openai`` client talking to an OpenAI-compatible server on loopback.

This checks the mechanics only: with random weights the renders are noise and the metrics'
verdicts mean nothing, so no tau is asserted beyond being a number in [-1, 1].
"""

from __future__ import annotations

import json

import pytest
import yaml

pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("open_clip")
pytest.importorskip("openai")

from backends.test_openai_mllm import SECRET, FakeServer  # noqa: E402
from backends.tiny_models import TINY_OPEN_CLIP, TINY_OPEN_CLIP_NAME  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from repainter.cli import app  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.models]


@pytest.fixture
def server():
    srv = FakeServer()
    yield srv
    srv.close()


def _spec(tmp_path, server, tiny_sd_path, tiny_open_clip_checkpoint, tiny_dinov2_path) -> dict:
    return {
        "name": "sanity-tiny",
        "output_dir": str(tmp_path / "run"),
        "dataset": {"name": "world", "limit": 3},
        "t2i": [{"name": "diffusers", "label": "tiny-sd",
                 "params": {"model": str(tiny_sd_path), "device": "cpu", "steps": 2,
                            "width": 64, "height": 64, "guidance_scale": 1.0}}],
        "mllm": {"name": "openai",
                 "params": {"model": "fake-model", "base_url": server.url,
                            "api_key_env": "TEST_MLLM_KEY", "retry_initial_wait": 0.001,
                            "retry_max_wait": 0.05, "timeout": 5.0}},
        "metrics": [
            {"name": "clip_i", "params": {"model": TINY_OPEN_CLIP_NAME, "pretrained": None,
                                          "checkpoint": str(tiny_open_clip_checkpoint),
                                          "model_config": TINY_OPEN_CLIP, "device": "cpu"}},
            {"name": "dinov2", "params": {"model": str(tiny_dinov2_path), "device": "cpu"}},
        ],
        "selection": {"clip_i": 0.5, "dinov2": 0.5},
        "loop": {"rounds": 1, "variants": 2},
    }


def test_the_command_runs_end_to_end_on_real_architectures_and_writes_the_section(
        tmp_path, monkeypatch, server, tiny_sd_path, tiny_open_clip_checkpoint, tiny_dinov2_path):
    monkeypatch.setenv("TEST_MLLM_KEY", SECRET)
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(_spec(tmp_path, server, tiny_sd_path,
                                              tiny_open_clip_checkpoint, tiny_dinov2_path)))
    runner = CliRunner()
    done = runner.invoke(app, ["run", "--spec", str(spec_path), "--json"])
    assert done.exit_code == 0, done.output
    result = runner.invoke(app, ["sanity", "--run", str(tmp_path / "run"), "--references", "3",
                                 "--corruptions", "blur,mask", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    ladders = data["ladders"]
    assert set(ladders) == {"prompt", "corruption:blur", "corruption:mask", "sampler"}
    # diffusers: the sampler ladder runs from the spec's 2 steps down to 1, as an empirical check
    assert ladders["sampler"]["required"] is False
    assert ladders["sampler"]["models"]["tiny-sd"]["rungs"] == ["2 steps", "1 steps"]
    for name, ladder in ladders.items():
        metrics = ladder["models"]["tiny-sd"]["metrics"]
        assert {"clip_i", "dinov2", "selection"} <= set(metrics)
        # the judge rates the mask corruption only by default (each rating is an MLLM call)
        assert ("judge" in metrics) == (name != "corruption:blur"), name
        assert all(-1.0 <= m["tau"] <= 1.0 for m in metrics.values())
    assert set(data["corruption_sources"]["tiny-sd"].values()) == {"loop best"}
    assert set(data["judge_agreement"]["tiny-sd"]) >= {"prompt", "corruption", "sampler"}
    root = tmp_path / "run"
    assert "## Metric sanity" in (root / "leaderboard.md").read_text()
    html = (root / "report" / "index.html").read_text()
    assert 'id="sanity"' in html and "sampler-budget ladder" in html
    assert "# Metric sanity: sanity-tiny" in (root / "SANITY.md").read_text()
