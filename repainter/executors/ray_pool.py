"""The Ray executor: a pool of Ray Core actors, each running whole cases.

Each actor builds the spec's components once (its T2I pipelines load lazily on first render,
the metric models on first score) and runs cases with the same :class:`CaseWorker` code as the
local executor, over a scratch folder of its own. It returns each case's record together with
the files the case wrote (reference, description, renders) as bytes; the driver writes them into
the run folder through one writer, the record last, so the run folder stays the single source of
truth and no SQLite file is written by two hosts (workers keep no checkpoints: a re-run reuses
finished cases from their records). ``runtime.cache`` works as with the local executor: the
run's cache file is owned by one service actor on the driver's node that every worker reads and
writes (:mod:`repainter.executors.ray_cache`).

Why actors and not Ray Data: a case is not a row-wise map but a loop of 10-20 dependent calls
(MLLM, T2I, metrics) with state, and its unit of retry is the whole case. An actor pool gives
exactly that: models loaded once per actor and kept across cases, one case (or one reference's
cases) per call, and the driver decides what happens when an actor dies (retry the cases it held
elsewhere, a bounded number of times, then record them failed) and when a model is released
(model-at-a-time stages). Ray Data's actor pools would add a dataset/batch layer, its own
retry and ordering semantics and a streaming executor for what is a simple work queue.

Faults: an actor that dies (killed process, lost node, CUDA error that kills the process) loses
only the cases it was running; they go back to the queue and run on a fresh actor, at most
``runtime.ray.max_retries`` more times, then are recorded failed with the reason. A record is
written and counted once per case. An actor that does not answer (a stopped process, a hung
driver call) is treated the same way once a unit has run past its deadline
(``runtime.ray.case_timeout``, see :meth:`RaySpec.case_deadline`): it is killed and replaced, and
its cases go back to the queue, or are recorded failed with "no answer from worker in N s".

Which cluster: :mod:`repainter.executors.ray_cluster` (a private one unless an address is given).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repainter.backends.mllm.adaptations import merge as merge_adaptations
from repainter.errors import UserError
from repainter.executors.base import (
    EventCallback,
    Execution,
    RecordCallback,
    Stage,
    merge_model_memory,
    mllm_adaptations,
    releases_after,
)
from repainter.executors.ray_cache import ServiceCache, merge_stats, start_service
from repainter.executors.ray_cluster import connect
from repainter.executors.worker import CaseTask, CaseWorker, record_failure
from repainter.images import atomic_write_bytes
from repainter.spec import RaySpec, RunSpec
from repainter.store import RunStore

logger = logging.getLogger(__name__)


class CaseActor:
    """One worker of the pool (a Ray actor): components built once, cases run one unit a call."""

    def __init__(self, spec_data: dict[str, Any], cache_service: Any = None,
                 run_root: str = ""):
        from langgraph.checkpoint.memory import InMemorySaver

        from repainter.executors.prepare import prepare_context

        spec = RunSpec.model_validate(spec_data)
        # The driver owns the run folder and its SQLite files: a worker's cache is the driver's,
        # through its service. Its components are guarded for the references it runs at once
        # (renders queue, metric models score one batch at a time), as the local executor's are.
        runtime = spec.runtime.model_copy(
            update={"cache": False, "concurrency": spec.runtime.ray.cases_per_worker})
        spec = spec.model_copy(update={"runtime": runtime})
        self.scratch = Path(tempfile.mkdtemp(prefix="repainter-worker-"))
        cache = (ServiceCache(cache_service, self.scratch, run_root)
                 if cache_service is not None else None)
        ctx, _items, components = prepare_context(spec, RunStore(self.scratch), cache)
        self.worker = CaseWorker(ctx, components, InMemorySaver())

    def run_unit(self, tasks: list[tuple[str, str]],
                 descriptions: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Run the cases of one reference; return per case its record, events and files."""
        store = self.worker.store
        for case_id, iut in descriptions.items():  # described already: share, don't re-ask
            store.save_description(case_id, iut)
        outcomes = []
        for model, case_id in tasks:
            events: list[dict[str, Any]] = []
            record = self.worker.run_case(CaseTask(model, case_id), events.append)
            files = {rel: (store.root / rel).read_bytes() for rel in store.case_files(model, case_id)}
            outcomes.append({"record": record, "events": events, "files": files})
        for model, case_id in tasks:
            store.remove_case_files(model, case_id)
        self.worker.forget(tasks[0][1])
        return outcomes

    def release(self, model: str) -> dict[str, Any]:
        return self.worker.release(model)

    def finish(self) -> dict[str, Any]:
        """Release every model; return this worker's usage and timings."""
        components = self.worker.components
        models = {label: components.release(label) for label in components.lazy}
        components.close()  # sends the cache's last entries
        shutil.rmtree(self.scratch, ignore_errors=True)
        return {"models": models, "mllm_usage": components.mllm.usage(),
                "cache": components.cache.stats() if components.cache is not None else None,
                "mllm_adaptations": mllm_adaptations(components.mllm),
                "backend": components.clock.summary(),
                "busy_seconds": components.clock.busy_seconds}

    def pid(self) -> int:
        return os.getpid()


class RayExecutor:
    """Runs the stages on a pool of ``num_workers`` CaseActors (see the module docstring)."""

    def __init__(self, config: RaySpec):
        self.config = config
        self.actors: list[Any] = []  # the live pool, one actor per slot
        self._busy: Counter[int] = Counter()
        self.lost_workers = 0
        self.timed_out_units = 0
        self.case_seconds = config.case_deadline(1, 1)  # set per run from its loop
        #: Called with the actor each unit is sent to (monitoring; tests inject faults here).
        self.on_dispatch: Callable[[Any], None] | None = None
        # the pool's start: workers up (slots), still starting (pid ref -> slot), given up
        self._ready: set[int] = set()
        self._starting: dict[Any, int] = {}
        self._given_up: set[int] = set()
        self.never_started = 0
        self._start_deadline = self._joined_at = 0.0
        self._start_seconds: dict[str, Any] = {}
        self._new_actor: Callable[[], Any] = lambda: None  # set when the pool starts

    def _deadline(self, cases: int) -> float:
        """Seconds a unit of ``cases`` cases (or one call to every actor) may take."""
        return self.case_seconds * max(1, cases)

    def busy_actors(self) -> list[Any]:
        """The actors running a unit right now."""
        return [self.actors[slot] for slot in sorted(self._busy) if self._busy[slot] > 0]

    def execute(self, plan, on_record: RecordCallback, emit: EventCallback) -> Execution:
        import ray

        spec, store = plan.spec, plan.store
        self.items = {item.id: item for item in plan.items}
        setup_started = time.perf_counter()
        cfg = self.config
        cluster_record, private = connect(ray, cfg.address,
                                          cpus=cfg.num_workers * cfg.num_cpus_per_worker,
                                          gpus=cfg.num_workers * cfg.num_gpus_per_worker)
        execution = Execution(executor={"name": "ray", **self.config.model_dump(mode="json"),
                                        "cluster": cluster_record})
        self.lost_workers = self.timed_out_units = 0
        self.case_seconds = self.config.case_deadline(spec.loop.rounds, spec.loop.variants)
        service = None
        try:
            joined_at = time.perf_counter()
            service = self._cache_service(ray, spec, store, cluster_record, execution)
            self._start_pool(ray, spec, service, store)
            execution.setup_seconds = time.perf_counter() - setup_started
            self._start_seconds = execution.executor["start_seconds"] = {
                "cluster": round(joined_at - setup_started, 3),
                "first_worker": round(time.perf_counter() - joined_at, 3),
                "all_workers": None}  # set when the last one is up
            self._joined_at = joined_at
            self._note_started(ray, [])
            emit({"event": "workers_ready", "workers": len(self._ready)})
            self._stop = plan.stop
            for stage in plan.stages:
                if plan.stop.is_set():
                    break
                self._run_stage(ray, stage, store, on_record, emit)
                if releases_after(spec, stage):
                    with execution.releasing():
                        for released in self._on_every_actor(ray, "release", stage.model,
                                                             replace=True):
                            merge_model_memory(execution.models, stage.model, released)
            with execution.releasing():  # every worker releases what it still holds
                self._collect(ray, execution)
            execution.executor.update(workers_never_started=self.never_started,
                                      lost_workers=self.lost_workers,
                                      timed_out_units=self.timed_out_units,
                                      case_deadline_s=self._deadline(1))
        finally:
            self._stop_pool(ray, service, private)
        return execution

    def _cache_service(self, ray, spec: RunSpec, store: RunStore, cluster: dict[str, Any],
                       execution: Execution) -> Any:
        """The driver-side cache service of ``runtime.cache`` (None when the cache is off)."""
        if not spec.runtime.cache:
            return None
        if str(cluster.get("joined") or "").startswith("ray://"):
            raise UserError(
                "runtime.cache with a Ray Client address (ray://...): the cache would live on "
                "the head node, not with this run's folder. Join by the cluster's GCS address "
                "(HEAD:6379) or set runtime.cache=false")
        folder = Path(spec.runtime.cache_dir) if spec.runtime.cache_dir else store.root
        path = folder.resolve() / "cache.sqlite"
        execution.executor["cache"] = {"file": str(path), "served_by": "an actor on the driver's node"}
        return start_service(ray, path)

    def _start_pool(self, ray, spec: RunSpec, service: Any, store: RunStore) -> None:
        """Start every actor at once; return when the first has built its components (each
        takes cases from the moment it is up: on shared cores they come up one by one)."""
        cfg = self.config
        actor_class = ray.remote(CaseActor).options(
            num_cpus=cfg.num_cpus_per_worker, num_gpus=cfg.num_gpus_per_worker,
            max_restarts=0, max_task_retries=0, max_concurrency=cfg.cases_per_worker,
        )
        spec_data, run_root = spec.model_dump(mode="json"), str(store.root.resolve())
        self._new_actor = lambda: actor_class.remote(spec_data, service, run_root)
        self.actors = [self._new_actor() for _ in range(cfg.num_workers)]
        self._ready, self._given_up, self.never_started = set(), set(), 0
        self._start_deadline = time.monotonic() + self._deadline(1)
        self._starting = {actor.pid.remote(): slot for slot, actor in enumerate(self.actors)}
        first, _ = ray.wait(list(self._starting), num_returns=1, timeout=self._deadline(1))
        if not first:
            raise RuntimeError(
                f"none of the {len(self.actors)} Ray workers started within "
                f"{self._deadline(1):g} s (does the cluster have the CPUs/GPUs they ask "
                "for?)")
        ray.get(first)  # a worker that failed to build its components fails the run: say why

    def _note_started(self, ray, refs: list[Any]) -> list[int]:
        """Slots of the workers that came up (``refs``, and any other already up); those past
        the start deadline are given up (killed, counted, logged)."""
        done = ray.wait(list(self._starting), num_returns=len(self._starting),
                        timeout=0)[0] if self._starting else []
        slots = []
        for ref in set(done) | set(refs):
            ray.get(ref)
            slots.append(self._starting.pop(ref))
        if self._starting and time.monotonic() > self._start_deadline:
            for slot in self._starting.values():
                ray.kill(self.actors[slot], no_restart=True)
                self._given_up.add(slot)
            self.never_started = len(self._starting)
            logger.warning("%d of %d Ray workers did not start within %g s: the run goes on "
                           "with %d", self.never_started, len(self.actors), self._deadline(1),
                           len(self.actors) - self.never_started)
            self._starting = {}
        self._ready.update(slots)
        if not self._starting and self._start_seconds["all_workers"] is None:
            self._start_seconds["all_workers"] = round(time.perf_counter() - self._joined_at, 3)
        return slots

    def _stop_pool(self, ray, service: Any, private) -> None:
        for actor in self.actors:
            ray.kill(actor)
        self.actors = []
        try:
            if service is not None:  # commits what the workers sent last
                ray.get(service.close.remote(), timeout=self._deadline(1))
                ray.kill(service)
        finally:
            if private is not None:
                private.stop(ray)

    def _run_stage(self, ray, stage: Stage, store: RunStore, on_record: RecordCallback,
                   emit: EventCallback) -> None:
        queue: deque[list[CaseTask]] = deque(stage.units)
        # one entry per free place: each actor runs cases_per_worker units at once
        per_worker = self.config.cases_per_worker
        idle: deque[int] = deque(slot for _ in range(per_worker) for slot in sorted(self._ready))
        # ref -> (slot, unit, actor, deadline on the monotonic clock)
        in_flight: dict[Any, tuple[int, list[CaseTask], Any, float]] = {}
        attempts: Counter[CaseTask] = Counter()
        lost = _Lost(self, store, on_record, attempts, queue)
        stop = getattr(self, "_stop", None) or threading.Event()
        while (queue and not stop.is_set()) or in_flight:
            while queue and idle and not stop.is_set():  # fail-fast: no new case once set
                slot, unit = idle.popleft(), queue.popleft()
                descriptions = {t.case_id: d for t in unit[:1]
                                if (d := store.load_description(t.case_id)) is not None}
                ref = self.actors[slot].run_unit.remote(
                    [(t.model, t.case_id) for t in unit], descriptions)
                in_flight[ref] = (slot, unit, self.actors[slot],
                                  time.monotonic() + self._deadline(len(unit)))
                self._busy[slot] += 1
                if self.on_dispatch is not None:
                    self.on_dispatch(self.actors[slot])
            soonest = min([entry[3] for entry in in_flight.values()]
                          + ([self._start_deadline] if self._starting else []))
            ready, _ = ray.wait(list(in_flight) + list(self._starting), num_returns=1,
                                timeout=max(0.0, soonest - time.monotonic()))
            started = [ref for ref in ready if ref in self._starting]
            if started or (self._starting and time.monotonic() > self._start_deadline):
                idle.extend(slot for slot in self._note_started(ray, started)
                            for _ in range(per_worker))
                continue
            if not ready:  # no answer in time: the units past their deadline are lost
                for ref in [r for r, e in in_flight.items() if e[3] <= time.monotonic()]:
                    slot, unit, actor, _ = in_flight.pop(ref)
                    self._busy[slot] -= 1
                    idle.append(slot)
                    self.timed_out_units += 1
                    ray.kill(actor, no_restart=True)  # SIGKILL reaches a stopped process too
                    lost.unit(slot, actor, unit, f"no answer from worker in "
                                                 f"{self._deadline(len(unit)):g} s")
                continue
            for ref in ready:
                slot, unit, actor, _ = in_flight.pop(ref)
                self._busy[slot] -= 1
                idle.append(slot)
                try:
                    outcomes = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # a bug inside the worker's code
                    for task in unit:
                        on_record(task, _failure(store, self.items[task.case_id], task, f"worker error: {exc}"))
                    continue
                except ray.exceptions.RayError as exc:  # the actor died: its cases go back
                    lost.unit(slot, actor, unit, f"{type(exc).__name__}: {_first_line(exc)}")
                    continue
                for task, outcome in zip(unit, outcomes, strict=True):
                    write_outcome(store, outcome)
                    for event in outcome["events"]:
                        emit(event)
                    on_record(task, outcome["record"])

    def _on_every_actor(self, ray, method: str, *args, replace: bool = False) -> list[Any]:
        """Call ``method`` on every actor; one that has died since its last case is skipped
        (and replaced by a fresh actor with ``replace``)."""
        slots = [slot for slot in range(len(self.actors)) if slot not in self._given_up]
        refs = [getattr(self.actors[slot], method).remote(*args) for slot in slots]
        results = []
        for slot, ref in zip(slots, refs, strict=True):
            try:
                results.append(ray.get(ref, timeout=self._deadline(1)))
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                ray.kill(self.actors[slot], no_restart=True)  # a stopped actor answers never
                self.lost_workers += 1
                if replace:
                    self.actors[slot] = self._new_actor()
        return results

    def _collect(self, ray, execution: Execution) -> None:
        reports = self._on_every_actor(ray, "finish")
        usage: Counter[str] = Counter()
        seconds: Counter[str] = Counter()
        calls: Counter[str] = Counter()
        for report in reports:
            usage.update(report["mllm_usage"])
            seconds.update(report["backend"]["seconds"])
            calls.update(report["backend"]["calls"])
            for label, released in report["models"].items():
                merge_model_memory(execution.models, label, released)
        execution.mllm_usage = dict(usage)
        if "cache" in execution.executor:  # the cache was on: the workers' counts, summed
            execution.cache = merge_stats([r.get("cache") for r in reports])
        execution.mllm_adaptations = merge_adaptations(r.get("mllm_adaptations", [])
                                                       for r in reports)
        execution.backend = {"total_seconds": round(sum(seconds.values()), 4),
                             "calls": dict(sorted(calls.items())),
                             "seconds": {k: round(v, 4) for k, v in sorted(seconds.items())}}
        # workers run in parallel: the busiest one bounds the backend's share of the wall time
        execution.backend_busy_seconds = max((r["busy_seconds"] for r in reports), default=0.0)


class _Lost:
    """What happens to a unit whose actor died or stopped answering: the actor is replaced (once),
    each case goes back to the queue or, past ``max_retries``, is recorded failed."""

    def __init__(self, executor: RayExecutor, store: RunStore, on_record: RecordCallback,
                 attempts: Counter[CaseTask], queue: deque[list[CaseTask]]):
        self.executor, self.store, self.on_record = executor, store, on_record
        self.attempts, self.queue = attempts, queue

    def unit(self, slot: int, actor: Any, unit: list[CaseTask], why: str) -> None:
        executor = self.executor
        if executor.actors[slot] is actor:  # its other units fail too: replace once
            executor.lost_workers += 1
            executor.actors[slot] = executor._new_actor()
        retry = []
        for task in unit:
            self.attempts[task] += 1
            if self.attempts[task] > executor.config.max_retries:
                reason = f"worker lost {self.attempts[task]} times ({why})"
                self.on_record(task, _failure(self.store, executor.items[task.case_id], task,
                                              reason))
            else:
                retry.append(task)
        if retry:
            self.queue.appendleft(retry)


def write_outcome(store: RunStore, outcome: dict[str, Any]) -> None:
    """Write a worker's case files into the run folder, the record last (it marks the case)."""
    for relative, data in outcome["files"].items():
        path = store.root / relative
        shared = relative.startswith(("references/", "descriptions/"))
        if not (shared and path.exists()):
            atomic_write_bytes(path, data)
    store.write_case_record(outcome["record"])


def _failure(store: RunStore, item, task: CaseTask, reason: str) -> dict[str, Any]:
    return record_failure(store, task.model, item, reason, stage="worker")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
