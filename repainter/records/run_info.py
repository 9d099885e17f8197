"""The run's own record (``run.json``): status, counts, timings, environment, the resolved spec.

A run writes it several times: ``running`` when it starts, ``finished`` (or ``failed`` /
``interrupted`` with ``error``, :mod:`repainter.run_status`) at the end, then the report's and
trackers' outcome. Writers hold a :class:`RunInfo` and set its fields (:meth:`RunInfo.update`,
each validated as it is set); :meth:`RunInfo.merged`
lays the fields one writer set over what the file held. Every field is optional, since each kind
of run folder (a single run, a grid, seeds, a comparison of finished runs, a rescored run) fills
its own part; unknown keys are refused, so a typo never reaches the file.

Version 0 (before ``schema_version``) had the same keys; it migrates as is.

>>> info = RunInfo(status="running")
>>> info.update(status="finished", cases={"done": 2, "failed": 0, "total": 2}).cases.done
2
>>> RunInfo(warnings=["w"]).merged(info).model_dump(exclude_unset=True)["cases"]
{'done': 2, 'failed': 0, 'total': 2}
"""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from repainter.records.base import VersionedRecord, migration
from repainter.records.leaderboard import AdaptiveSummary


class CaseCounts(BaseModel):
    """Cases of this run: finished, failed, reused from an earlier attempt, planned."""

    model_config = ConfigDict(extra="forbid")

    done: int | None = None
    failed: int | None = None
    reused: int | None = None
    total: int | None = None
    #: A comparison of finished runs: the references every run shares.
    references: int | None = None


class FailureGroup(BaseModel):
    """Failed cases that failed alike: the kind, how many, an example message, which cases."""

    model_config = ConfigDict(extra="forbid")

    kind: str
    count: int
    permanent: bool = False
    example: str
    #: ``model/case`` of the first few (``count`` says how many in all).
    cases: list[str]


class GridAxes(BaseModel):
    """An MLLM x T2I grid's labels."""

    model_config = ConfigDict(extra="forbid")

    mllm: list[str]
    t2i: list[str]


class RunInfo(VersionedRecord):
    """``run.json``."""

    # writers set fields one by one (``info.cases = {...}``): each is validated as it is set
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    kind: ClassVar[str] = "run_info"
    current_version: ClassVar[int] = 1

    #: running, finished, failed or interrupted; ``serving`` for a graph served by
    #: ``langgraph dev`` (cases run on request)
    status: str | None = None
    #: Why a run failed or was interrupted.
    error: str | None = None
    repainter_version: str | None = None
    python: str | None = None
    spec_fingerprint: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    resumed: bool | None = None
    warnings: list[str] = []
    #: Where the metrics, selection and loop settings came from: ``preset`` and ``why``
    #: (:meth:`repainter.spec.RunSpec.settings_origin`).
    settings: dict[str, Any] | None = None
    #: Failed cases grouped by what failed (:func:`repainter.failures.group_failures`).
    failures: list[FailureGroup] | None = None
    #: Digest of the records the leaderboard and report were built from (nothing to redo when
    #: it is unchanged).
    records_digest: str | None = None
    wall_seconds: float | None = None
    cases: CaseCounts | None = None
    #: The executor and the concurrency that ran (``auto``: its final value and trajectory).
    executor: dict[str, Any] | None = None
    #: Per T2I label (local executor): device busy share, MLLM in flight vs its limit, time cases
    #: waited on each, the binding limit and a hint (:mod:`repainter.executors.pacing`).
    pacing: dict[str, dict[str, Any]] | None = None
    schedule: str | None = None
    #: Per T2I label: whether it was loaded, its peak device memory.
    models: dict[str, dict[str, Any]] | None = None
    #: MLLM calls, tokens and cost (a grid: per MLLM label).
    mllm_usage: dict[str, Any] | None = None
    #: Per MLLM label: what it changed to make its calls work (backends/mllm/adaptations.py).
    mllm_adaptations: dict[str, list[dict[str, Any]]] | None = None
    #: Per T2I label: flagged renders (never scored).
    render_flags: dict[str, dict[str, Any]] | None = None
    cache: dict[str, Any] | None = None
    loop_seconds: float | None = None
    backend: dict[str, Any] | None = None
    backend_busy_seconds: float | None = None
    #: Part of ``loop_seconds`` spent building components / starting workers (one-time).
    setup_seconds: float | None = None
    #: Part of ``loop_seconds`` spent releasing models (one-time, per model).
    release_seconds: float | None = None
    #: ``loop_seconds`` minus setup, release and the time a backend call was in flight.
    framework_seconds: float | None = None
    #: Versions, git commit, device (a comparison of runs: per source run folder).
    environment: dict[str, Any] | None = None
    #: The resolved spec.
    spec: dict[str, Any] | None = None
    #: Metric label -> what the metric did, as the case records carry it
    #: (:func:`repainter.backends.metric_identity.identities_of_records`); a rescore adds its own.
    metrics: dict[str, Any] | None = None
    unreadable_records: list[str] | None = None
    #: "current (no record changed)" when a re-run found the report current.
    report: str | None = None
    report_error: str | None = None
    #: Per tracker: status, where, error.
    trackers: list[dict[str, Any]] | None = None
    #: Each ``repainter rescore``: when, which metrics, components, selection.
    rescored: list[dict[str, Any]] | None = None
    grid: GridAxes | None = None
    adaptive: AdaptiveSummary | None = None
    #: Seed-aggregated runs: the seeds.
    seeds: list[int] | None = None
    #: A comparison of finished runs: the source folders and references left out.
    merged_from: list[str] | None = None
    merged_at: str | None = None
    references_not_in_every_run: list[str] | None = None

    def update(self, **fields: Any) -> RunInfo:
        """Set ``fields`` in place (each validated); returns this record."""
        for name, value in fields.items():
            setattr(self, name, value)
        return self

    def merged(self, newer: RunInfo) -> RunInfo:
        """This record with every field ``newer`` set (in code or from its file) laid over it."""
        return self.model_copy(update={name: getattr(newer, name)
                                       for name in newer.model_fields_set
                                       if name != "schema_version"})


@migration("run_info", 0)
def _run_info_v0(data: dict[str, Any]) -> dict[str, Any]:
    """Version 0 had today's keys without ``schema_version``: nothing to rename."""
    return data


__all__ = ["CaseCounts", "FailureGroup", "GridAxes", "RunInfo"]
