"""Every user mistake ends in one ``error:`` line, exit code 2, no traceback (issue 15 item 1)."""

from __future__ import annotations

import errno
import json
import shutil
from collections import namedtuple

import pytest
import yaml
from typer.testing import CliRunner

import repainter
from repainter.cli import app
from repainter.errors import user_message
from repainter.records.run_info import RunInfo
from repainter.store import RunStore

runner = CliRunner()


def _spec_file(tmp_path, **extra):
    data = {"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 1},
            "loop": {"rounds": 1, "variants": 1}, **extra}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _one_error_line(result, *needles: str) -> str:
    """Assert the CLI's user-error contract and return the error line."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_unknown_component(tmp_path):
    result = runner.invoke(app, ["run", "-s", str(_spec_file(tmp_path)), "--set", "t2i.0.name=procedurall"])
    _one_error_line(result, "unknown t2i 'procedurall'", "did you mean 'procedural'", "repainter ls")
    assert not (tmp_path / "run").exists()  # nothing was written


def test_unknown_dataset(tmp_path):
    result = runner.invoke(app, ["run", "-s", str(_spec_file(tmp_path, dataset={"name": "wrld"}))])
    _one_error_line(result, "unknown dataset 'wrld'", "did you mean 'world'")


def test_missing_dataset_folder(tmp_path):
    spec = _spec_file(tmp_path, dataset={"name": "folder", "params": {"path": str(tmp_path / "nope")}})
    _one_error_line(runner.invoke(app, ["run", "-s", str(spec)]), "does not exist", "nope")


def test_bad_params_name_what_is_accepted(tmp_path):
    result = runner.invoke(app, ["run", "-s", str(_spec_file(tmp_path)), "--set", "t2i.0.params.colour=1"])
    _one_error_line(result, "t2i 'procedural'", "colour", "it accepts: size")


def test_bad_spec_value_and_bad_spec_file(tmp_path):
    _one_error_line(runner.invoke(app, ["run", "-s", str(_spec_file(tmp_path)), "--set", "loop.rounds=0"]),
                    "loop.rounds")
    broken = tmp_path / "broken.yaml"
    broken.write_text("loop: [\n")
    _one_error_line(runner.invoke(app, ["run", "-s", str(broken)]), "cannot parse spec")
    _one_error_line(runner.invoke(app, ["validate", str(tmp_path / "absent.yaml")]), "cannot read spec")


def test_missing_weights_and_key_are_named_together(tmp_path, offline, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    spec = _spec_file(
        tmp_path,
        t2i=[{"name": "diffusers", "params": {"model": "nobody/no-such-sd"}}],
        mllm={"name": "openai", "params": {"model": "gpt-4o-mini"}},
    )
    line = _one_error_line(runner.invoke(app, ["run", "-s", str(spec)]), "2 problems",
                           "nobody/no-such-sd", "hf download nobody/no-such-sd", "OPENAI_API_KEY")
    assert "huggingface-cli" not in line
    assert not (tmp_path / "run").exists()


def test_unreachable_hub_is_probed_once_not_retried(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    probes = []
    monkeypatch.setattr("repainter.preflight.hub_reachable", lambda: probes.append(1) or False)
    spec = _spec_file(tmp_path, t2i=[{"name": "diffusers", "params": {"model": "nobody/a"}},
                                     {"name": "diffusers", "label": "b", "params": {"model": "nobody/b"}}])
    _one_error_line(runner.invoke(app, ["run", "-s", str(spec)]), "not reachable", "nobody/a", "nobody/b")
    assert probes == [1]


def test_output_folder_under_a_file(tmp_path):
    (tmp_path / "afile").write_text("x")
    result = runner.invoke(app, ["run", "-s", str(_spec_file(tmp_path)), "-o", str(tmp_path / "afile" / "run")])
    _one_error_line(result, "is a file, not a folder", "--output-dir")


def test_full_output_disk(tmp_path, monkeypatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1024, 1024))
    _one_error_line(runner.invoke(app, ["run", "-s", str(_spec_file(tmp_path))]), "MiB free")


def test_write_failures_during_a_run_are_user_errors():
    for code in (errno.ENOSPC, errno.EACCES, errno.EROFS):
        message = user_message(OSError(code, "x", "/runs/a/run.json"))
        assert message and "/runs/a/run.json" in message and "--output-dir" in message
    assert user_message(RuntimeError("a bug")) is None


def test_dar_spec_given_to_validate_doctor_and_run(tmp_path):
    dar = tmp_path / "dar.yaml"
    dar.write_text(yaml.safe_dump({"alpha": 0.3, "dialogues": {"limit": 2}}))
    for command in (["validate", str(dar)], ["doctor", "--spec", str(dar)], ["run", "-s", str(dar)]):
        _one_error_line(runner.invoke(app, command), "is a DAR spec", "repainter dar --spec")


def test_validate_names_unknown_components_in_one_line(tmp_path):
    spec = _spec_file(tmp_path, t2i=[{"name": "nope"}], metrics=["ssim", "color_histogram", "nada"])
    _one_error_line(runner.invoke(app, ["validate", str(spec)]), "unknown t2i 'nope'", "unknown metric 'nada'")


def test_debug_shows_the_traceback(tmp_path):
    result = runner.invoke(app, ["run", "-s", str(_spec_file(tmp_path)), "--set", "t2i.0.name=nope", "--debug"])
    assert result.exit_code != 0
    assert "PreflightError" in repr(result.exception)


def test_a_failed_start_does_not_block_the_folder(tmp_path):
    spec = _spec_file(tmp_path)
    out = str(tmp_path / "run")
    # a typo caught by the preflight writes nothing; a failure while building the components
    # (after the folder was made) must not block the fixed run either
    _one_error_line(runner.invoke(app, ["run", "-s", str(spec), "--set", "t2i.0.name=nope"]), "nope")
    store = RunStore(out)
    store.init(repainter.build_spec({"output_dir": out, "seed": 7}))  # a start that died early
    store.write_run_info(RunInfo(repainter_version="0", status="failed"))  # as its start wrote
    fixed = runner.invoke(app, ["run", "-s", str(spec), "-q"])
    assert fixed.exit_code == 0, fixed.output
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("raised, status", [(KeyboardInterrupt, "interrupted"),
                                            (RuntimeError, "failed")])
def test_run_json_records_why_a_run_stopped(small_spec, raised, status):
    def stop(event):
        if event["event"] == "case":
            raise raised("stopped by the test")

    with pytest.raises(raised):
        repainter.run(small_spec, on_event=stop, dataset={"limit": 1}, loop={"rounds": 1})
    info = json.loads((small_spec.run_dir / "run.json").read_text())
    assert info["status"] == status and info["error"]
    assert "run.log" in {p.name for p in (small_spec.run_dir / "logs").iterdir()}


@pytest.mark.parametrize("command", [
    ["report", "{tmp}/nope"], ["rescore", "{tmp}/nope", "-m", "psnr"],
    ["export-preferences", "{tmp}/nope", "{tmp}/out"], ["track", "{tmp}/nope", "-t", "mlflow"],
    ["compare", "{tmp}/nope", "{tmp}/nope2"], ["dar", "--spec", "{tmp}/nope.yaml"],
    ["fetch", "no-such-dataset"],
])
def test_every_command_reports_a_missing_input_in_one_line(tmp_path, command):
    args = [part.format(tmp=tmp_path) for part in command]
    _one_error_line(runner.invoke(app, args))
