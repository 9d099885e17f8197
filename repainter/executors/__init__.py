"""Where a run's cases execute: this process (``local``) or a pool of Ray actors (``ray``).

The runner plans a run (which cases are pending, in which order) and finalises it (results,
leaderboard, report); an executor only runs the planned cases and hands each record back through
``on_record``. Both executors run a case with the same :class:`~repainter.executors.worker.CaseWorker`
code, so they differ only in where a case runs.

    >>> from repainter.executors import make_executor
    >>> from repainter.spec import RunSpec
    >>> type(make_executor(RunSpec())).__name__
    'LocalExecutor'
"""

from __future__ import annotations

from repainter.executors.base import (
    CaseTask,
    CaseWorker,
    EventCallback,
    Execution,
    Executor,
    RecordCallback,
    Stage,
    case_event,
    merge_model_memory,
    record_failure,
    releases_after,
)
from repainter.spec import RunSpec


def make_executor(spec: RunSpec) -> Executor:
    """The executor ``spec.runtime.executor`` names."""
    if spec.runtime.executor == "ray":
        from repainter.executors.ray_pool import RayExecutor

        return RayExecutor(spec.runtime.ray)
    from repainter.executors.local import LocalExecutor

    return LocalExecutor()


__all__ = ["CaseTask", "CaseWorker", "EventCallback", "Execution", "Executor", "RecordCallback",
           "Stage", "case_event", "make_executor", "merge_model_memory", "record_failure",
           "releases_after"]
