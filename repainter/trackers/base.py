"""The tracker interface and the one function that feeds a finished run to trackers."""

from __future__ import annotations

import logging
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from repainter.registry import Registry
from repainter.trackers.payload import Payload, build_payload

logger = logging.getLogger(__name__)

TRACKERS: Registry[Any] = Registry("trackers", ("repainter.trackers.builtin",))


class TrackerError(RuntimeError):
    """A tracker could not be used (its package is missing, its store cannot be written)."""


class Tracker(ABC):
    """Receives one run's payload; ``log`` returns where the run now lives (a URI or folder)."""

    #: The optional extra that installs the tracker's package, and the module it provides.
    extra = ""
    package = ""
    #: Total seconds ``log`` may take (every external wait has one): past it the tracker is
    #: reported failed and the command goes on; its thread is a daemon, left to end by itself.
    timeout: float = 120.0

    @abstractmethod
    def log(self, payload: Payload) -> str: ...


def log_within_deadline(tracker: Tracker, payload: Payload) -> str:
    """``tracker.log(payload)``, or TrackerError once ``tracker.timeout`` seconds have passed."""
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["where"] = tracker.log(payload)
        except BaseException as exc:  # handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=work, name=f"tracker-{type(tracker).__name__}", daemon=True)
    thread.start()
    thread.join(tracker.timeout)
    if thread.is_alive():
        raise TrackerError(f"no answer within its {tracker.timeout:g} s deadline (timeout param)")
    if "error" in outcome:
        raise outcome["error"]
    return outcome["where"]


def _create(component) -> Tracker:
    try:
        return TRACKERS.create(component.name, **component.params)
    except ImportError as exc:
        raise TrackerError(f"tracker {component.name!r} needs its package: pip install "
                           f"'repainter[{component.name}]' ({exc})") from exc
    except TypeError as exc:
        raise TrackerError(f"tracker {component.name!r}: bad params ({exc})") from exc


def track_run(run_dir: str | Path, trackers: list[Any], *, strict: bool = False) -> list[dict[str, Any]]:
    """Send the finished run in ``run_dir`` to each tracker (ComponentSpecs or names).

    One row per tracker: ``{"tracker", "status": "logged" | "failed", "where", "error"}``. A
    tracker that fails is reported, never fatal (the run's files are already safe), unless
    ``strict``.
    """
    from repainter.spec import ComponentSpec

    components = [ComponentSpec.model_validate(t) if not isinstance(t, ComponentSpec) else t
                  for t in trackers]
    if not components:
        return []
    payload = build_payload(run_dir)
    rows = []
    for component in components:
        row = {"tracker": component.display_name, "status": "logged", "where": "", "error": ""}
        try:
            row["where"] = log_within_deadline(_create(component), payload)
        except Exception as exc:
            if strict:
                raise
            row.update(status="failed", error=f"{type(exc).__name__}: {exc}")
            logger.warning("tracker %s failed: %s", component.display_name, row["error"])
        rows.append(row)
    return rows
