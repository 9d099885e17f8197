"""Trackers against real local stores: MLflow (file store), TensorBoard (event files), W&B offline."""

from __future__ import annotations

import json
import time

import pytest
import yaml
from typer.testing import CliRunner

import repainter
from repainter.cli import app
from repainter.trackers import build_payload, track_run

runner = CliRunner()


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One small finished run of two models (2 references, 2 rounds), shared by the tests."""
    out = tmp_path_factory.mktemp("tracked") / "run"
    spec = repainter.build_spec({
        "output_dir": str(out), "dataset": {"limit": 2}, "loop": {"rounds": 2, "variants": 1},
        "t2i": ["procedural", {"name": "procedural", "label": "colourblind",
                               "params": {"ignore": ["color"]}}],
    })
    return repainter.run(spec)


def test_payload_holds_cis_curves_table_and_grids(finished_run):
    payload = build_payload(finished_run.run_dir)
    row = finished_run.leaderboard[0]
    model = row.model
    assert payload.metrics[f"{model}/selection_final"] == pytest.approx(row.selection.mean)
    assert f"{model}/selection_final_ci_low" in payload.metrics
    assert sorted(payload.curves) == [1, 2]
    assert payload.params["loop.rounds"] == "2"
    assert len(payload.table_rows) == 2 and "model" in payload.table_columns
    assert len(payload.images) == 2 and all(path.exists() for _, path in payload.images)


def test_mlflow_file_store(finished_run, tmp_path):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    uri = (tmp_path / "mlruns").as_uri()
    rows = track_run(finished_run.run_dir, [{"name": "mlflow", "params": {"tracking_uri": uri}}],
                     strict=True)
    assert rows[0]["status"] == "logged"
    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("repainter").experiment_id])[0]
    model = finished_run.leaderboard[0].model
    assert run.data.metrics[f"{model}/selection_final"] == pytest.approx(
        finished_run.leaderboard[0].selection.mean)
    assert run.data.params["loop.rounds"] == "2"
    assert len(client.get_metric_history(run.info.run_id, f"{model}/best_ever_selection")) == 2
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"leaderboard.md", "leaderboard.json", "grids"} <= artifacts
    assert run.info.status == "FINISHED"


def test_tensorboard_event_files(finished_run, tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rows = track_run(finished_run.run_dir, [{"name": "tensorboard",
                                             "params": {"log_dir": str(tmp_path / "tb")}}], strict=True)
    assert rows[0]["where"] == str(tmp_path / "tb")
    events = EventAccumulator(str(tmp_path / "tb"), size_guidance={"images": 0})
    events.Reload()
    model = finished_run.leaderboard[0].model
    final = events.Scalars(f"{model}/selection_final")
    assert final[0].value == pytest.approx(finished_run.leaderboard[0].selection.mean, abs=1e-6)
    assert [s.step for s in events.Scalars(f"{model}/best_ever_selection")] == [1, 2]
    assert len(events.Tags()["images"]) == 2
    assert "leaderboard" in events.Tags()["tensors"]


def test_wandb_offline(finished_run, tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    rows = track_run(finished_run.run_dir, [{"name": "wandb", "params": {"dir": str(tmp_path)}}],
                     strict=True)
    run_folder = tmp_path / "wandb" / rows[0]["where"].rsplit("/", 1)[-1]
    assert run_folder.name.startswith("offline-run-")
    model = finished_run.leaderboard[0].model
    keys = (f"{model}/selection_final".encode(), f"{model}/best_ever_selection".encode())
    log = b""
    for _ in range(60):  # wandb's service process may still be flushing its log file
        log = next(run_folder.glob("*.wandb")).read_bytes()
        if all(key in log for key in keys):
            break
        time.sleep(0.5)
    assert all(key in log for key in keys)
    table = json.loads(next(run_folder.glob("files/media/table/leaderboard_*.table.json")).read_text())
    assert table["columns"][0] == "model" and len(table["data"]) == 2
    assert len(list(run_folder.glob("files/media/images/grids_*.png"))) == 2


def test_track_command_and_spec_key(finished_run, tmp_path, monkeypatch):
    pytest.importorskip("tensorboard")
    result = runner.invoke(app, ["track", str(finished_run.run_dir), "-t",
                                 yaml.safe_dump({"name": "tensorboard",
                                                 "params": {"log_dir": str(tmp_path / "tb")}})])
    assert result.exit_code == 0, result.output
    assert any((tmp_path / "tb").iterdir())
    unknown = runner.invoke(app, ["run", "--dry-run", "--set", "runtime.trackers=[mlflw]"])
    assert unknown.exit_code == 2 and "did you mean 'mlflow'" in unknown.stdout
