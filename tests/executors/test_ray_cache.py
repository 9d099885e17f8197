"""runtime.cache under Ray: MLLM replies, renders and metric scores are cached by the driver's
cache service and reused by later Ray runs and by the re-run of an interrupted one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from repainter import runner  # noqa: E402
from repainter.spec import build_spec  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _spec(folder: Path, cache_dir: Path):
    return build_spec({
        "output_dir": str(folder), "dataset": {"limit": 2}, "loop": {"rounds": 1, "variants": 2},
        "runtime": {"executor": "ray", "cache_dir": str(cache_dir), "ray": {"num_workers": 2}},
    })


def _final_scores(result) -> dict:
    return {(r.model, r.case_id): r.final_scores for r in result.records}


def test_a_ray_run_answers_from_the_cache_an_earlier_ray_run_filled(cluster, tmp_path):
    shared = tmp_path / "cache"
    first = runner.run(_spec(tmp_path / "first", shared))
    cache = first.info.cache
    assert cache is not None, "runtime.cache was silently off under Ray"
    asked = first.info.mllm_usage["calls"]
    assert asked > 0 and cache["mllm"] == {"hits": 0, "misses": asked}
    assert first.info.executor["cache"]["file"] == str(shared.resolve() / "cache.sqlite")

    again = runner.run(_spec(tmp_path / "again", shared))  # another run folder, same cache
    assert again.info.cases.done == 2 and again.info.cases.reused == 0
    assert again.info.mllm_usage.get("calls", 0) == 0, "a cached MLLM reply was asked again"
    for namespace in ("mllm", "t2i", "metric"):
        assert again.info.cache[namespace] == {"hits": cache[namespace]["misses"], "misses": 0}
    assert _final_scores(again) == _final_scores(first)
    assert sorted(p.name for p in (tmp_path / "again" / "images").rglob("*.png"))  # shipped


# -- an interrupted Ray run (driver killed mid-case), run again ------------------------------

def _mllm_entries(cache_file: Path) -> int:
    if not cache_file.exists():
        return 0
    with sqlite3.connect(f"file:{cache_file}?mode=ro", uri=True, timeout=5) as conn:
        try:
            return conn.execute("SELECT count(*) FROM entries WHERE namespace = 'mllm'").fetchone()[0]
        except sqlite3.OperationalError:  # the table is not created yet
            return 0


def _command(out: Path) -> list[str]:
    return [sys.executable, "-m", "repainter.cli", "run", "-o", str(out),
            "--set", "dataset.limit=3", "--set", "loop.rounds=3", "--set", "loop.variants=2",
            "--set", "runtime.executor=ray", "--set", "runtime.ray.num_workers=1"]


def _kill_mid_second_case(driver: subprocess.Popen, run_dir: Path) -> set[int]:
    """SIGKILL the driver once the first case is recorded and the second has cached replies;
    return the processes it had started (its Ray cluster), which outlive it for a moment."""
    cache_file = run_dir / "cache.sqlite"
    after_first = None
    deadline = time.monotonic() + 240
    try:
        while time.monotonic() < deadline and driver.poll() is None:
            if after_first is None and list((run_dir / "cases").glob("*/*.json")):
                after_first = _mllm_entries(cache_file)
            if after_first is not None and _mllm_entries(cache_file) > after_first:
                break
            time.sleep(0.2)
        assert driver.poll() is None, "the run ended before it could be interrupted"
        assert after_first is not None, "no case finished in time"
    finally:
        cluster = _descendants(driver.pid)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    return cluster


def _descendants(root: int) -> set[int]:
    """Every live process under ``root`` (Linux /proc): the driver's cluster and its workers."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # gone meanwhile
            continue
        children.setdefault(ppid, []).append(int(stat.parent.name))
    found, todo = set(), [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _wait_for_exit(pids: set[int], patience: float = 120.0) -> None:
    """Wait until ``pids`` are gone (the killed cluster winds down), then stop the rest."""
    deadline = time.monotonic() + patience
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.5)
    for pid in pids:  # still there after two minutes: this test started it, stop it
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            continue


def test_the_rerun_of_a_killed_ray_run_asks_the_mllm_nothing_it_cached(tmp_path):
    run_dir = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = tempfile.mkdtemp(prefix="rpt-", dir="/tmp")  # short socket paths
    try:
        driver = subprocess.Popen(_command(run_dir), env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        cluster = _kill_mid_second_case(driver, run_dir)
        # the killed driver's cluster (its cache actor, its worker) outlives it for a moment
        # and may still commit entries: count them once it is gone
        _wait_for_exit(cluster)
        cached_before = _mllm_entries(run_dir / "cache.sqlite")
        done = subprocess.run(_command(run_dir), env=env, timeout=300, capture_output=True,
                              text=True)
    finally:
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    assert done.returncode == 0, done.stderr[-2000:]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["cases"]["reused"] >= 1 and info["cases"]["done"] >= 1
    mllm = info["cache"]["mllm"]
    # the interrupted case's replies were cached before the kill, and served from there ...
    assert mllm["hits"] >= 1
    # ... and every request the re-run did send was one the cache did not hold
    added = _mllm_entries(run_dir / "cache.sqlite") - cached_before
    assert mllm["misses"] == added == info["mllm_usage"]["calls"]
