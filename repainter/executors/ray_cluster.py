"""Which Ray cluster a run uses, and a private one that dies with its driver.

``ray.init()`` without an address joins whatever cluster Ray last recorded on the machine
(``/tmp/ray/ray_current_cluster``: another user's, or a stale record it then waits on). So a run
joins a cluster only when told (``runtime.ray.address`` or ``RAY_ADDRESS``); otherwise it starts
its own with ``ray.init(address="local")`` in a temp folder of its own, without the dashboard.

Ray's agents (DashboardAgent, RuntimeEnvAgent) and GCS can outlive a driver killed with SIGKILL,
which runs no cleanup. So a private cluster gets a watchdog: a small process in its own session
that holds the read end of a pipe whose write end only the driver holds. When the driver ends,
however it ends, the pipe closes and the watchdog stops every process of the session (found by
an environment marker, the temp folder in its command line, or a file open under it), then
removes the folder.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

#: Set in the environment of every process of a private cluster (they inherit it from the
#: driver's ``ray.init``), so the watchdog finds them whatever they call themselves.
MARKER = "REPAINTER_RAY_CLUSTER"
#: Seconds the driver waits for the watchdog's clean-up after a normal shutdown.
WATCHDOG_WAIT = 20.0


class PrivateCluster:
    """A local Ray cluster of this run: its temp folder and the watchdog that cleans it up."""

    def __init__(self) -> None:
        base = "/tmp" if Path("/tmp").is_dir() else None  # Ray's socket paths must stay short
        self.temp_dir = tempfile.mkdtemp(prefix="rp-ray-", dir=base)
        self.watchdog: subprocess.Popen | None = None

    def start(self, ray) -> dict[str, Any]:
        self.watchdog = subprocess.Popen(
            [sys.executable, "-m", "repainter.executors.ray_cluster", self.temp_dir,
             str(os.getpid())],
            stdin=subprocess.PIPE, start_new_session=True,  # a Ctrl-C to the driver spares it
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ[MARKER] = self.temp_dir  # inherited by GCS, raylet, agents and workers
        try:
            context = ray.init(address="local", _temp_dir=self.temp_dir,
                               include_dashboard=False, log_to_driver=False)
        finally:
            os.environ.pop(MARKER, None)
        return {"started_here": True, "address": context.address_info.get("gcs_address"),
                "dashboard": None, "temp_dir": self.temp_dir}

    def stop(self, ray) -> None:
        """Shut Ray down, then let the watchdog remove what is left (and wait for it)."""
        try:
            ray.shutdown()
        finally:
            if self.watchdog is not None:
                self.watchdog.stdin.close()  # the signal: the driver is done
                try:
                    self.watchdog.wait(WATCHDOG_WAIT)
                except subprocess.TimeoutExpired:
                    pass  # it goes on cleaning by itself
            shutil.rmtree(self.temp_dir, ignore_errors=True)


def connect(ray, address: str | None) -> tuple[dict[str, Any], PrivateCluster | None]:
    """Join the named cluster, or start a private one; the cluster record for run.json and the
    private cluster to stop (None when the run did not start it)."""
    if ray.is_initialized():  # the caller's own Ray (a notebook, a test): used as it is
        return {"started_here": False, "address": _gcs_address(ray), "joined": "initialised"}, None
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "local":
        context = ray.init(address=address, log_to_driver=False)
        return {"started_here": False, "joined": address,
                "address": context.address_info.get("gcs_address") or _gcs_address(ray),
                "dashboard": getattr(context, "dashboard_url", None) or None}, None
    cluster = PrivateCluster()
    try:
        return cluster.start(ray), cluster
    except BaseException:
        cluster.stop(ray)
        raise


def _gcs_address(ray) -> str | None:
    try:
        return ray.get_runtime_context().gcs_address
    except Exception:  # an old Ray without it: the record says so
        return None


def session_processes(temp_dir: str, spare: int | None = None) -> list[int]:
    """Pids of the processes of the Ray session in ``temp_dir`` (Linux /proc): its folder in the
    command line, the environment (:data:`MARKER`) or an open file. Ray's agents rename
    themselves (``ray::DashboardAgent``), so the command line alone misses them. ``spare``
    (the driver, which holds its own log files there) is left out."""
    needle = temp_dir.encode()
    found = []
    for entry in Path("/proc").iterdir() if Path("/proc").is_dir() else ():
        if not entry.name.isdigit() or int(entry.name) in (os.getpid(), spare):
            continue
        try:
            if (needle in (entry / "cmdline").read_bytes()
                    or MARKER.encode() + b"=" + needle + b"\0" in (entry / "environ").read_bytes()
                    or _holds_file_under(entry, temp_dir)):
                found.append(int(entry.name))
        except OSError:
            continue  # gone meanwhile, or not ours to read
    return found


def _holds_file_under(entry: Path, temp_dir: str) -> bool:
    prefix = temp_dir.rstrip("/") + "/"
    for fd in (entry / "fd").iterdir():
        try:
            if os.readlink(fd).startswith(prefix):
                return True
        except OSError:
            continue
    return False


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:
            pass


def clean_up(temp_dir: str, grace: float = 3.0, spare: int | None = None) -> None:
    """Stop the session's processes but ``spare`` (SIGTERM, then SIGKILL after ``grace``), and
    remove the folder."""
    _signal_all(session_processes(temp_dir, spare), signal.SIGTERM)
    deadline = time.monotonic() + grace
    while session_processes(temp_dir, spare) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_all(session_processes(temp_dir, spare), signal.SIGKILL)
    shutil.rmtree(temp_dir, ignore_errors=True)


def _watch(temp_dir: str, driver: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.stdin.buffer.read()  # returns when the driver closes the pipe or dies
    clean_up(temp_dir, spare=driver)


if __name__ == "__main__":
    _watch(sys.argv[1], int(sys.argv[2]))
