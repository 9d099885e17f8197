"""Model-at-a-time: a comparison of three tiny diffusers pipelines never holds two at once, gives
the same records as case-major order, and commands that need no model never load one."""

from __future__ import annotations

import gc
import json
import shutil
import weakref

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

from typer.testing import CliRunner  # noqa: E402

from repainter import runner  # noqa: E402
from repainter.backends.t2i.diffusers import DiffusersT2I  # noqa: E402
from repainter.cli import app  # noqa: E402
from repainter.spec import build_spec  # noqa: E402

MODELS = ("sd-a", "sd-b", "sd-c")


@pytest.fixture(scope="module")
def three_models(tiny_sd_path, tmp_path_factory):
    """Three copies of the tiny pipeline: three separate loads, as three real models would be."""
    folder = tmp_path_factory.mktemp("models")
    return {label: shutil.copytree(tiny_sd_path, folder / label) for label in MODELS}


@pytest.fixture
def pipelines(monkeypatch):
    """Every pipeline DiffusersT2I loads (weakly held) and the most alive at any render."""
    log = {"loaded": [], "max_alive": 0}
    load, generate = DiffusersT2I._load, DiffusersT2I.generate

    def alive() -> int:
        gc.collect()
        return sum(ref() is not None for ref in log["loaded"])

    def tracked_load(self):
        pipe = load(self)
        log["loaded"].append(weakref.ref(pipe))
        return pipe

    def tracked_generate(self, prompts, seeds):
        log["max_alive"] = max(log["max_alive"], alive())
        return generate(self, prompts, seeds)

    monkeypatch.setattr(DiffusersT2I, "_load", tracked_load)
    monkeypatch.setattr(DiffusersT2I, "generate", tracked_generate)
    log["alive"] = alive
    return log


def _spec(folder, models, schedule):
    return build_spec({
        "output_dir": str(folder), "dataset": {"limit": 2},
        "loop": {"rounds": 1, "variants": 2}, "judge": False,
        "t2i": [{"name": "diffusers", "label": label,
                 "params": {"model": str(path), "device": "cpu", "steps": 2, "width": 32,
                            "height": 32}} for label, path in models.items()],
        "runtime": {"schedule": schedule},
        # weight-free metrics: the paper preset's CLIP / DINOv2 weights are not here
        "metrics": ["ssim", "color_histogram"], "selection": {"ssim": 1.0},
    })


def _records(result):
    return [r.comparable() for r in result.records]  # timings are wall-clock seconds


@pytest.mark.slow
def test_model_major_holds_one_pipeline_at_a_time(tmp_path, three_models, pipelines):
    result = runner.run(_spec(tmp_path / "mm", three_models, "model_major"))
    assert result.info.cases.done == 6
    assert len(pipelines["loaded"]) == 3 and pipelines["max_alive"] == 1
    assert pipelines["alive"]() == 0, "a pipeline outlived the run"
    assert set(result.info.models) == set(MODELS)
    assert all(m["loaded"] for m in result.info.models.values())

    # the same comparison in case-major order: same records, but all three held together
    pipelines["max_alive"] = 0
    case_major = runner.run(_spec(tmp_path / "cm", three_models, "case_major"))
    assert pipelines["max_alive"] == 3
    assert _records(case_major) == _records(result)


@pytest.mark.slow
def test_no_pipeline_for_ls_validate_report_or_a_finished_rerun(tmp_path, three_models,
                                                                  pipelines):
    spec = _spec(tmp_path / "run", three_models, "model_major")
    runner.run(spec)
    loaded = len(pipelines["loaded"])
    spec_file = tmp_path / "run" / "spec.yaml"
    cli = CliRunner()
    assert cli.invoke(app, ["ls"]).exit_code == 0
    assert cli.invoke(app, ["validate", str(spec_file)]).exit_code == 0
    assert cli.invoke(app, ["report", str(tmp_path / "run")]).exit_code == 0
    again = runner.run(spec)
    assert again.info.cases.reused == 6
    assert len(pipelines["loaded"]) == loaded, "a pipeline was loaded without a render"
    assert json.loads((tmp_path / "run" / "run.json").read_text())["backend"] == {}
