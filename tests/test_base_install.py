"""A base install meets a spec that needs an extra: the checks say so before anything runs, and
their hints keep their extras (issue 24 items 1 and 7)."""

from __future__ import annotations

import inspect
import io
import json
import os
import sys

import pytest
import yaml
from rich.console import Console
from typer.testing import CliRunner

from repainter.cli import _rows_table, app
from repainter.preflight import component_problems, source_signature
from repainter.registry import METRICS, MLLM, T2I, Registry
from repainter.spec import ComponentSpec

runner = CliRunner()
MODELS_HINT = "pip install -e '.[models]'"


def _openai_spec(tmp_path):
    """The built-in world with an OpenAI-compatible describer on a local server (no key)."""
    data = {"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 1},
            "loop": {"rounds": 1, "variants": 1},
            "mllm": {"name": "openai", "params": {"model": "m", "base_url": "http://127.0.0.1:9/v1"}}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def no_openai(monkeypatch):
    """A base install: ``import openai`` fails and find_spec finds nothing."""
    monkeypatch.setitem(sys.modules, "openai", None)


def test_doctor_names_the_missing_package_and_its_extra(tmp_path, no_openai):
    result = runner.invoke(app, ["doctor", "--spec", str(_openai_spec(tmp_path))])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    missing = [line for line in result.stdout.splitlines() if line.startswith("missing")]
    assert missing == ["missing openai (openai): install the models extra: "
                       f"{MODELS_HINT} (or pip install 'repainter[models]')"]


def test_doctor_json_has_the_package_row(tmp_path, no_openai):
    result = runner.invoke(app, ["doctor", "--spec", str(_openai_spec(tmp_path)), "--json"])
    rows = [row for row in json.loads(result.stdout) if row["role"] == "mllm"]
    assert [(r["kind"], r["model"], r["present"]) for r in rows] == [("package", "openai", False)]


def test_run_refuses_up_front_with_one_line(tmp_path, no_openai):
    spec = _openai_spec(tmp_path)
    result = runner.invoke(app, ["run", "-s", str(spec)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: the run cannot start"), lines
    assert "mllm 'openai' needs the Python package 'openai'" in lines[0]
    assert MODELS_HINT in lines[0]
    assert not (tmp_path / "run").exists()  # refused before the run folder was made


def test_doctor_with_the_package_installed_lists_it_present(tmp_path):
    pytest.importorskip("openai")
    result = runner.invoke(app, ["doctor", "--spec", str(_openai_spec(tmp_path)), "--json"])
    rows = [row for row in json.loads(result.stdout) if row["role"] == "mllm"]
    assert [(r["kind"], r["model"], r["present"]) for r in rows] == [("package", "openai", True)]


def test_table_cells_are_not_markup():
    out = io.StringIO()
    Console(file=out, width=200).print(_rows_table("t", [{"how": MODELS_HINT}], ["how"]))
    assert MODELS_HINT in out.getvalue()


def test_params_are_checked_from_source_when_the_extra_is_missing(monkeypatch):
    """A base install validates a diffusers spec: torch cannot be imported, the params still are
    checked against the constructor read from its source."""
    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.delitem(sys.modules, "repainter.backends.t2i.diffusers", raising=False)
    registry = Registry("t2i")
    registry.register_lazy("diffusers", "repainter.backends.t2i.diffusers:DiffusersT2I")
    with pytest.raises(ImportError):
        registry.get("diffusers")
    good = ComponentSpec(name="diffusers", params={"model": "a/b", "steps": 4, "dtype": "float16"})
    typo = ComponentSpec(name="diffusers", params={"model": "a/b", "stepz": 4})
    assert component_problems(registry, [good]) == []
    [problem] = component_problems(registry, [typo])
    assert "'stepz'" in problem and "steps" in problem and "guidance_scale" in problem


def _shape(signature: inspect.Signature) -> list[tuple[str, object, bool]]:
    return [(p.name, p.kind, p.default is p.empty) for p in signature.parameters.values()]


@pytest.mark.parametrize("registry", [T2I, MLLM, METRICS], ids=lambda r: r.kind)
def test_source_signature_matches_the_imported_one(registry):
    """Names, kinds and which are required, for every lazily registered built-in that imports."""
    compared = 0
    for name in registry.names():
        target = registry.target(name)
        if target is None:
            continue
        try:
            factory = registry.get(name)
        except ImportError:  # this venv lacks its extra
            continue
        read = source_signature(target)
        if read is not None:  # None: an inherited constructor, left to the build
            assert _shape(read) == _shape(inspect.signature(factory)), name
            compared += 1
    assert compared >= 1


def test_mlflow_file_store_is_read_back_and_the_variable_does_not_leak(tmp_path, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from repainter.trackers.builtin import ALLOW_FILE_STORE, MLflowTracker, mlflow_client
    from repainter.trackers.payload import Payload

    monkeypatch.delenv(ALLOW_FILE_STORE, raising=False)
    store = tmp_path / "mlruns"
    payload = Payload(run_name="r", run_dir=tmp_path, params={"loop.rounds": "2"},
                      metrics={"m/selection_final": 0.5}, curves={1: {"m/best": 0.4}},
                      table_columns=["model"], table_rows=[["m"]], tags={"status": "finished"})
    where = MLflowTracker(tracking_uri=store.as_uri()).log(payload)
    assert ALLOW_FILE_STORE not in os.environ  # the write set it for itself only
    assert f"{ALLOW_FILE_STORE}=true" in where
    # the same store under a name MLflow has not opened yet: a plain read is refused ...
    with pytest.raises(MlflowException, match=ALLOW_FILE_STORE):
        MlflowClient(tracking_uri=str(store))
    # ... and mlflow_client reads it
    with mlflow_client(str(store)) as client:
        experiment = client.get_experiment_by_name("repainter")
        [run] = client.search_runs([experiment.experiment_id])
    assert run.data.metrics["m/selection_final"] == 0.5
    assert ALLOW_FILE_STORE not in os.environ
    monkeypatch.setenv(ALLOW_FILE_STORE, "true")  # the user's own setting is kept
    with mlflow_client(str(store)):
        pass
    assert os.environ[ALLOW_FILE_STORE] == "true"
