"""Run folders per spec, environment capture, --dry-run, common flags and keyword overrides."""

from __future__ import annotations

import json
from importlib import metadata

import yaml
from typer.testing import CliRunner

import repainter
from repainter.cli import app
from repainter.spec import RunSpec

runner = CliRunner()
SMALL = ["--limit", "1", "--set", "loop.rounds=1", "--set", "loop.variants=1", "-q"]


def test_compare_and_a_plain_run_get_their_own_default_folders(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    compare = runner.invoke(app, ["compare", "-m", "procedural", "-m",
                                  "{name: procedural, label: colourblind, params: {ignore: [color]}}",
                                  *SMALL])
    assert compare.exit_code == 0, compare.output
    plain = runner.invoke(app, ["run", *SMALL])
    assert plain.exit_code == 0, plain.output
    folders = sorted(p.name for p in (tmp_path / "runs").iterdir())
    assert len(folders) == 2
    assert folders[0].startswith("world-procedural+colourblind-")
    assert folders[1].startswith("world-sim-")  # the default model of the built-in bench
    # the plain run is a one-model run, the comparison kept both models
    plain_spec = yaml.safe_load((tmp_path / "runs" / folders[1] / "spec.yaml").read_text())
    assert [t["name"] for t in plain_spec["t2i"]] == ["sim"]
    html = (tmp_path / "runs" / folders[1] / "report" / "index.html").read_text()
    assert "dataset world" in html


def test_run_json_records_the_environment_and_the_resolved_spec(small_spec):
    result = repainter.run(small_spec, dataset={"limit": 1}, loop={"rounds": 1, "variants": 1})
    info = json.loads((result.run_dir / "run.json").read_text())
    env = info["environment"]
    assert env["packages"]["langgraph"] == metadata.version("langgraph")
    assert env["python"] and env["device"]["cpu"] is not None
    assert RunSpec.model_validate(info["spec"]) == result.spec
    assert result.spec.loop.rounds == 1 and result.spec.dataset.limit == 1  # keyword overrides
    html = (result.run_dir / "report" / "index.html").read_text()
    assert "langgraph " + metadata.version("langgraph") in html


def test_dry_run_prints_the_resolved_spec_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", "--dry-run", "--json", "-o", str(out), "--seed", "4",
                                 "--model-args", "size=48,jitter=0", "--limit", "1"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert plan["spec"]["seed"] == 4
    assert plan["spec"]["t2i"][0]["params"] == {"size": 48, "jitter": 0}
    assert plan["run_dir"] == str(out) and plan["problems"] == []
    assert [row["component"] for row in plan["needs"]][0] == "sim"
    assert not out.exists()
    text = runner.invoke(app, ["run", "--show-config", "-o", str(out)])
    assert text.exit_code == 0 and "sim-describer" in text.stdout and not out.exists()


def test_model_args_with_a_key_the_model_does_not_take_is_one_error(tmp_path):
    result = runner.invoke(app, ["run", "--dry-run", "-o", str(tmp_path / "r"), "--model-args", "steps=4"])
    assert result.exit_code == 2 and "steps" in result.stdout


def test_device_flag_reaches_components_that_take_a_device(tmp_path):
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"preset": "world",
                                    "metrics": ["ssim", "color_histogram", {"name": "lpips"}]}))
    result = runner.invoke(app, ["run", "-s", str(spec), "--dry-run", "--json", "--device", "cpu",
                                 "--batch-size", "2"])
    plan = json.loads(result.stdout)
    assert plan["spec"]["metrics"][2]["params"] == {"device": "cpu", "batch_size": 2}
    assert plan["spec"]["t2i"][0]["params"] == {}  # procedural takes neither


def test_device_info_reads_the_gpu_through_a_loaded_torch(monkeypatch):
    """No GPU here: a stand-in torch module with the attributes torch.cuda exposes."""
    import sys
    from types import SimpleNamespace

    from repainter.environment import device_info, summary_facts

    props = SimpleNamespace(name="NVIDIA H200", total_memory=141 * 2**30)
    cuda = SimpleNamespace(is_available=lambda: True, current_device=lambda: 0,
                           get_device_properties=lambda index: props, device_count=lambda: 1)
    monkeypatch.setitem(sys.modules, "torch", SimpleNamespace(
        cuda=cuda, version=SimpleNamespace(cuda="12.8"), backends=SimpleNamespace()))
    info = device_info()
    assert info["gpu"] == "NVIDIA H200" and info["gpu_memory_gib"] == 141.0 and info["cuda"] == "12.8"
    assert ("device", "NVIDIA H200, 141.0 GiB, CUDA 12.8") in summary_facts({"device": info})
