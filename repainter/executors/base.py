"""The executor protocol and what every executor shares: stages, the execution report, memory
bookkeeping. Executors import this module, never the ``repainter.executors`` package, whose
``make_executor`` imports them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from repainter.executors.worker import (
    CaseTask,
    CaseWorker,
    EventCallback,
    case_event,
    record_failure,
)
from repainter.records import CaseRecord
from repainter.spec import RunSpec

#: Receives each case's record as it finishes (exactly once per planned case).
RecordCallback = Callable[[CaseTask, CaseRecord], None]


@dataclass
class Stage:
    """Cases that run with the same models loaded.

    ``model`` is the T2I model this stage is about (released after it, model-at-a-time) or None
    (case-major: every model stays loaded). ``units`` are lists of cases of one reference each,
    run in order by one worker so that the reference is loaded once.
    """

    model: str | None
    units: list[list[CaseTask]] = field(default_factory=list)

    @property
    def tasks(self) -> list[CaseTask]:
        return [task for unit in self.units for task in unit]


@dataclass
class Execution:
    """What an executor reports about the run it executed (goes into run.json)."""

    mllm_usage: dict[str, float] = field(default_factory=dict)
    #: What the MLLM changed to make its calls work, summed per kind and change
    #: (:mod:`repainter.backends.mllm.adaptations`).
    mllm_adaptations: list[dict[str, Any]] = field(default_factory=list)
    cache: dict[str, Any] | None = None
    backend: dict[str, Any] = field(default_factory=dict)
    #: Wall time during which at least one backend call was in flight (for framework time).
    backend_busy_seconds: float = 0.0
    #: Wall time spent before the first case could start: building the components (loading
    #: metric models) or starting the worker pool. One-time cost, kept apart from the loop's
    #: per-case framework time.
    setup_seconds: float = 0.0
    #: Wall time spent releasing models (after a model's stage, and at the end): also one-time
    #: model management, not per-case framework time.
    release_seconds: float = 0.0
    #: Per T2I label: whether it was loaded and its peak device memory where torch can tell.
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    executor: dict[str, Any] = field(default_factory=dict)
    #: Per T2I label: how busy its device was and what bound it (:mod:`.pacing`; local executor).
    pacing: dict[str, dict[str, Any]] = field(default_factory=dict)

    @contextmanager
    def releasing(self) -> Iterator[None]:
        """Adds the wall time of the block to ``release_seconds`` (every executor's releases)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.release_seconds += time.perf_counter() - started


class Executor(Protocol):
    def execute(self, plan, on_record: RecordCallback, emit: EventCallback) -> Execution:
        """Run ``plan.stages`` (a :class:`repainter.runner.RunPlan`), each record to on_record."""


def releases_after(spec: RunSpec, stage: Stage) -> bool:
    """Whether a stage's model is released after it (the decision's retriever answers every
    model's cases, so it stays loaded)."""
    retriever = spec.decision.retriever if spec.decision is not None else None
    return stage.model is not None and stage.model != retriever


def mllm_adaptations(mllm: Any) -> list[dict[str, Any]]:
    """What ``mllm`` adapted over the run (nothing for a backend that adapts nothing)."""
    summary = getattr(mllm, "adaptations", None)
    return summary() if summary is not None else []


def merge_model_memory(models: dict[str, dict[str, Any]], label: str,
                       released: dict[str, Any]) -> None:
    """Keep the largest peak device memory seen for ``label`` (over stages and workers)."""
    entry = models.setdefault(label, {"loaded": False, "peak_device_bytes": None})
    entry["loaded"] = entry["loaded"] or bool(released.get("released"))
    peak = released.get("peak_device_bytes")
    if peak is not None:
        entry["peak_device_bytes"] = max(peak, entry["peak_device_bytes"] or 0)


__all__ = ["CaseTask", "CaseWorker", "EventCallback", "Execution", "Executor", "RecordCallback",
           "Stage", "case_event", "merge_model_memory", "mllm_adaptations", "record_failure",
           "releases_after"]
