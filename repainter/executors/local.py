"""The local executor: cases run in this process, straight into the run folder.

After every node a case's state is saved to the run folder's ``checkpoints.sqlite`` (one row
per case, :class:`repainter.executors.checkpoints.CaseProgress`), so a run started again resumes
an interrupted case at the node where it stopped; a finished case's row is deleted (its record
is the result). Renders, saved states and records are written by one background thread, in
order (:mod:`repainter.writer`): the loop never waits for a disk.
``runtime.concurrency`` references are in flight at once (threads; MLLM calls overlap, T2I
batches are throttled); ``auto`` (the default) keeps as many as keep the T2I device busy
(:mod:`repainter.executors.pacing`), and each stage reports how busy the device was and
which limit bound it.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

from langgraph.checkpoint.sqlite import SqliteSaver

import repainter.executors.prepare as preparing  # module lookup: tests instrument it
from repainter.executors.base import (
    EventCallback,
    Execution,
    RecordCallback,
    Stage,
    merge_model_memory,
    mllm_adaptations,
    releases_after,
)
from repainter.executors.checkpoints import CaseProgress, QueuedSaver
from repainter.executors.pacing import Pacer, memory_cap, mllm_limit, stage_line
from repainter.executors.worker import CaseTask, CaseWorker

logger = logging.getLogger(__name__)


class LocalExecutor:
    """Runs every stage in this process with one set of components."""

    def execute(self, plan, on_record: RecordCallback, emit: EventCallback) -> Execution:

        spec, store = plan.spec, plan.store

        setup_started = time.perf_counter()
        ctx, _items, components = preparing.prepare_context(spec, store)
        execution = Execution(executor={"name": "local"},
                              setup_seconds=time.perf_counter() - setup_started)
        pacer = Pacer(spec.runtime.concurrency, spec.runtime.max_concurrency, components.clock,
                      f"mllm:{spec.mllm.display_name}", mllm_limit(components.mllm),
                      memory_cap() if spec.runtime.concurrency == "auto" else None)
        try:
            # the writer is left (everything queued written) before the connection closes
            with closing(sqlite3.connect(store.checkpoint_path, check_same_thread=False)) as conn, \
                    store.writing_in_background() as writer:
                # WAL with synchronous=NORMAL: a killed process loses nothing committed (only a
                # power cut can drop the last checkpoints), and commits need no fsync each.
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                saver = SqliteSaver(conn)
                worker = CaseWorker(ctx, components, QueuedSaver(saver, writer),
                                    CaseProgress(conn, writer, saver.serde, saver.lock))
                for stage in plan.stages:
                    if plan.stop.is_set():
                        break
                    pacer.begin_stage([stage.model] if stage.model else list(components.lazy))
                    self._run_stage(worker, stage, pacer, on_record, emit, plan.stop)
                    self._report_stage(pacer.stage_report(len(stage.tasks)), execution)
                    if releases_after(spec, stage):
                        self._release(worker, stage.model, execution)
                for label in components.lazy:  # whatever is still loaded
                    self._release(worker, label, execution)
        finally:
            components.close()
        execution.executor.update(pacer.summary())
        execution.mllm_usage = components.mllm.usage()
        execution.mllm_adaptations = mllm_adaptations(components.mllm)
        execution.cache = components.cache.stats() if components.cache else None
        execution.backend = components.clock.summary()
        execution.backend_busy_seconds = components.clock.busy_seconds
        return execution

    @staticmethod
    def _report_stage(reports: dict, execution: Execution) -> None:
        """Into run.json and the log: how busy each model's device was, what bound it."""
        for model, report in reports.items():
            execution.pacing[model] = report
            logger.info("%s", stage_line(model, report))
            if report["hint"] and report["binding"] not in ("device", "cases", "case work"):
                logger.warning("%s: %s", model, report["hint"])

    @staticmethod
    def _release(worker: CaseWorker, label: str, execution: Execution) -> None:
        with execution.releasing():
            merge_model_memory(execution.models, label, worker.release(label))

    @staticmethod
    def _run_stage(worker: CaseWorker, stage: Stage, pacer: Pacer,
                   on_record: RecordCallback, emit: EventCallback, stop) -> None:
        def run_unit(unit: list[CaseTask]) -> None:
            for task in unit:
                if stop.is_set():  # fail-fast: cases already started finish, no new one starts
                    break
                with pacer.case_work():
                    record = worker.run_case(task, emit)
                on_record(task, record)
            worker.forget(unit[0].case_id)

        if not pacer.paced:  # runtime.concurrency: 1
            pacer.dispatch_inline(stage.units, run_unit, stop)
            return
        with ThreadPoolExecutor(max_workers=pacer.ceiling, thread_name_prefix="case") as pool:
            # run_case records its own failures; dispatch re-raises bugs
            pacer.dispatch(pool, stage.units, run_unit, stop)
