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

Token authentication (Ray >= 2.5x): ``ray start --head`` turns it on when a token exists on the
machine (``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` names, or ``~/.ray/auth_token``,
which any earlier local ``ray.init()`` writes), and the cluster's own processes (raylet, workers)
read that token. A driver that joins by an explicit address (``RAY_ADDRESS``, ``--address``)
sends its token only with ``RAY_AUTH_MODE=token`` in its environment, so without it the join
fails with ``AuthenticationError``. :func:`join_auth` sets that mode when it is unset and a token
is found (a cluster without authentication accepts a driver that sends one), and run.json
records the mode and where the token came from.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from repainter.errors import UserError

#: Set in the environment of every process of a private cluster (they inherit it from the
#: driver's ``ray.init``), so the watchdog finds them whatever they call themselves.
MARKER = "REPAINTER_RAY_CLUSTER"
logger = logging.getLogger(__name__)

#: Ray's switch for token authentication (``token`` or ``disabled``).
AUTH_MODE = "RAY_AUTH_MODE"
#: Seconds the driver waits for the watchdog's clean-up after a normal shutdown.
WATCHDOG_WAIT = 20.0


class PrivateCluster:
    """A local Ray cluster of this run: its temp folder and the watchdog that cleans it up."""

    def __init__(self) -> None:
        base = "/tmp" if Path("/tmp").is_dir() else None  # Ray's socket paths must stay short
        self.temp_dir = tempfile.mkdtemp(prefix="rp-ray-", dir=base)
        self.watchdog: subprocess.Popen | None = None

    def start(self, ray, cpus: float = 0.0, gpus: float = 0.0) -> dict[str, Any]:
        """Start the cluster with room for the pool (``cpus``, ``gpus`` in total): as many
        CPUs as the machine has, or as the pool asks where that is more (its workers then
        share the cores, as threads would: the record says so); too few GPUs is an error."""
        machine = _machine_cpus()
        num_cpus = max(machine, math.ceil(cpus))
        if num_cpus > machine:
            logger.warning("the Ray pool asks for %g CPUs on a machine with %d: its workers "
                           "share the cores", cpus, machine)
        self.watchdog = subprocess.Popen(
            [sys.executable, "-m", "repainter.executors.ray_cluster", self.temp_dir,
             str(os.getpid())],
            stdin=subprocess.PIPE, start_new_session=True,  # a Ctrl-C to the driver spares it
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ[MARKER] = self.temp_dir  # inherited by GCS, raylet, agents and workers
        try:
            context = ray.init(address="local", _temp_dir=self.temp_dir, num_cpus=num_cpus,
                               include_dashboard=False, log_to_driver=False)
        finally:
            os.environ.pop(MARKER, None)
        found_gpus = ray.cluster_resources().get("GPU", 0.0)
        if found_gpus < gpus:
            raise UserError(f"the Ray pool asks for {gpus:g} GPUs (num_workers x "
                            f"num_gpus_per_worker) and this machine has {found_gpus:g}: "
                            "lower runtime.ray.num_workers or num_gpus_per_worker")
        return {"private": True, "started_here": True,
                "address": context.address_info.get("gcs_address"), "dashboard": None,
                "temp_dir": self.temp_dir, "num_cpus": num_cpus, "cpus_on_machine": machine,
                "num_gpus": found_gpus, "auth": auth_record()}

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


def connect(ray, address: str | None, cpus: float = 0.0, gpus: float = 0.0
            ) -> tuple[dict[str, Any], PrivateCluster | None]:
    """Join the named cluster, or start a private one with room for a pool of ``cpus`` and
    ``gpus``; the cluster record for run.json and the private cluster to stop (None when the
    run did not start it)."""
    if ray.is_initialized():  # the caller's own Ray (a notebook, a test): used as it is
        return {"private": False, "started_here": False, "address": _gcs_address(ray),
                "joined": "initialised", "auth": auth_record()}, None
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address and address != "local":
        auth = join_auth()
        try:
            context = ray.init(address=address, log_to_driver=False)
        except Exception as exc:
            if _caused_by_authentication(exc):
                raise ClusterAuthError(address, auth) from exc
            raise
        return {"private": False, "started_here": False, "joined": address,
                "address": context.address_info.get("gcs_address") or _gcs_address(ray),
                "dashboard": getattr(context, "dashboard_url", None) or None,
                "auth": auth}, None
    cluster = PrivateCluster()
    try:
        return cluster.start(ray, cpus, gpus), cluster
    except BaseException:
        cluster.stop(ray)
        raise


def _machine_cpus() -> int:
    """The CPUs Ray would give a local cluster by itself (its own count: containers' limits)."""
    try:
        from ray._private.utils import get_num_cpus

        return max(1, int(get_num_cpus()))
    except (ImportError, AttributeError):
        return os.cpu_count() or 1


class ClusterAuthError(UserError):
    """The cluster asked for a token this driver does not have (a user error: exit 2)."""

    def __init__(self, address: str, auth: dict[str, Any]):
        sent = (f"the token from {auth['token']}" if auth.get("token")
                else "no token (none found: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token)")
        super().__init__(
            f"the Ray cluster at {address} refused this driver's authentication: it sent {sent}. "
            "Give the driver the cluster's token (copy the head node's ~/.ray/auth_token, or "
            "`ray get-auth-token` there, into RAY_AUTH_TOKEN) and run again")


def _token_source() -> str | None:
    """Where Ray would read this process's token from, in Ray's order; None: no token."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    named = os.environ.get("RAY_AUTH_TOKEN_PATH")
    if named:
        return named if Path(named).is_file() else None
    default = Path.home() / ".ray" / "auth_token"
    return str(default) if default.is_file() else None


def auth_record() -> dict[str, Any]:
    """The authentication this process uses with Ray now: mode and where its token is read."""
    mode = (os.environ.get(AUTH_MODE) or "disabled").lower()
    return {"mode": mode, "token": _token_source() if mode == "token" else None}


def join_auth() -> dict[str, Any]:
    """Before joining by address: with ``RAY_AUTH_MODE`` unset and a token found, turn token
    mode on for this driver (as ``ray start --head`` does for the cluster). The record says
    whether this run set it."""
    if os.environ.get(AUTH_MODE) is None and _token_source() is not None:
        os.environ[AUTH_MODE] = "token"
        try:  # Ray caches its config at import: re-read it so the mode applies to this join
            from ray._raylet import Config

            Config.initialize("")
        except (ImportError, AttributeError):
            pass
        return {**auth_record(), "set_by": "repainter (a token was found, RAY_AUTH_MODE unset)"}
    return {**auth_record(), "set_by": AUTH_MODE if os.environ.get(AUTH_MODE) else None}


def _caused_by_authentication(exc: BaseException | None) -> bool:
    while exc is not None:
        if type(exc).__name__ == "AuthenticationError":
            return True
        exc = exc.__cause__ or exc.__context__
    return False


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
