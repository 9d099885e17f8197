"""Time spent inside backend calls, so a run can say what the framework itself costs.

``timed(component, label, clock)`` returns a proxy that forwards every attribute to the
component and adds the wall time of each method call to ``clock`` under ``label.method``. It sits
innermost, around the real backend, so cache hits cost no backend time.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from contextvars import ContextVar
from typing import Any

#: (T2I model label, case id) of the case the current thread works on; backends that bill per
#: call (tokens, dollars) tag their call records with it so costs add up per model and case.
CURRENT_CASE: ContextVar[tuple[str, str] | None] = ContextVar("repainter_current_case", default=None)
#: Seconds, calls and CPU seconds per backend group (``t2i:<label>``, ``mllm:<label>``, ...) of the case the
#: current thread runs, where its executor collects them (the pacing of cases reads finished
#: cases' work from it).
CASE_WORK: ContextVar[dict[str, list[float]] | None] = ContextVar("repainter_case_work",
                                                                  default=None)


class Gauge:
    """How many calls of one group are in flight, integrated over time: the wall time with at
    least one in flight (``busy``), the call-seconds in flight (``area``) and those beyond a
    ``limit`` (``over``: calls queued behind the backend's own limit). Not locked itself: the
    clock's lock guards it."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.in_flight = 0
        self.busy = self.area = self.over = 0.0
        self._since = time.perf_counter()

    def _advance(self, now: float) -> None:
        span, self._since = now - self._since, now
        if self.in_flight:
            self.busy += span
            self.area += self.in_flight * span
            if self.limit is not None:
                self.over += max(0, self.in_flight - self.limit) * span

    def move(self, step: int, now: float) -> None:
        self._advance(now)
        self.in_flight += step

    def snapshot(self, now: float) -> dict[str, float]:
        self._advance(now)
        return {"busy": self.busy, "area": self.area, "over": self.over}


class BackendClock:
    """Thread-safe totals of seconds and calls per ``component.method``.

    Calls of concurrent cases overlap, so the sum of their seconds can exceed the wall time;
    ``busy_seconds`` is the wall time during which at least one call was in flight, which is
    what the framework's own time is measured against. Per group (``t2i:<label>``, ``mllm:<label>``,
    ``queue:<label>``: cases waiting for a model's device slot) a :class:`Gauge` integrates the
    calls in flight, which the pacing of cases (:mod:`repainter.executors.pacing`) reads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        #: CPU time of the calling thread inside the calls: near their wall time for a backend
        #: computing in this process, near zero for one waiting on a server or a device.
        self.cpu_seconds: dict[str, float] = defaultdict(float)
        #: Calls that raised (counted in ``calls`` too).
        self.failed: dict[str, int] = defaultdict(int)
        self._active = 0
        self._busy_since = 0.0
        self._busy = 0.0
        self._gauges: dict[str, Gauge] = {}

    def enter(self, group: str | None = None) -> None:
        with self._lock:
            now = time.perf_counter()
            if group is not None:
                self._gauge(group).move(1, now)
                if group.startswith("queue:"):  # waiting for a slot is no backend work
                    return
            if self._active == 0:
                self._busy_since = now
            self._active += 1

    def leave(self, group: str | None = None) -> None:
        with self._lock:
            now = time.perf_counter()
            if group is not None:
                self._gauge(group).move(-1, now)
                if group.startswith("queue:"):
                    return
            self._active -= 1
            if self._active == 0:
                self._busy += now - self._busy_since

    def _gauge(self, group: str) -> Gauge:
        gauge = self._gauges.get(group)
        if gauge is None:
            gauge = self._gauges[group] = Gauge()
        return gauge

    def set_limit(self, group: str, limit: int | None) -> None:
        """Calls of ``group`` beyond ``limit`` wait for the backend's own slots (counted apart)."""
        with self._lock:
            self._gauge(group).limit = limit

    def gauges(self) -> dict[str, dict[str, float]]:
        """Every group's integrals up to now (``busy``, ``area``, ``over``, in seconds)."""
        with self._lock:
            now = time.perf_counter()
            return {group: gauge.snapshot(now) for group, gauge in self._gauges.items()}

    def totals(self) -> tuple[dict[str, float], dict[str, int]]:
        """Copies of the seconds and calls per ``component.method`` (consistent with each other)."""
        with self._lock:
            return dict(self.seconds), dict(self.calls)

    def answered(self, prefix: str) -> tuple[int, float]:
        """Calls whose key starts with ``prefix`` that returned (did not raise), and the seconds
        of all of them."""
        with self._lock:
            calls = sum(n for k, n in self.calls.items() if k.startswith(prefix))
            failed = sum(n for k, n in self.failed.items() if k.startswith(prefix))
            seconds = sum(v for k, v in self.seconds.items() if k.startswith(prefix))
        return calls - failed, seconds

    def cpu_share(self, prefix: str) -> float | None:
        """CPU seconds over wall seconds of the calls whose key starts with ``prefix``."""
        with self._lock:
            wall = sum(v for k, v in self.seconds.items() if k.startswith(prefix))
            cpu = sum(v for k, v in self.cpu_seconds.items() if k.startswith(prefix))
        return cpu / wall if wall > 0 else None

    def in_flight(self, group: str) -> int:
        with self._lock:
            gauge = self._gauges.get(group)
            return gauge.in_flight if gauge is not None else 0

    @property
    def busy_seconds(self) -> float:
        with self._lock:
            open_interval = time.perf_counter() - self._busy_since if self._active else 0.0
            return self._busy + open_interval

    def add(self, key: str, seconds: float, cpu_seconds: float = 0.0, failed: bool = False) -> None:
        with self._lock:
            self.seconds[key] += seconds
            self.calls[key] += 1
            self.cpu_seconds[key] += cpu_seconds
            if failed:
                self.failed[key] += 1

    @property
    def total_seconds(self) -> float:
        with self._lock:
            return sum(self.seconds.values())

    def summary(self) -> dict[str, Any]:
        with self._lock:
            return {
                "total_seconds": round(sum(self.seconds.values()), 4),
                "calls": dict(sorted(self.calls.items())),
                "seconds": {k: round(v, 4) for k, v in sorted(self.seconds.items())},
            }


# Methods that do model work; cheap accessors (identity, similarity, usage) are not timed.
TIMED_METHODS = frozenset({
    "generate", "describe", "rewrite_prompt", "write_variants", "critique", "revise", "judge",
    "refine_dialogue",
    "prepare", "score",
    "score_metadata",  # metrics of a render's recorded metadata (the simulation bench's truth)
    "load",  # dataset items: decoding or rendering a reference
})


class _Timed:
    def __init__(self, inner: Any, label: str, clock: BackendClock):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_label", label)
        object.__setattr__(self, "_clock", clock)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._inner, name)
        if name not in TIMED_METHODS or not callable(value):
            return value
        key, clock = f"{self._label}.{name}", self._clock

        group = self._label

        def call(*args: Any, **kwargs: Any) -> Any:
            clock.enter(group)
            started, cpu_started = time.perf_counter(), time.thread_time()
            failed = True
            try:
                result = value(*args, **kwargs)
                failed = False
                return result
            finally:
                seconds, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
                clock.add(key, seconds, cpu, failed=failed)
                clock.leave(group)
                work = CASE_WORK.get()
                if work is not None:
                    entry = work.setdefault(group, [0.0, 0, 0.0])
                    entry[0] += seconds
                    entry[1] += 1
                    entry[2] += cpu

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)


def timed(component: Any, label: str, clock: BackendClock) -> Any:
    return _Timed(component, label, clock)
