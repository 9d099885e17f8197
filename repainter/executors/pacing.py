"""How many cases the local executor keeps in flight, and what bound each model's stage.

A run on one machine is bound by its T2I device (one render at a time per model) and by the
MLLM's latency (several calls per case, each often slower than a render). A case alternates
between the two, so the device stays busy only if enough other cases are ready to render while
one waits on the MLLM. ``runtime.concurrency: auto`` sizes that number from what the run has
observed so far (the backend clock, :mod:`repainter.backend_timing`)::

    needed = ceil(HEADROOM x case time / device time per case) + 1

where a case's time is its renders, its MLLM calls at the server's *unloaded* latency (the
lowest seen, so a server that slows under load does not inflate the estimate: more cases only
lengthen its queue) and its in-process work (metrics, loading references); it is bounded by
``runtime.max_concurrency`` and by free memory. It starts at one case (a server that fails every
call fails the first cases one at a time, as fail-fast expects) and, once an MLLM call has been
answered by a server (off this process's CPU), probes with a few, doubling per window of calls
until a render is timed. A run whose MLLM computes in this process
stays sequential, since cases would only take turns on the CPU: a backend without its own
request limit (``config.concurrency``, which every backend sending requests to a server has;
the simulation bench has none), or one whose calls are mostly this process's CPU time. Cases are admitted in
plan order; results never depend on how many run at once (records are written per case and
read back in run-folder order).

Per stage (a model, model-major) :meth:`Pacer.stage_report` says how busy the device was, how
many MLLM calls were in flight against the backend's own limit, the time cases waited on each,
and which limit bound the stage, with a hint naming the setting to change.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from repainter.backend_timing import CASE_WORK, BackendClock, Gauge

logger = logging.getLogger(__name__)

#: Cases in flight per case the device could serve back to back: room for jitter in latencies.
HEADROOM = 1.25
#: An MLLM whose calls spend this share of their time on this process's CPU computes here (the
#: simulation bench): cases would only take turns on the CPU, so auto keeps them sequential.
IN_PROCESS_CPU = 0.5
#: Cases probed with once an MLLM call proves slow, before any render time is known.
PROBE = 4
#: The most cases probed with before a render is timed (then the estimate decides).
PROBE_MAX = 16
#: Device busy share from which the device itself is the limit (fill and drain are the rest).
DEVICE_BOUND_SHARE = 0.85
#: A window's MLLM latency per call this many times the unloaded one: the server is saturated.
SATURATED_RATIO = 2.0
#: Memory one in-flight case may hold (reference, renders, prepared metric inputs), a bound.
CASE_BYTES = 64 * 2**20
#: How often the admission loop looks at the clock again while it waits.
POLL_SECONDS = 0.05
#: Trajectory entries kept (the first and last halves, when a long run changes more often).
TRAJECTORY_KEPT = 40


def memory_cap(case_bytes: int = CASE_BYTES) -> int | None:
    """Cases a quarter of the free memory holds (None where the system cannot say)."""
    try:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None
    return max(1, int(free / 4 // case_bytes))


def mllm_limit(mllm: Any) -> int | None:
    """The MLLM backend's own limit on requests in flight (``config.concurrency``), looked up
    through its wrappers; None for a backend without one (in-process)."""
    seen = mllm
    for _ in range(8):
        limit = getattr(getattr(seen, "config", None), "concurrency", None)
        if isinstance(limit, int) and not isinstance(limit, bool):
            return limit
        seen = getattr(seen, "inner", None)
        if seen is None:
            return None
    return None


class Pacer:
    """Admits cases while fewer than :attr:`target` are in flight; an int ``setting`` fixes the
    target, ``"auto"`` re-estimates it from ``clock`` as the run goes."""

    def __init__(self, setting: int | str, ceiling: int, clock: BackendClock,
                 mllm_group: str, limit: int | None, memory: int | None = None):
        self.auto = setting == "auto"
        self.setting, self.clock, self.mllm_group, self.limit = setting, clock, mllm_group, limit
        self.memory_cap = memory
        self.target = int(setting) if not self.auto else 1
        if not self.auto:
            self.ceiling = self.target
        else:
            self.ceiling = min(ceiling, memory) if memory else ceiling
        self.needed: int | None = None  # the last estimate (before the ceiling)
        self.ratio: float | None = None  # a case's time over its render time
        self.unloaded_latency: float | None = None
        self.recent_latency: float | None = None
        self.saturated = False
        self.trajectory: list[dict[str, Any]] = []
        self.max_in_flight = self.run_max_in_flight = 0  # this stage's, the run's
        self._cases = Gauge()
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._window = (0, 0.0)  # MLLM calls, server call-seconds at the window's start
        self._windows = self._grown_at = 0  # windows closed; the window of the last growth
        self.in_process = False  # auto found the MLLM computing in this process
        self._stage: dict[str, Any] = {}
        self._done = {}
        self._live: dict[int, dict[str, list[float]]] = {}  # work of the cases in flight
        clock.set_limit(mllm_group, limit)
        self._note(self.target, "fixed by runtime.concurrency" if not self.auto else
                   "auto starts with one case until the MLLM has answered a call")

    @property
    def paced(self) -> bool:
        """Whether cases run on threads (auto, or a fixed number above one)."""
        return self.auto or self.target > 1

    # -- admission ------------------------------------------------------------------------------

    def dispatch(self, pool, units: Sequence[Any], run_unit: Callable[[Any], None],
                 stop: threading.Event) -> None:
        """Submit ``units`` to ``pool`` in order, each once fewer than the target are in flight;
        wait for all. A unit's exception (a bug: cases record their failures) is re-raised."""
        ready = threading.Condition()

        def finished(_future) -> None:
            with ready:
                self._move(-1)
                ready.notify()

        futures = []
        try:
            for unit in units:
                with ready:
                    while not stop.is_set() and self._cases.in_flight >= self.update():
                        ready.wait(timeout=POLL_SECONDS)
                    if stop.is_set():  # fail-fast: no new case starts
                        break
                    self._move(1)
                future = pool.submit(run_unit, unit)
                future.add_done_callback(finished)
                futures.append(future)
            for future in futures:
                future.result()
        except BaseException:  # Ctrl-C, SIGTERM: no new case starts; those in flight finish
            stop.set()
            logger.warning("stopping: %d case(s) in flight finish first (their checkpoints "
                           "make a kill safe too)", self._cases.in_flight)
            raise

    def dispatch_inline(self, units: Sequence[Any], run_unit: Callable[[Any], None],
                        stop: threading.Event) -> None:
        """Run ``units`` one after another in this thread (``runtime.concurrency: 1``)."""
        for unit in units:
            if stop.is_set():
                break
            self._move(1)
            try:
                run_unit(unit)
            finally:
                self._move(-1)

    def _move(self, step: int) -> None:
        with self._lock:
            self._cases.move(step, time.perf_counter())
            self.max_in_flight = max(self.max_in_flight, self._cases.in_flight)
            self.run_max_in_flight = max(self.run_max_in_flight, self._cases.in_flight)

    def update(self) -> int:
        """The target now (``auto``: re-estimated from the clock; never above the ceiling). It
        at most doubles per window of MLLM calls answered, and stops growing once the server's
        latency rises under load (more cases would only lengthen its queue)."""
        if not self.auto:
            return self.target
        estimate = self._estimate()
        if estimate is None:
            return self.target
        target, why = estimate
        if target > self.target:
            if self.saturated:
                target, why = self.target, "held: the MLLM server slows under load"
            elif self._windows == self._grown_at:
                target = self.target  # wait for the next window's latency before growing again
            elif target > max(PROBE, 2 * self.target):
                target, why = max(PROBE, 2 * self.target), f"doubling towards {target}: {why}"
            self._grown_at = self._windows
        if abs(target - self.target) >= max(2, self.target // 8):  # not every small wobble
            self.target = target
            self._note(target, why)
        return self.target

    def _estimate(self) -> tuple[int, str] | None:
        self._observe_mllm()
        latency = self.unloaded_latency
        if latency is None:  # no MLLM call answered yet
            return None
        self.in_process = self.limit is None
        if self.in_process:
            return 1, ("the MLLM has no request limit of its own (`config.concurrency`): it "
                       "computes in this process, nothing to overlap")
        cpu = self.clock.cpu_share(self.mllm_group + ".") or 0.0
        if cpu >= IN_PROCESS_CPU:
            self.in_process = True
            return 1, (f"the MLLM computes in this process ({cpu:.0%} of its call time on CPU): "
                       "nothing to overlap")
        device, mllm_calls, in_process = self._case_work()
        if device <= 0.0:  # doubles per window (the update's limit) until a render is timed
            return (min(2 * max(self.target, PROBE // 2), PROBE_MAX, self.ceiling),
                    "probing: the MLLM waits on a server, no render timed yet")
        self.ratio = ratio = (device + mllm_calls * latency + in_process) / device
        self.needed = math.ceil(HEADROOM * ratio) + 1
        why = (f"a case takes {ratio:.1f}x its render time (MLLM {latency:.2f} s a call unloaded)"
               + (f"; capped at {self.ceiling}" if self.needed > self.ceiling else ""))
        return min(self.needed, self.ceiling), why

    def _case_work(self) -> tuple[float, int, float]:
        """Render seconds, MLLM calls and in-process CPU seconds (metrics, loading references:
        CPU, since their wall time grows with the threads sharing the CPU) of the stage's
        finished cases and of those in flight that have rendered (a case's first MLLM calls
        come before its first render: counting cases that have not rendered yet would
        overestimate the MLLM's share)."""
        devices = {f"t2i:{model}" for model in self._stage["models"]}
        with self._lock:
            works = [dict(self._done)] + [dict(w) for w in self._live.values()]
        totals: dict[str, list[float]] = {}
        for work in works:
            if not devices & set(work):
                continue
            for group, values in work.items():
                total = totals.setdefault(group, [0.0, 0, 0.0])
                for i, value in enumerate(list(values)):
                    total[i] += value
        device = sum(totals.get(group, (0.0,))[0] for group in devices)
        mllm_calls = int(totals.get(self.mllm_group, (0.0, 0))[1])
        in_process = sum(v[2] for g, v in totals.items() if g.startswith(("metric:", "dataset")))
        return device, mllm_calls, in_process

    @contextmanager
    def case_work(self) -> Iterator[None]:
        """Collect the backend work of the case run in the block (this thread): the estimate
        reads it while the case runs and adds it to the stage's finished cases after."""
        work: dict[str, list[float]] = {}
        token = CASE_WORK.set(work)
        with self._lock:
            self._live[id(work)] = work
        try:
            yield
        finally:
            CASE_WORK.reset(token)
            with self._lock:
                del self._live[id(work)]
                for group, values in work.items():
                    total = self._done.setdefault(group, [0.0, 0, 0.0])
                    for i, value in enumerate(values):
                        total[i] += value

    def _observe_mllm(self) -> None:
        """Close a window of MLLM calls: the mean time of the calls answered in it, less the
        time calls waited behind the backend's own limit; the lowest is the unloaded latency."""
        gauge = self.clock.gauges().get(self.mllm_group)
        if gauge is None:
            return
        done, seconds = self.clock.answered(self.mllm_group + ".")  # a failing server: none
        served = seconds - gauge["over"]
        calls0, served0 = self._window
        # a window spans about one call's latency (every call in flight answered once)
        wanted = 1 if self.unloaded_latency is None else max(PROBE, self.clock.in_flight(self.mllm_group))
        if done - calls0 < wanted:
            return
        latency = max(0.0, served - served0) / (done - calls0)
        self._window = (done, served)
        self._windows += 1
        self.recent_latency = latency
        if self.unloaded_latency is None or latency < self.unloaded_latency:
            self.unloaded_latency = latency
        self.saturated = latency > SATURATED_RATIO * self.unloaded_latency

    def _note(self, target: int, why: str) -> None:
        self.trajectory.append({"at_s": round(time.perf_counter() - self._started, 2),
                                "target": target, "why": why})

    # -- stages and their report ----------------------------------------------------------------

    def begin_stage(self, models: list[str]) -> None:
        """Start measuring a stage of ``models`` (model-major: one; case-major: all)."""
        with self._lock:
            cases = self._cases.snapshot(time.perf_counter())
        with self._lock:
            self._done: dict[str, list[float]] = {}  # finished cases' work, this stage
        self._stage = {"models": models, "started": time.perf_counter(),
                       "gauges": self.clock.gauges(),
                       "cases": cases}
        self.max_in_flight = self._cases.in_flight

    def stage_report(self, cases: int) -> dict[str, dict[str, Any]]:
        """Per model of the stage just run (``cases`` of them): device busy share, MLLM in
        flight vs its limit, the time cases waited on each, the binding limit and a hint."""
        stage = self._stage
        wall = max(time.perf_counter() - stage["started"], 1e-9)
        if not self.auto:  # what auto would have run: the hint's number
            self._estimate()
        gauges = _deltas(self.clock.gauges(), stage["gauges"])
        with self._lock:
            in_flight = (self._cases.snapshot(time.perf_counter())["area"]
                         - stage["cases"]["area"]) / wall
        mllm = gauges.get(self.mllm_group, {})
        shared = {
            "stage_seconds": round(wall, 3),
            "cases": cases,
            "cases_in_flight_avg": round(in_flight, 2),
            "cases_in_flight_max": self.max_in_flight,
            "concurrency": self.setting,
            "concurrency_target": self.target,
            "mllm": {"limit": self.limit,
                     "in_flight_avg": round((mllm.get("area", 0.0) - mllm.get("over", 0.0)) / wall, 2),
                     "limit_wait_case_seconds": round(mllm.get("over", 0.0), 3),
                     "latency_per_call_s": _rounded(self.recent_latency),
                     "unloaded_latency_per_call_s": _rounded(self.unloaded_latency)},
        }
        return {model: self._model_report(model, shared, gauges, wall)
                for model in stage["models"]}

    def _model_report(self, model: str, shared: dict[str, Any],
                      gauges: dict[str, dict[str, float]], wall: float) -> dict[str, Any]:
        busy = gauges.get(f"t2i:{model}", {}).get("busy", 0.0)
        report = {**shared,
                  "device_busy_seconds": round(busy, 3),
                  "device_busy_share": round(min(1.0, busy / wall), 4),
                  "device_idle_seconds": round(max(0.0, wall - busy), 3),
                  "device_wait_case_seconds": round(gauges.get(f"queue:{model}", {}).get("area", 0.0), 3)}
        report["binding"], report["hint"] = self.binding(report)
        return report

    def binding(self, report: dict[str, Any]) -> tuple[str, str | None]:
        """The limit that bound a stage, and what to change (None: nothing would help)."""
        share, mllm = report["device_busy_share"], report["mllm"]
        wanted = math.ceil(report["cases_in_flight_avg"] / max(share, 0.05))
        if share >= DEVICE_BOUND_SHARE:
            return "device", None
        if self.in_process:  # more cases would only take turns on this process's CPU
            return "case work", None
        if mllm["limit"] is not None and mllm["limit_wait_case_seconds"] > 0.25 * report["stage_seconds"]:
            needed = _round_up(HEADROOM * mllm["in_flight_avg"] / max(share, 0.05))
            return ("mllm.params.concurrency",
                    f"raise `mllm.params.concurrency` to {min(needed, 256)} to keep the device busy "
                    f"(cases waited {mllm['limit_wait_case_seconds']:.0f} case-seconds behind its "
                    f"limit of {mllm['limit']})")
        if self.saturated:
            return ("mllm server",
                    f"the MLLM server slows under load ({self.recent_latency:.2f} s a call vs "
                    f"{self.unloaded_latency:.2f} s unloaded): a faster MLLM server or more "
                    "replicas would keep the device busy")
        bound = self.fill_bound(report["cases"])
        if bound is not None and share >= 0.9 * bound:  # more cases in flight would not help
            return "cases", (f"{report['cases']} cases are few for a case taking "
                             f"{self.ratio:.0f}x its render time: filling and draining the pipeline "
                             f"(about one case's time) leave the device at most {bound:.0%} busy")
        cap = self.ceiling if self.auto else self.target
        if report["cases_in_flight_max"] >= cap and (self.needed or wanted) > cap:
            return self._cap_binding(min(self.needed or wanted, 256))
        return "case work", "cases spend their time in this process (metrics, framework)"

    def _cap_binding(self, needed: int) -> tuple[str, str]:
        """The setting (or the memory) that capped the cases in flight below ``needed``."""
        if not self.auto:
            return "runtime.concurrency", (f"raise `runtime.concurrency` to {needed} to keep the "
                                           "device busy (or set it to `auto`)")
        if self.memory_cap is not None and self.ceiling == self.memory_cap:
            return "memory", (f"free memory holds {self.ceiling} cases in flight "
                              f"({CASE_BYTES // 2**20} MiB a case, a quarter of it): {needed} would "
                              "keep the device busy")
        return "runtime.max_concurrency", (f"raise `runtime.max_concurrency` to {needed} to keep "
                                           "the device busy")

    def fill_bound(self, cases: int) -> float | None:
        """The busiest a device can be over ``cases`` cases that each take :attr:`ratio` times
        their render time: the first render waits for a case's pre-render work and the last
        case's post-render work follows the last render, about one case's time in all."""
        if self.ratio is None or cases <= 0:
            return None
        return cases / (cases + max(0.0, self.ratio - 1.0))

    def summary(self) -> dict[str, Any]:
        """The concurrency that ran, for run.json's ``executor``."""
        trajectory = self.trajectory
        if len(trajectory) > TRAJECTORY_KEPT:
            half = TRAJECTORY_KEPT // 2
            trajectory = [*trajectory[:half], {"omitted": len(trajectory) - 2 * half},
                          *trajectory[-half:]]
        return {"concurrency": self.setting, "max_concurrency": self.ceiling,
                "memory_cap": self.memory_cap, "concurrency_final": self.target,
                "max_in_flight": self.run_max_in_flight,
                "concurrency_trajectory": trajectory}


def stage_line(model: str, report: dict[str, Any]) -> str:
    """One log / summary line of a model's stage report."""
    mllm = report["mllm"]
    limit = mllm["limit"] if mllm["limit"] is not None else "-"
    return (f"{model}: device busy {report['device_busy_share']:.0%} of "
            f"{report['stage_seconds']:.1f} s · cases in flight {report['cases_in_flight_avg']:.1f} "
            f"(concurrency {report.get('concurrency')}, target {report.get('concurrency_target')}) · "
            f"MLLM in flight {mllm['in_flight_avg']:.1f} of limit {limit} · waits: device "
            f"{report['device_wait_case_seconds']:.0f} case-s, MLLM limit "
            f"{mllm['limit_wait_case_seconds']:.0f} case-s · binding: {report['binding']}")


def _deltas(now: dict[str, dict[str, float]],
            before: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {group: {k: v - before.get(group, {}).get(k, 0.0) for k, v in values.items()}
            for group, values in now.items()}


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _round_up(value: float) -> int:
    """Up to a multiple of 4 (a setting people write)."""
    return max(4, 4 * math.ceil(value / 4))


__all__ = ["Pacer", "memory_cap", "mllm_limit", "stage_line"]
