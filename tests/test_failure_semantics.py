"""Failure semantics users can script against (issue 24 item 4): a run with no finished case is
``failed`` with exit code 3; some failed cases: exit 4 and the reasons grouped; the first cases
failing alike with a permanent backend error stop the run (fail-fast), and the same command
resumes once the setting is fixed."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import yaml
from PIL import Image
from typer.testing import CliRunner

from repainter.cli import app
from repainter.failures import (
    RUN_FAILED_EXIT,
    SOME_FAILED_EXIT,
    FailFast,
    RunFailedError,
    classify,
)

runner = CliRunner()


def _record(done=False, kind="loop: MLLMCallError [image_limit]", permanent=True):
    return SimpleNamespace(done=done, error_kind=kind, error_permanent=permanent,
                           error="loop: MLLMCallError: rejected")


class _HTTPError(Exception):
    def __init__(self, status):
        super().__init__(f"status {status}")
        self.status_code = status


@pytest.mark.parametrize(("exc", "permanent", "kind"), [
    (_HTTPError(400), True, "loop: _HTTPError [http_400]"),
    (_HTTPError(404), True, "loop: _HTTPError [http_404]"),
    (_HTTPError(429), False, "loop: _HTTPError [http_429]"),
    (_HTTPError(503), False, "loop: _HTTPError [http_503]"),
    (ModuleNotFoundError("no openai", name="openai"), True,
     "loop: ModuleNotFoundError [missing module openai]"),
    (NotImplementedError("no img2img"), True, "loop: NotImplementedError"),
    (ValueError("bad reply"), False, "loop: ValueError"),
])
def test_classify_tells_permanent_from_passing_failures(exc, permanent, kind):
    assert classify(exc, "loop") == (classify(exc, "loop").__class__(kind, permanent))


def test_classify_reads_the_backends_own_word_through_a_wrap():
    inner = _HTTPError(400)
    inner.reason_key, inner.permanent = "image_limit", True
    try:
        raise RuntimeError("node failed") from inner
    except RuntimeError as outer:
        assert classify(outer, "loop").kind == "loop: RuntimeError [image_limit]"
        assert classify(outer, "loop").permanent


def test_fail_fast_trips_only_on_a_streak_of_one_permanent_kind_from_the_start():
    watch = FailFast(after=3)
    assert [watch.observe(_record()) for _ in range(2)] == [None, None]
    reason = watch.observe(_record())
    assert reason and "first 3 cases" in reason and "image_limit" in reason
    assert watch.observe(_record()) is None  # says it once

    for breaker in (_record(done=True), _record(permanent=False), _record(kind="loop: Other")):
        watch = FailFast(after=2)
        watch.observe(_record())
        watch.observe(breaker)
        assert watch.observe(_record()) is None and watch.observe(_record()) is None
    assert FailFast(enabled=False, after=1).observe(_record()) is None


def _mllm_spec(tmp_path, url, limit=6, **runtime):
    return {
        "dataset": {"name": "world", "limit": limit},
        "t2i": ["sim"],
        "mllm": {"name": "openai", "params": {"model": "fake", "base_url": url, "max_retries": 0}},
        "metrics": ["ssim"], "selection": {"ssim": 1.0}, "judge": False,
        "loop": {"rounds": 1, "variants": 1},
        "output_dir": str(tmp_path / "run"), "runtime": runtime,
    }


@pytest.mark.slow
def test_a_server_rejecting_every_request_stops_the_run_which_resumes_after_the_fix(tmp_path):
    """vLLM serving a text-only model (no image accepted): the first 3 cases fail alike, the
    run stops before the other 3, exits 3 with the error; fixed, the same command finishes all
    6 and keeps no broken record."""
    from repainter.testing import OpenAICompatServer
    from repainter.testing.openai_server import ServerProfile

    with OpenAICompatServer(profile=ServerProfile(max_images=0)) as server:
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(_mllm_spec(tmp_path, server.url)))
        stopped = runner.invoke(app, ["run", "--spec", str(path)])
        assert stopped.exit_code == RUN_FAILED_EXIT, stopped.output
        assert "stopped after the first 3 cases" in stopped.stderr
        info = json.loads((tmp_path / "run" / "run.json").read_text())
        assert info["status"] == "failed" and "permanent error" in info["error"]
        assert info["cases"]["failed"] == 3 and info["cases"]["done"] == 0
        (group,) = info["failures"]
        assert group["count"] == 3 and group["permanent"] is True
        records = sorted((tmp_path / "run" / "cases").rglob("*.json"))
        assert len(records) == 3  # the other 3 cases were never started
        assert all(json.loads(p.read_text())["error_permanent"] for p in records)

        server.profile = ServerProfile()  # the fix: restarted with images allowed, same address
        resumed = runner.invoke(app, ["run", "--spec", str(path)])
        assert resumed.exit_code == 0, resumed.output
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "finished" and info["cases"]["done"] == 6
    assert info.get("failures") is None and info.get("error") is None
    statuses = [json.loads(p.read_text())["status"]
                for p in (tmp_path / "run" / "cases").rglob("*.json")]
    assert statuses == ["done"] * 6


@pytest.mark.slow
def test_fail_fast_off_runs_every_case_and_the_run_still_fails(tmp_path):
    from repainter.testing import OpenAICompatServer
    from repainter.testing.openai_server import ServerProfile

    with OpenAICompatServer(profile=ServerProfile(max_images=0)) as server:
        path = tmp_path / "spec.yaml"
        path.write_text(yaml.safe_dump(_mllm_spec(tmp_path, server.url, limit=4,
                                                  fail_fast=False)))
        result = runner.invoke(app, ["run", "--spec", str(path), "--json"])
    assert result.exit_code == RUN_FAILED_EXIT
    assert "no case finished: 4 of 4 cases failed" in result.stderr
    assert json.loads(result.stdout)["models"]  # the summary is printed all the same
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and info["failures"][0]["count"] == 4


def _photos(folder, broken: int, good: int):
    folder.mkdir()
    for i in range(good):
        image = Image.new("RGB", (64, 64), ("red", "navy", "olive")[i % 3])
        image.paste("white", (8 + 4 * i, 8, 40, 40))
        image.save(folder / f"good{i}.png")
    for i in range(broken):
        (folder / f"broken{i}.png").write_bytes(b"not an image at all")
    return folder


def _folder_args(folder, out):
    return ["run", "--set", "dataset.name=folder", "--set", f"dataset.params.path={folder}",
            "--rounds", "1", "--variants", "1", "-o", str(out)]


def test_some_failed_cases_exit_4_with_the_reasons_grouped(tmp_path):
    photos = _photos(tmp_path / "photos", broken=2, good=2)
    result = runner.invoke(app, _folder_args(photos, tmp_path / "run"))
    assert result.exit_code == SOME_FAILED_EXIT, result.output
    assert "2 of 4 cases failed" in result.stdout
    assert "2 x load reference: ImageLoadError" in result.stdout
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "finished"
    (group,) = info["failures"]
    assert group["kind"] == "load reference: ImageLoadError" and group["count"] == 2
    assert group["permanent"] is False and sorted(group["cases"]) == ["sim/broken0", "sim/broken1"]
    assert "failed cases" in (tmp_path / "run" / "report" / "index.html").read_text()


def test_a_run_with_no_finished_case_is_failed_in_status_exit_code_and_api(tmp_path):
    import repainter

    photos = _photos(tmp_path / "photos", broken=2, good=0)
    result = runner.invoke(app, _folder_args(photos, tmp_path / "run"))
    assert result.exit_code == RUN_FAILED_EXIT, result.output
    assert "run failed: no case finished: 2 of 2 cases failed" in result.stderr
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and info["error"].startswith("no case finished")
    assert (tmp_path / "run" / "leaderboard.json").exists()  # the reasons stay readable

    with pytest.raises(RunFailedError) as caught:
        repainter.run(None, overrides=[f"dataset.params.path={photos}", "dataset.name=folder",
                                       "loop.rounds=1", "loop.variants=1",
                                       f"output_dir={tmp_path / 'api'}"])
    assert caught.value.result is not None and len(caught.value.result.failed) == 2
