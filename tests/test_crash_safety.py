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
