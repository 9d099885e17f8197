"""SIGKILL at random points, resume with the same command: the results equal those of an
uninterrupted run and no finished case is redone."""

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow

CASES = 6


def _write_spec(folder: Path, name: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump({
        "name": name, "output_dir": str(folder / name),
        "dataset": {"limit": CASES}, "loop": {"rounds": 2, "variants": 2},
    }))
    return path


def _command(spec: Path) -> list[str]:
    return [sys.executable, "-m", "repainter.cli", "run", "--spec", str(spec), "--quiet", "--json"]


def _records(run_dir: Path) -> dict[str, tuple[int, dict]]:
    out = {}
    for path in (run_dir / "cases").glob("*/*.json"):
        out[path.name] = (path.stat().st_mtime_ns, json.loads(path.read_text()))
    return out


def _comparable(records: dict[str, tuple[int, dict]]) -> dict[str, dict]:
    return {name: {k: v for k, v in rec.items() if k != "timings"}
            for name, (_, rec) in records.items()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("baseline")
    spec = _write_spec(folder, "run")
    subprocess.run(_command(spec), check=True, capture_output=True, timeout=300)
    return _comparable(_records(folder / "run"))


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_sigkills_lose_nothing_and_redo_nothing(tmp_path, uninterrupted, seed):
    rng = random.Random(seed)
    spec = _write_spec(tmp_path, "run")
    run_dir = tmp_path / "run"
    kills = 0
    for _attempt in range(2):  # two kills at random points, then a clean finish
        wait_for = rng.randrange(0, CASES - 1)
        process = subprocess.Popen(_command(spec), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while (len(_records(run_dir)) if run_dir.exists() else 0) <= wait_for:
            if process.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.3))  # land somewhere inside the next case
        before = _records(run_dir)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            kills += 1
        process.wait()
        after_kill = _records(run_dir)
        # nothing that was finished before the kill was touched by the dying process
        for name, (mtime, _) in before.items():
            assert after_kill[name][0] == mtime
        # every file that exists parses: no half-written JSON
        for path in run_dir.rglob("*.json"):
            json.loads(path.read_text())

    finished_before_last = _records(run_dir)
    final = subprocess.run(_command(spec), capture_output=True, text=True, timeout=300)
    assert final.returncode == 0, final.stderr
    result = _records(run_dir)
    assert kills >= 1
    for name, (mtime, _) in finished_before_last.items():
        assert result[name][0] == mtime, f"{name} was redone"
    assert _comparable(result) == uninterrupted
    info = json.loads((run_dir / "run.json").read_text())
    assert info["cases"]["reused"] == len(finished_before_last)


def test_a_corrupt_case_record_is_named_skipped_and_redone(tmp_path, caplog):
    """Issue 12 item 13: one corrupt cases/*.json crashed resume and `report` without a name."""
    import logging

    from repainter.report.html import write_report
    from repainter.result import RunResult
    from repainter.runner import run
    from repainter.spec import build_spec

    spec = build_spec({"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 2},
                       "loop": {"rounds": 1, "variants": 1}, "judge": False})
    first = run(spec)
    victim = sorted((spec.run_dir / "cases").glob("*/*.json"))[0]
    victim.write_text('{"case_id": "trunc')  # a torn write from another tool
    with caplog.at_level(logging.WARNING, logger="repainter.store"):
        report = write_report(spec.run_dir)
    assert report.is_file()
    assert victim.name in caplog.text
    assert victim.name in report.read_text(encoding="utf-8")
    assert len(RunResult.load(spec.run_dir).records) == len(first.records) - 1
    again = run(spec)  # resume: the corrupt case is redone, the others reused
    assert len(again.records) == len(first.records)
    assert again.info.cases.model_dump(exclude_none=True) == {"done": 1, "failed": 0, "reused": 1, "total": 2}
    assert again.info.unreadable_records == [victim.relative_to(spec.run_dir).as_posix()]
    assert json.loads(victim.read_text())["status"] == "done"


def test_compare_of_models_sharing_no_finished_case_writes_everything(tmp_path, monkeypatch):
    """Issue 12 item 14: NaN statistics crashed `compare` (no leaderboard, no report, run.json
    left "running")."""
    import repainter.executors.prepare as prepare_module
    from repainter.backend_timing import CURRENT_CASE
    from repainter.backends.base import T2IWrapper
    from repainter.runner import run
    from repainter.spec import build_spec

    spec = build_spec({"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 2},
                       "t2i": [{"name": "procedural", "label": "a"},
                               {"name": "procedural", "label": "b"}],
                       "loop": {"rounds": 1, "variants": 1}, "judge": False})
    original = prepare_module.prepare_context
    from repainter.datasets import load_dataset

    cases = [item.id for item in load_dataset("world", {}).select(None, 2)]
    failing = {"a": cases[0], "b": cases[1]}

    class FailsOn(T2IWrapper):
        def __init__(self, inner, label):
            super().__init__(inner)
            self.label = label

        def generate(self, prompts, seeds):
            if CURRENT_CASE.get()[1] == failing[self.label]:
                raise RuntimeError("this model cannot draw that")
            return self.inner.generate(prompts, seeds)

    def prepare(spec, store):
        ctx, items, components = original(spec, store)
        ctx.t2i = {label: FailsOn(b, label) for label, b in ctx.t2i.items()}
        return ctx, items, components

    monkeypatch.setattr(prepare_module, "prepare_context", prepare)
    result = run(spec)
    assert sorted(r.status for r in result.records) == ["done", "done", "failed", "failed"]
    board = json.loads((spec.run_dir / "leaderboard.json").read_text())
    (pair,) = board["comparisons"]["selection"]["tests"]
    assert pair["n"] == 0
    assert all(v is None or v == v for v in pair.values())  # no NaN
    assert (spec.run_dir / "leaderboard.md").is_file()
    assert (spec.run_dir / "report" / "index.html").is_file()
    assert json.loads((spec.run_dir / "run.json").read_text())["status"] == "finished"


def test_a_run_stopped_by_an_error_is_not_left_running(tmp_path, monkeypatch):
    import repainter.runner as runner_module
    from repainter.runner import run
    from repainter.spec import build_spec

    spec = build_spec({"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 1},
                       "loop": {"rounds": 1, "variants": 1}, "judge": False})

    def broken(*args, **kwargs):
        raise RuntimeError("leaderboard exploded")

    monkeypatch.setattr(runner_module, "build_leaderboard", broken)
    with pytest.raises(RuntimeError, match="exploded"):
        run(spec)
    info = json.loads((spec.run_dir / "run.json").read_text())
    assert info["status"] == "failed" and "leaderboard exploded" in info["error"]
