"""The local executor: cases run in this process, straight into the run folder.

After every node a case's state is checkpointed to the run folder's ``checkpoints.sqlite``, so a
run started again resumes an interrupted case at the node where it stopped; a finished case's
checkpoints are deleted (its record is the result). Renders, checkpoints and records are written
by one background thread, in order (:mod:`repainter.writer`): the loop never waits for a disk. ``runtime.concurrency`` references are in
flight at once (threads; MLLM calls overlap, T2I batches are throttled).
"""

from __future__ import annotations

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
from repainter.executors.checkpoints import QueuedSaver
from repainter.executors.worker import CaseTask, CaseWorker


class LocalExecutor:
    """Runs every stage in this process with one set of components."""

    def execute(self, plan, on_record: RecordCallback, emit: EventCallback) -> Execution:

        spec, store = plan.spec, plan.store

        setup_started = time.perf_counter()
        ctx, _items, components = preparing.prepare_context(spec, store)
        execution = Execution(executor={"name": "local", "concurrency": spec.runtime.concurrency},
                              setup_seconds=time.perf_counter() - setup_started)
        try:
            # the writer is left (everything queued written) before the connection closes
            with closing(sqlite3.connect(store.checkpoint_path, check_same_thread=False)) as conn, \
                    store.writing_in_background() as writer:
                # WAL with synchronous=NORMAL: a killed process loses nothing committed (only a
                # power cut can drop the last checkpoints), and commits need no fsync each.
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
                worker = CaseWorker(ctx, components, QueuedSaver(SqliteSaver(conn), writer))
                for stage in plan.stages:
                    if plan.stop.is_set():
                        break
                    self._run_stage(worker, stage, spec.runtime.concurrency, on_record, emit,
                                    plan.stop)
                    if releases_after(spec, stage):
                        self._release(worker, stage.model, execution)
                for label in components.lazy:  # whatever is still loaded
                    self._release(worker, label, execution)
        finally:
            components.close()
        execution.mllm_usage = components.mllm.usage()
        execution.mllm_adaptations = mllm_adaptations(components.mllm)
        execution.cache = components.cache.stats() if components.cache else None
        execution.backend = components.clock.summary()
        execution.backend_busy_seconds = components.clock.busy_seconds
        return execution

    @staticmethod
    def _release(worker: CaseWorker, label: str, execution: Execution) -> None:
        with execution.releasing():
            merge_model_memory(execution.models, label, worker.release(label))

    @staticmethod
    def _run_stage(worker: CaseWorker, stage: Stage, concurrency: int,
                   on_record: RecordCallback, emit: EventCallback, stop) -> None:
        def run_unit(unit: list[CaseTask]) -> None:
            for task in unit:
                if stop.is_set():  # fail-fast: cases already started finish, no new one starts
                    break
                on_record(task, worker.run_case(task, emit))
            worker.forget(unit[0].case_id)

        if concurrency == 1:
            for unit in stage.units:
                run_unit(unit)
            return
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="case") as pool:
            for future in [pool.submit(run_unit, unit) for unit in stage.units]:
                future.result()  # run_case records its own failures; this re-raises bugs
