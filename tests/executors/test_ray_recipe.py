"""The Ray recipe of docs/large-runs.md as a user types it: ``ray start --head``, a run through
``RAY_ADDRESS``, ``ray stop``. On a private temp dir and free ports, with a HOME of its own
holding the token any earlier local ``ray.init()`` leaves in ``~/.ray/auth_token`` (with it, Ray
2.60's ``ray start --head`` turns token authentication on). The cluster is stopped by its temp
dir only (a plain ``ray stop`` stops every cluster on the machine)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray")

from repainter.executors.ray_cluster import clean_up, session_processes  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def head(tmp_path):
    """``ray start --head`` on free ports in a short temp dir: (address, temp dir, env)."""
    home = tmp_path / "home"
    (home / ".ray").mkdir(parents=True)
    (home / ".ray" / "auth_token").write_text("0123456789abcdef0123456789abcdef")
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH")}
    env["HOME"] = str(home)
    temp_dir = tempfile.mkdtemp(prefix="rph-", dir="/tmp")  # Ray's socket paths stay short
    env["RAY_TMPDIR"] = temp_dir  # where a plain ray.init() would look for it
    port = _free_port()
    start = [str(Path(sys.executable).parent / "ray"), "start", "--head",
             "--temp-dir", temp_dir, "--port", str(port), "--num-cpus", "2",
             "--include-dashboard=false", "--dashboard-agent-listen-port", str(_free_port()),
             "--metrics-export-port", str(_free_port()),
             "--ray-client-server-port", str(_free_port()), "--disable-usage-stats"]
    try:
        started = subprocess.run(start, env=env, timeout=120, capture_output=True, text=True)
        output = started.stdout + started.stderr
        assert started.returncode == 0, output[-3000:]
        assert "Token authentication is enabled" in output  # what the recipe must cope with
        address = Path(temp_dir, "ray_current_cluster").read_text().strip()
        yield address, temp_dir, env
    finally:
        clean_up(temp_dir)  # only the cluster this test started
        shutil.rmtree(temp_dir, ignore_errors=True)


def _run(out: Path, env: dict[str, str]) -> dict:
    command = [sys.executable, "-m", "repainter.cli", "run", "-o", str(out),
               "--set", "dataset.limit=2", "--set", "loop.rounds=1", "--set", "loop.variants=2",
               "--set", "runtime.executor=ray", "--set", "runtime.ray.num_workers=2"]
    done = subprocess.run(command, env=env, timeout=300, capture_output=True, text=True)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    return json.loads((out / "run.json").read_text())


def test_the_recipe_joins_the_started_cluster_through_ray_address(head, tmp_path):
    address, temp_dir, env = head
    info = _run(tmp_path / "run", {**env, "RAY_ADDRESS": address})
    assert info["status"] == "finished" and info["cases"]["done"] == 2
    cluster = info["executor"]["cluster"]
    assert cluster["private"] is False and cluster["joined"] == address
    assert cluster["address"] == address
    # the driver sent the token `ray start` found, and says how it came by it
    assert cluster["auth"]["mode"] == "token"
    assert cluster["auth"]["token"] == str(Path(env["HOME"]) / ".ray" / "auth_token")
    assert cluster["auth"]["set_by"].startswith("repainter")


def test_a_run_with_no_address_starts_its_own_cluster_beside_a_running_one(head, tmp_path):
    address, temp_dir, env = head
    running = session_processes(temp_dir)
    info = _run(tmp_path / "run", env)
    cluster = info["executor"]["cluster"]
    assert cluster["private"] is True and cluster["started_here"] is True
    assert cluster["address"] != address and cluster["temp_dir"] != temp_dir
    assert set(running) <= set(session_processes(temp_dir)), "the running cluster was stopped"


def test_a_private_cluster_has_room_for_the_whole_pool(tmp_path, monkeypatch):
    """Two one-CPU workers on a (pretended) one-core machine: both start, sharing the core,
    and run.json says so; before, the second waited for a CPU until the pool's deadline."""
    import ray

    from repainter import runner
    from repainter.spec import build_spec

    if ray.is_initialized():
        pytest.skip("needs a Ray of its own (this process already joined one)")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    # the CPUs Ray counts on this machine, as Ray itself would see them
    monkeypatch.setattr(ray._private.utils, "get_num_cpus", lambda *a, **k: 1)
    spec = build_spec({"output_dir": str(tmp_path / "run"), "dataset": {"limit": 2},
                       "loop": {"rounds": 1, "variants": 2}, "runtime": {
                           "executor": "ray", "cache": False,
                           "ray": {"num_workers": 2, "case_timeout": 60}}})
    result = runner.run(spec)
    assert result.info.cases.done == 2
    cluster = result.info.executor["cluster"]
    assert cluster["private"] and cluster["num_cpus"] == 2 and cluster["cpus_on_machine"] == 1
    start = result.info.executor["start_seconds"]
    assert set(start) == {"cluster", "first_worker", "all_workers"}
    assert result.info.executor["workers_never_started"] == 0 and start["all_workers"] > 0
    assert not ray.is_initialized()
