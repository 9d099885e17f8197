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


class BackendClock:
    """Thread-safe totals of seconds and calls per ``component.method``.

    Calls of concurrent cases overlap, so the sum of their seconds can exceed the wall time;
    ``busy_seconds`` is the wall time during which at least one call was in flight, which is
    what the framework's own time is measured against.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._active = 0
        self._busy_since = 0.0
        self._busy = 0.0

    def enter(self) -> None:
        with self._lock:
            if self._active == 0:
                self._busy_since = time.perf_counter()
            self._active += 1

    def leave(self) -> None:
        with self._lock:
            self._active -= 1
            if self._active == 0:
                self._busy += time.perf_counter() - self._busy_since

    @property
    def busy_seconds(self) -> float:
        with self._lock:
            open_interval = time.perf_counter() - self._busy_since if self._active else 0.0
            return self._busy + open_interval

    def add(self, key: str, seconds: float) -> None:
        with self._lock:
            self.seconds[key] += seconds
            self.calls[key] += 1

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

        def call(*args: Any, **kwargs: Any) -> Any:
            clock.enter()
            started = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                clock.add(key, time.perf_counter() - started)
                clock.leave()

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._inner, name, value)


def timed(component: Any, label: str, clock: BackendClock) -> Any:
    return _Timed(component, label, clock)
