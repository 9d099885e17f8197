"""Issue 27 holes in the network edges: URL datasets reaching private addresses (row 11), a
refused tracker holding the command (row 10), Ray joining a stranger's cluster (row 8), a stopped
worker stalling the run (row 9), agents outliving a killed driver (row 13), and a non-UTF-8 MLLM
body (leftover)."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from PIL import Image

from repainter.datasets import ManifestDataset, fetch_manifest
from repainter.fetch import DownloadError, download
from repainter.url_policy import ALLOW_ENV, URLRefused, check_url


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), "red").save(buffer, "PNG")
    return buffer.getvalue()


class _Loopback:
    """127.0.0.1 server: /x.png an image, /to-loopback and /to-ftp redirects."""

    def __init__(self):
        png = _png()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                target = {"/to-loopback": f"http://127.0.0.1:{port}/x.png",
                          "/to-ftp": "ftp://127.0.0.1/x.png"}.get(self.path)
                if target:
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(png)))
                self.end_headers()
                self.wfile.write(png)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        port = self.httpd.server_address[1]
        self.url = f"http://127.0.0.1:{port}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def loopback(monkeypatch):
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy",
                "ALL_PROXY", ALLOW_ENV, "REPAINTER_OFFLINE", "HF_HUB_OFFLINE",
                "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    server = _Loopback()
    yield server
    server.close()


def _manifest(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "m.jsonl"
    path.write_text(json.dumps({"id": "x", "url": url}) + "\n")
    return path


# -- row 11: URL datasets stay on public hosts unless allowed ---------------------------------

def test_a_loopback_url_is_refused_without_the_flag_and_fetched_with_it(tmp_path, loopback):
    manifest = _manifest(tmp_path, f"{loopback.url}/x.png")
    refused = fetch_manifest(manifest, tmp_path / "c1")
    assert [i.status for i in refused.items] == ["failed"]
    assert "loopback" in refused.items[0].error and "allow_private_urls" in refused.items[0].error

    item = ManifestDataset(str(manifest), cache_dir=str(tmp_path / "c2")).items()[0]
    with pytest.raises(DownloadError, match="loopback"):
        item.load()

    allowed = fetch_manifest(manifest, tmp_path / "c3", allow_private_urls=True)
    assert [i.status for i in allowed.items] == ["downloaded"]
    dataset = ManifestDataset(str(manifest), cache_dir=str(tmp_path / "c4"),
                              allow_private_urls=True)
    assert dataset.items()[0].load().image.size == (8, 8)


def test_redirects_to_loopback_or_ftp_are_refused(loopback, monkeypatch):
    """The first hop passes (as a public host would); the redirect's target is checked."""
    import repainter.fetch as fetch

    real_check, real_peer = fetch.check_url, fetch.check_peer
    calls = []

    def first_hop_allowed(url, allow_private):
        calls.append(url)
        return real_check(url, allow_private or len(calls) == 1)

    monkeypatch.setattr(fetch, "check_url", first_hop_allowed)
    monkeypatch.setattr(fetch, "check_peer", lambda sock, host: None)
    with pytest.raises(DownloadError, match="loopback"):
        download(f"{loopback.url}/to-loopback", timeout=5)
    calls.clear()
    with pytest.raises(DownloadError, match="only http"):
        download(f"{loopback.url}/to-ftp", timeout=5)
    monkeypatch.setattr(fetch, "check_url", real_check)
    monkeypatch.setattr(fetch, "check_peer", real_peer)
    # with the flag the loopback redirect is followed, the ftp one still refused
    assert download(f"{loopback.url}/to-loopback", timeout=5, allow_private=True)[0] == _png()
    with pytest.raises(DownloadError, match="only http"):
        download(f"{loopback.url}/to-ftp", timeout=5, allow_private=True)


def test_a_name_that_resolves_elsewhere_when_connecting_is_refused(loopback, monkeypatch):
    """DNS rebinding: the name passed the check, the socket reached loopback: refused."""
    import repainter.fetch as fetch

    monkeypatch.setattr(fetch, "check_url", lambda url, allow_private: None)
    with pytest.raises(DownloadError, match="connected to a non-public address"):
        download(f"{loopback.url}/x.png", timeout=5)


@pytest.mark.parametrize("url, kind", [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://10.1.2.3/x.png", "private"),
    ("http://0.0.0.0/x.png", "unspecified"),
    ("http://[::1]/x.png", "loopback"),
    ("http://[::ffff:127.0.0.1]/x.png", "loopback"),
    ("ftp://example.org/x.png", "only http"),
])
def test_private_addresses_are_refused_before_connecting(url, kind, monkeypatch):
    monkeypatch.delenv(ALLOW_ENV, raising=False)

    def no_connection(*args, **kwargs):
        raise AssertionError("a refused URL must not connect")

    monkeypatch.setattr(socket.socket, "connect", no_connection)
    with pytest.raises(URLRefused, match=kind):
        check_url(url, allow_private=False)
    with pytest.raises(DownloadError, match=kind):
        download(url, timeout=5)


def test_the_private_url_flag_is_documented():
    text = (Path(__file__).resolve().parents[2] / "docs" / "datasets.md").read_text()
    assert "allow_private_urls: true" in text and ALLOW_ENV in text


# -- leftover: a non-UTF-8 MLLM body -----------------------------------------------------------

def test_a_non_utf8_mllm_body_is_a_reply_error_with_a_reason(tmp_path, serve, fault_spec, audit,
                                                            secret):
    from repainter.testing import FaultPlan

    from .conftest import run_to_the_end

    server = serve(FaultPlan(rate=1.0, kinds=["non_utf8"]))
    run_dir = tmp_path / "latin1"
    run_to_the_end(fault_spec(run_dir, server.url, limit=1, rounds=1, max_retries=1, reask=0))
    error = audit(run_dir, 1)["failed"][0]["error"]
    assert error.startswith("loop: MLLM"), error
    assert "not UTF-8" in error and "0xe9" in error, error
    assert "UnicodeDecodeError" not in error
    assert server.stats()["requests"] == 2  # retried once, as any unreadable body is


# -- row 10: a refused tracker fails fast, the run stays finished -----------------------------

def _closed_port() -> int:
    with socket.socket() as probe:  # bound then closed: nothing listens there now
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_mlflow_server_fails_the_tracker_fast_and_the_run_finishes(tmp_path,
                                                                            monkeypatch):
    pytest.importorskip("mlflow")
    import repainter
    from repainter.spec import build_spec

    for var in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT"):
        monkeypatch.delenv(var, raising=False)
    uri = f"http://127.0.0.1:{_closed_port()}"
    spec = build_spec({"name": "tracked", "output_dir": str(tmp_path / "run"),
                       "dataset": {"name": "world", "limit": 1},
                       "loop": {"rounds": 1, "variants": 2},
                       "runtime": {"trackers": [{"name": "mlflow",
                                                 "params": {"tracking_uri": uri}}]}})
    finished = threading.Event()
    outcome: dict = {}

    def run() -> None:
        outcome["result"] = repainter.run(spec)
        finished.set()

    threading.Thread(target=run, daemon=True).start()
    # MLflow's default retries took minutes here; a deadline far above a few seconds' answer
    assert finished.wait(90), "the run did not end: the tracker is still retrying"
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "finished"
    [row] = info["trackers"]
    assert row["status"] == "failed" and "cannot reach the tracking server" in row["error"]
    assert "refused" in row["error"].lower()
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # bounds removed after the log


def test_a_tracker_that_never_answers_is_cut_at_its_deadline(tmp_path):
    from repainter.trackers.base import Tracker, TrackerError, log_within_deadline

    release = threading.Event()

    class Stuck(Tracker):
        timeout = 0.2

        def log(self, payload):
            release.wait(30)
            return "never"

    try:
        with pytest.raises(TrackerError, match="no answer within its 0.2 s deadline"):
            log_within_deadline(Stuck(), payload=None)
    finally:
        release.set()


# -- rows 8, 9, 13: Ray on a cluster of its own, with deadlines, that dies with its driver -----

def _free_port() -> int:
    return _closed_port()


def _ray_run_command(out: Path, limit: int, rounds: int = 1) -> list[str]:
    return [sys.executable, "-m", "repainter.cli", "run", "-o", str(out),
            "--set", f"dataset.limit={limit}", "--set", f"loop.rounds={rounds}",
            "--set", "loop.variants=2", "--set", "runtime.executor=ray",
            "--set", "runtime.ray.num_workers=1"]


def _ray_env(ray_tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(ray_tmp)  # where ray.init() looks for "the last cluster"
    return env


@pytest.fixture
def ray_tmp():
    """A short RAY_TMPDIR of this test (Ray's socket paths must stay under 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="rpt-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _used_cluster(run_dir: Path, env: dict[str, str]) -> dict:
    done = subprocess.run(_ray_run_command(run_dir, 1), env=env, timeout=150,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((run_dir / "run.json").read_text())["executor"]["cluster"]


@pytest.mark.ray
@pytest.mark.slow
def test_a_run_without_an_address_never_joins_a_recorded_cluster(tmp_path, ray_tmp):
    """Row 8: a stale record (where ray.init() looks for "the last cluster") makes no hang; a
    stranger's live cluster recorded there is neither joined nor stopped. run.json says which
    cluster the run used."""
    pytest.importorskip("ray")
    from repainter.executors.ray_cluster import clean_up, session_processes

    record_dir = ray_tmp / "ray"
    record_dir.mkdir()
    env = _ray_env(ray_tmp)
    (record_dir / "ray_current_cluster").write_text(f"127.0.0.1:{_closed_port()}")  # dead
    cluster = _used_cluster(tmp_path / "stale", env)
    assert cluster["started_here"] is True and cluster["dashboard"] is None

    port = _free_port()  # a live stranger, started the way a user does, on free ports
    start = [str(Path(sys.executable).parent / "ray"), "start", "--head",
             "--temp-dir", str(record_dir), "--port", str(port), "--num-cpus", "1",
             "--include-dashboard=false", "--dashboard-agent-listen-port", str(_free_port()),
             "--metrics-export-port", str(_free_port()),
             "--ray-client-server-port", str(_free_port())]
    try:
        started = subprocess.run(start, env=env, timeout=120, capture_output=True, text=True)
        assert started.returncode == 0, (started.stdout + started.stderr)[-3000:]
        stranger = session_processes(str(record_dir))
        assert stranger
        cluster = _used_cluster(tmp_path / "live", env)
        assert cluster["started_here"] is True
        assert not cluster["address"].endswith(f":{port}")  # not the stranger's GCS
        assert set(stranger) <= set(session_processes(str(record_dir)))  # left running
    finally:
        clean_up(str(record_dir))  # only the cluster this test started


@pytest.mark.ray
@pytest.mark.slow
def test_a_stopped_worker_is_cut_at_the_case_deadline(tmp_path):
    """Row 9: SIGSTOP the worker of the first case: past case_timeout it is killed and replaced,
    the case is recorded failed with the reason (max_retries 0), the next case runs."""
    ray = pytest.importorskip("ray")
    from repainter import runner
    from repainter.executors.ray_pool import RayExecutor
    from repainter.spec import build_spec

    if ray.is_initialized():
        pytest.skip("needs a Ray of its own (this process already joined one)")
    spec = build_spec({"output_dir": str(tmp_path / "run"), "dataset": {"limit": 2},
                       "loop": {"rounds": 1, "variants": 2},
                       "runtime": {"executor": "ray", "ray": {"num_workers": 1, "max_retries": 0,
                                                              "case_timeout": 20}}})
    executor = RayExecutor(spec.runtime.ray)
    pids: dict = {}
    stopped: list[int] = []

    def note_pids(event):
        if event["event"] == "workers_ready":
            pids.update(zip(executor.actors, ray.get([a.pid.remote() for a in executor.actors])))

    def stop_first(actor):
        if not stopped:
            stopped.append(pids[actor])
            os.kill(pids[actor], signal.SIGSTOP)

    executor.on_dispatch = stop_first
    plan = runner.prepare(spec)
    try:
        counts, execution, seconds = runner.execute(plan, note_pids, executor=executor)
    finally:
        for pid in stopped:  # never leave a stopped process behind, whatever happened
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    assert stopped and counts["failed"] == 1 and counts["done"] == 1
    assert execution.executor["timed_out_units"] == 1 and execution.executor["lost_workers"] == 1
    records = runner.finalize(plan, counts, execution, seconds).records
    [failed] = [r for r in records if r.status != "done"]
    assert "no answer from worker in 20 s" in failed.error
    assert not ray.is_initialized()  # the private cluster was stopped


@pytest.mark.ray
@pytest.mark.slow
def test_a_killed_driver_leaves_no_ray_process(tmp_path):
    """Row 13: SIGKILL the driver mid-run: every process of its private cluster goes too."""
    pytest.importorskip("ray")
    from repainter.executors.ray_cluster import session_processes

    driver = subprocess.Popen(_ray_run_command(tmp_path / "run", 8, rounds=3),
                              env=_ray_env(tmp_path / "rt"), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    temp_dir = None
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and driver.poll() is None:
            temp_dir = temp_dir or _watchdog_folder(driver.pid)
            if temp_dir and (tmp_path / "run" / "cases").exists():  # a case is running
                break
            time.sleep(0.5)
        assert temp_dir and driver.poll() is None, "the run never got going"
        assert session_processes(temp_dir)  # the cluster is up
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    deadline = time.monotonic() + 60
    while session_processes(temp_dir) and time.monotonic() < deadline:
        time.sleep(0.5)
    left = [(pid, _cmdline(pid)[:120]) for pid in session_processes(temp_dir)]
    assert not left, left
    assert not Path(temp_dir).exists()


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _watchdog_folder(driver_pid: int) -> str | None:
    """The private cluster's folder, read off the driver's watchdog child."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        args = _cmdline(int(entry.name)).split()
        if parent == driver_pid and "repainter.executors.ray_cluster" in args:
            return args[-1]
    return None
