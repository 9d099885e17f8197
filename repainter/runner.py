"""Run a spec: the one code path behind the CLI, the Python API and notebooks.

A run has three steps: ``prepare`` (open the run folder, plan the pending cases: finished ones
are reused from their records), ``execute`` (an executor runs the pending cases: in this process
or on a Ray cluster, see :mod:`repainter.executors`) and ``finalize`` (results, leaderboard,
run.json, report). With the local executor, after every node the case's state is checkpointed
to SQLite in the run folder, so a run started again with the same spec skips finished cases and
resumes an interrupted one at the node where it stopped. A case that fails (broken image, bad
model reply, crashed backend) is recorded with its reason and the run goes on.

Models run one at a time by default (``runtime.schedule: model_major``): a T2I model is built on
its first render, runs all its pending cases, and is released before the next one loads.
"""

from __future__ import annotations

import logging
import platform
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from repainter.backends.metric_identity import identities_of_records
from repainter.datasets import DatasetItem
from repainter.environment import capture as capture_environment
from repainter.executors import Execution, Executor, Stage, make_executor
from repainter.executors.prepare import selected_items
from repainter.executors.worker import CaseTask, EventCallback, case_event
from repainter.failures import FailFast, RunFailedError, failures_line, group_failures
from repainter.images import reference_digest
from repainter.logging_setup import logging_events, run_log
from repainter.preflight import preflight
from repainter.record_index import (
    AnyRecord,
    LazyRecords,
    Slimmer,
    collector_paused,
    finished_cases,
    slim_records,
    write_index,
)
from repainter.records import CaseRecord
from repainter.records.leaderboard import LeaderboardRow
from repainter.records.render_flags import render_flags_by_model
from repainter.records.run_info import RunInfo
from repainter.report.html import REPORT_DIR, write_report
from repainter.report.leaderboard import build_leaderboard, read_leaderboard, write_leaderboard
from repainter.result import RunResult
from repainter.run_status import now_iso, recorded_outcome
from repainter.spec import RunSpec, resolve_spec
from repainter.spec_checks import spec_warnings
from repainter.store import (
    RunStore,
    check_distinct_names,
    refuse_blank_output_dir,
    refuse_foreign_folder,
    run_folder_lock,
)
from repainter.version import __version__

logger = logging.getLogger(__name__)


@dataclass
class RunPlan:
    """A run before it executes: the spec, its folder, the selected items and what is pending."""

    spec: RunSpec
    store: RunStore
    items: list[DatasetItem]
    models: list[str]
    stages: list[Stage]
    #: Finished records of cases the run reuses (they are not run again): full records, or
    #: their summaries from the record index where the file did not change.
    reused: dict[CaseTask, AnyRecord]
    info: RunInfo
    #: Records of the cases this run executed, kept slim (the files hold them whole).
    finished: dict[CaseTask, CaseRecord] = field(default_factory=dict)
    #: Makes the slim records the run holds (sharing their equal parts).
    slim: Slimmer = field(default_factory=Slimmer)
    started: float = field(default_factory=time.perf_counter)
    #: Set to stop the run early (fail-fast): executors start no new case once it is set.
    stop: threading.Event = field(default_factory=threading.Event)
    #: Why the run stopped early (None: it did not).
    stopped_because: str | None = None

    @property
    def pending(self) -> list[CaseTask]:
        return [task for stage in self.stages for task in stage.tasks]


def run(
    spec: RunSpec | str | Path | None = None,
    *,
    overrides: list[str] = (),
    on_event: EventCallback | None = None,
    case_ids: list[str] | None = None,
    **settings: Any,
) -> RunResult:
    """Run ``spec`` (a RunSpec, a spec file, or None for the built-in world) to completion.

    ``settings`` override spec keys as Python values, e.g. ``run(loop={"rounds": 5}, seed=1)``
    (merged into the spec; ``overrides`` strings such as ``"loop.rounds=5"`` apply after them).
    Before anything is written, :func:`repainter.preflight.preflight` names every problem
    (unknown names, bad params, missing folders, weights or keys) at once. The run folder is
    locked for the whole run (a second writer is refused with this process's pid); the run
    appends to ``logs/run.log``, and a run that stops on an error leaves ``run.json`` saying so
    (``failed`` / ``interrupted`` and the ``error``), never "running".
    ``case_ids`` runs only those references, in that order (an adaptive budget's batches); an
    adaptive budget (:mod:`repainter.adaptive`) and an MLLM list (:mod:`repainter.mllm_grid`) are
    driven from here.
    """
    started = time.perf_counter()  # run.json's wall_seconds: the whole call, reading included
    spec = resolve_spec(spec, overrides, settings)
    refuse_blank_output_dir(spec.output_dir)
    preflight(spec)
    refuse_foreign_folder(spec.run_dir)  # before anything (seed or grid runs too) is written
    if spec.seeds:  # one sub-run per seed (each with its own folder lock), then aggregated
        from repainter.seed_runs import run_seeds

        return run_seeds(spec, on_event, run=run)
    if spec.budget is not None and spec.budget.mode == "adaptive" and case_ids is None:
        from repainter.adaptive import run_adaptive

        return run_adaptive(spec, on_event, run=run)
    if spec.is_grid:
        from repainter.mllm_grid import run_grid

        return run_grid(spec, on_event, case_ids, run=run)
    with run_folder_lock(spec.run_dir, "run"):
        plan = prepare(spec, case_ids=case_ids)
        plan.started = started
        with run_log(plan.store.root), recorded_outcome(plan.store, plan.info):
            logger.info("run %s in %s (spec %s)", spec.name, plan.store.root,
                        plan.info.spec_fingerprint)
            for warning in plan.info.warnings:
                logger.warning(warning)
            counts, execution, loop_seconds = execute(plan, logging_events(on_event))
            if plan.stopped_because is not None:
                plan.info.update(cases={**counts, "total": len(plan.items) * len(plan.models)},
                                 failures=group_failures(list(plan.finished.values())))
                raise RunFailedError(plan.stopped_because)
            with collector_paused():  # 20,000 records read and held: see collector_paused
                result = finalize(plan, counts, execution, loop_seconds)
            logger.info("run finished: %s", result.info.cases.model_dump(exclude_none=True))
            _raise_if_nothing_finished(result)
            return result


def _raise_if_nothing_finished(result: RunResult) -> None:
    """A run whose every case failed is a failed run (results, leaderboard and report are
    written all the same, for the reasons); one where some failed says how many and why."""
    info = result.info
    if not info.failures:
        return
    line = failures_line([g.model_dump() for g in info.failures], info.cases.total)
    logger.warning(line)
    records = (result.records.summaries() if isinstance(result.records, LazyRecords)
               else result.records)  # what the run holds: no record is read
    if not any(r.done for r in records):
        raise RunFailedError(f"no case finished: {line}", result)


def prepare(spec: RunSpec | str | Path | None = None, overrides: list[str] = (),
            case_ids: list[str] | None = None) -> RunPlan:
    """Validate the spec, open its run folder and plan the pending cases (nothing is built);
    with ``case_ids``, only those references, in that order. The caller holds the run folder's
    lock (``run`` does)."""
    spec = resolve_spec(spec, overrides)
    store = RunStore(spec.run_dir)
    spec = store.with_rescored_metrics(spec)  # a rescored run resumes with its added metrics
    info = open_run_info(spec, store, status="running")
    items = selected_items(spec)
    check_distinct_names("case id", [i.id for i in items])  # one file per case, model
    check_distinct_names("T2I label", [t.display_name for t in spec.t2i])
    if case_ids is not None:
        by_id = {item.id: item for item in items}
        items = [by_id[case_id] for case_id in case_ids if case_id in by_id]
    models = [c.display_name for c in spec.t2i]
    slim = Slimmer()
    with collector_paused():  # the index, and a read of every record not in it
        existing = finished_cases(store, slim)
    reused = {CaseTask(m, i.id): existing[(m, i.id)] for i in items for m in models
              if (m, i.id) in existing}
    for task in changed_references(store, items, reused):  # redone: its scores are of another image
        del reused[task]
        info.warnings.append(f"the reference of case {task.case_id!r} changed since "
                             f"{task.model!r} finished it: the case is run again")
        logger.warning(info.warnings[-1])
    stages = plan_stages(spec.runtime.schedule, models, items, set(reused))
    return RunPlan(spec=spec, store=store, items=items, models=models, stages=stages,
                   reused=reused, info=info, slim=slim)


def changed_references(store: RunStore, items: list[DatasetItem],
                       reused: dict[CaseTask, AnyRecord]) -> list[CaseTask]:
    """Finished cases whose reference file changed after they finished: the record names
    another pixel hash (``reference_sha256``) than the file holds now. Only local files are
    checked (a URL item is pinned by its cache and checksum, a generated one by its params); a
    file not modified since its record was written costs two ``stat`` calls, not a decode."""
    by_id = {item.id: item for item in items}
    memo = store.read_source_digests()
    changed = []
    for task, record in reused.items():
        item = by_id[task.case_id]
        written = store.root / store.record_relpath(task.model, task.case_id)
        digest = _digest_if_modified(item, written, record, memo)
        if digest is not None and digest != record.reference_sha256:
            changed.append(task)
    if memo != store.read_source_digests():
        store.write_source_digests(memo)
    return changed


def _digest_if_modified(item: DatasetItem, written: Path, record: AnyRecord,
                        memo: dict[str, list[Any]]) -> str | None:
    """The pixel hash of ``item``'s local file where it may have changed since ``written``
    (the record) was; None where it cannot have (or is no local file, or cannot be read: a
    broken input fails its case when it runs again, finished work is not undone for it)."""
    if record.reference_sha256 is None or not item.source:  # an older record: no hash
        return None
    try:
        info, done = Path(item.source).stat(), written.stat().st_mtime_ns
    except (OSError, ValueError):
        return None
    if max(info.st_mtime_ns, info.st_ctime_ns) <= done or not Path(item.source).is_file():
        return None
    key = [item.source, info.st_size, info.st_mtime_ns, info.st_ctime_ns]
    known = memo.get(item.id)
    if isinstance(known, list) and known[:4] == key:
        return known[4]
    try:
        digest = reference_digest(item.load().image)
    except Exception:  # noqa: BLE001
        return None
    memo[item.id] = [*key, digest]
    return digest


def open_run_info(spec: RunSpec, store: RunStore, status: str, **fields: Any) -> RunInfo:
    """Open ``spec``'s run folder (made, or resumed) and write its run.json as ``status``:
    what every kind of run records when it starts (``repainter run``, a graph served by
    ``langgraph dev``)."""
    resumed = store.init(spec)
    info = RunInfo(
        repainter_version=__version__,
        python=platform.python_version(),
        spec_fingerprint=spec.fingerprint(),
        started_at=now_iso(),
        resumed=resumed,
        status=status,
        warnings=spec_warnings(spec),
        settings=spec.settings_origin(),
        **fields,
    )
    store.write_run_info(store.read_run_info().merged(info))
    return info


def plan_stages(schedule: str, models: list[str], items, finished: set[CaseTask]) -> list[Stage]:
    """Pending cases in execution order: per model (model_major) or per reference (case_major).

        >>> from types import SimpleNamespace as Item
        >>> stages = plan_stages("model_major", ["a", "b"], [Item(id="1"), Item(id="2")], set())
        >>> [(s.model, [t.case_id for t in s.tasks]) for s in stages]
        [('a', ['1', '2']), ('b', ['1', '2'])]
    """
    if schedule == "case_major":
        units = [[CaseTask(m, i.id) for m in models if CaseTask(m, i.id) not in finished]
                 for i in items]
        return [Stage(model=None, units=[u for u in units if u])]
    stages = []
    for model in models:
        units = [[CaseTask(model, i.id)] for i in items if CaseTask(model, i.id) not in finished]
        if units:
            stages.append(Stage(model=model, units=units))
    return stages


def execute(plan: RunPlan, emit: EventCallback,
            executor: Executor | None = None) -> tuple[dict[str, int], Execution, float]:
    """Run the plan's pending cases with ``executor`` (default: the one the spec names)."""
    executor = executor or make_executor(plan.spec)
    counts = {"done": 0, "failed": 0, "reused": 0}
    seen: set[CaseTask] = set()
    lock = threading.Lock()

    fail_fast = FailFast(plan.spec.runtime.fail_fast.enabled, plan.spec.runtime.fail_fast.after)

    def on_record(task: CaseTask, record: CaseRecord) -> None:
        with lock:
            if task in seen:  # a case delivered twice (e.g. a retried worker) counts once
                return
            seen.add(task)
            plan.finished[task] = plan.slim(record)  # a large run holds none whole
            counts["done" if record.done else "failed"] += 1
            emit(case_event(record))
            reason = fail_fast.observe(record)
            if reason is not None:
                plan.stopped_because = reason
                plan.stop.set()
                logger.error("%s", reason)

    emit({"event": "start", "total": len(plan.items) * len(plan.models), "models": plan.models})
    for record in plan.reused.values():
        counts["reused"] += 1
        emit(case_event(record, reused=True))
    loop_started = time.perf_counter()
    execution = (executor.execute(plan, on_record, emit)
                 if plan.pending else Execution(executor={"name": "none: nothing pending"}))
    return counts, execution, time.perf_counter() - loop_started


def finalize(plan: RunPlan, counts: dict[str, int], execution: Execution,
             loop_seconds: float) -> RunResult:
    """Results, leaderboard, run.json and the report, from one read of the run's records, each
    kept slim (:class:`repainter.record_index.SlimRecord`: memory stays a fraction of the
    records' size).

    A re-run that ran nothing and whose records did not change reads none of them: results,
    leaderboard, report and run.json's per-record fields are current. The result's records are
    read from their files only if asked for (:class:`repainter.record_index.LazyRecords`)."""
    store, info = plan.store, plan.info
    planned = plan_records(plan)
    digest = store.records_digest(plan.models, [(r.model, r.case_id) for r in planned])
    previous = store.read_run_info()
    # nothing ran and no record changed since the last run wrote them: results.jsonl, the
    # leaderboard and the report are current (re-running a finished run recomputes nothing)
    current = (not plan.finished and previous.records_digest == digest
               and (store.root / "leaderboard.json").exists()
               and (store.root / REPORT_DIR / "index.html").exists())
    if current:
        records: Sequence[CaseRecord] = planned
        leaderboard = read_leaderboard(store.root).models
        per_record = {key: getattr(previous, key) for key in ("render_flags", "metrics", "failures")}
    else:
        records = slim_records(store, planned, plan.slim)
        store.write_results_jsonl(records)
        leaderboard = build_leaderboard(records, plan.models)
        write_leaderboard(leaderboard, store.root, records)
        per_record = _per_record_fields(records)
    if any(isinstance(r, CaseRecord) for r in planned):  # some were read: index them
        write_index(store, planned)
    info.update(**_finished_fields(plan, counts, execution, loop_seconds), **per_record,
                records_digest=digest)
    if store.unreadable:  # corrupt records met on the way (their cases were redone)
        info.unreadable_records = list(store.unreadable)
    store.write_run_info(info)
    if current:
        info.report = "current (no record changed)"
        store.write_run_info(info)
    else:  # the report shows run.json's wall time: that time stops before the report
        _report_and_track(plan, records, leaderboard)
    return RunResult(run_dir=store.root, spec=plan.spec, records=LazyRecords(store, records),
                     leaderboard=leaderboard, info=info)


def _per_record_fields(records: list[CaseRecord]) -> dict[str, Any]:
    """What run.json sums up of the records themselves."""
    return dict(
        # blanked / NaN / black renders per model: scores leave them out (issue 16 item 11)
        render_flags=render_flags_by_model(records),
        metrics=identities_of_records(records) or None,  # what each metric did (issue 27)
        failures=group_failures(records) or None,
    )


def _finished_fields(plan: RunPlan, counts: dict[str, int], execution: Execution,
                     loop_seconds: float) -> dict[str, Any]:
    """What run.json says about a finished run: counts, timings, models, usage, environment."""
    return dict(
        error=None,  # an earlier attempt's failure: this one finished
        status="finished",
        finished_at=now_iso(),
        wall_seconds=round(time.perf_counter() - plan.started, 3),
        cases={**counts, "total": len(plan.items) * len(plan.models)},
        executor=execution.executor,
        pacing=execution.pacing or None,
        schedule=plan.spec.runtime.schedule,
        models=execution.models,
        mllm_usage=execution.mllm_usage,
        mllm_adaptations=({plan.spec.mllm.display_name: execution.mllm_adaptations}
                          if execution.mllm_adaptations else {}),
        cache=execution.cache,
        loop_seconds=round(loop_seconds, 4),
        backend=execution.backend,
        backend_busy_seconds=round(execution.backend_busy_seconds, 4),
        setup_seconds=round(execution.setup_seconds, 4),
        release_seconds=round(execution.release_seconds, 4),
        # wall time of the loop, without loading and releasing models, that no backend call was
        # running in: never negative under concurrency
        framework_seconds=round(max(0.0, loop_seconds - execution.setup_seconds
                                    - execution.release_seconds
                                    - execution.backend_busy_seconds), 4),
        environment=capture_environment(),  # after the run: the device is known once loaded
        spec=plan.spec.model_dump(mode="json"),
    )


def _report_and_track(plan: RunPlan, records: list[CaseRecord],
                      leaderboard: list[LeaderboardRow]) -> None:
    """The HTML report and the trackers of new results (a report that fails is said in run.json
    and the log: the results are already safe on disk)."""
    store, info = plan.store, plan.info
    try:
        write_report(store.root, records=records, leaderboard=leaderboard)
    except Exception as exc:  # results are already safe on disk; say why there is no report
        info.report_error = f"{type(exc).__name__}: {exc}"
        store.write_run_info(info)
        logger.warning("could not write the HTML report: %s (rebuild with `repainter report %s`)",
                       info.report_error, store.root)
    if plan.spec.runtime.trackers:  # new results only; `repainter track RUN` sends them again
        from repainter.trackers import track_run

        info.trackers = track_run(store.root, plan.spec.runtime.trackers)
        store.write_run_info(info)


def plan_records(plan: RunPlan) -> list[AnyRecord]:
    """The run's records (reused and executed), in run-folder order, without reading them again
    (reused ones may be summaries from the record index); a case that neither delivered (a bug)
    is read from its file."""
    store = plan.store
    records = []
    for task in sorted({CaseTask(m, i.id) for i in plan.items for m in plan.models},
                       key=lambda t: PurePosixPath(store.record_relpath(t.model, t.case_id)).parts):
        record = plan.finished.get(task) or plan.reused.get(task)
        if record is None:
            record = store.read_case_record(task.model, task.case_id)
        if record is not None:
            records.append(record)
    return records
