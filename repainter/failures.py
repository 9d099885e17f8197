"""What a run does when cases fail: name the kind of failure, group alike ones, stop early.

A failed case keeps its message (``error``) and two fields to reason with: ``error_kind``, what
failed without the case's particulars (``loop: MLLMError [image_limit]``), and
``error_permanent``, whether trying again can help. An exception says so itself with the
attributes ``reason_key`` and ``permanent``; otherwise an HTTP status of 4xx (but 408 timeout,
409 conflict, 425 too early and 429 rate limit) is a permanent rejection, and so is a missing
module or a capability the backend lacks (``NotImplementedError``).

**Fail fast** (``runtime.fail_fast``, on by default, ``after: 3``): when the first ``after``
cases a run executes all fail, each permanently and all of one kind, the run stops before it
spends renders on the rest: no case in flight is abandoned, no new one starts, run.json says
``failed`` with the error and the fix, and the command exits with :data:`RUN_FAILED_EXIT`. The
cases it did not reach have no record, and the failed ones are tried again by the next run, so
running the same command once the setting is fixed resumes cleanly.

**Exit codes** of ``repainter run`` / ``compare``: 0 every case finished; 1 a bug (a traceback);
2 a user error (the spec, a path, a missing key: nothing ran); :data:`RUN_FAILED_EXIT` (3) the
run failed (no case finished, or it stopped early); :data:`SOME_FAILED_EXIT` (4) the run finished
but some cases failed (run.json ``failures`` groups them by kind).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from repainter.errors import one_line

#: The run failed: no case finished, or fail-fast stopped it.
RUN_FAILED_EXIT = 3
#: The run finished, but some of its cases failed.
SOME_FAILED_EXIT = 4
#: 4xx statuses that trying again may cure (timeouts, conflicts, rate limits).
RETRYABLE_4XX = {408, 409, 425, 429}
#: Cases named per failure group in run.json (``count`` says how many in all).
CASES_PER_GROUP = 10


class RunFailedError(Exception):
    """A run that failed as a whole (distinct from a user error and from a bug): the message
    says why and how to go on; ``result`` is the finished run's result, where it got that far."""

    exit_code = RUN_FAILED_EXIT

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


@dataclass(frozen=True)
class FailureKind:
    """What failed, without the case's particulars, and whether it is for good."""

    kind: str
    permanent: bool


def _status_code(exc: BaseException) -> int | None:
    for attr in ("status_code", "status"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value < 600:
            return value
    response = getattr(exc, "response", None)
    value = getattr(response, "status_code", None)
    return value if isinstance(value, int) else None


def _chain(exc: BaseException):
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__  # a deliberate wrap, not an unrelated earlier error


def classify(exc: BaseException, stage: str) -> FailureKind:
    """The kind of a case's failure at ``stage`` (a graph stage such as ``loop``).

        >>> class Rejected(Exception):
        ...     status_code = 400
        >>> classify(Rejected("bad request"), "loop")
        FailureKind(kind='loop: Rejected [http_400]', permanent=True)
        >>> classify(TimeoutError("slow"), "loop")
        FailureKind(kind='loop: TimeoutError', permanent=False)
    """
    key, permanent = None, None
    for link in _chain(exc):
        key = key or getattr(link, "reason_key", None)
        if permanent is None and isinstance(getattr(link, "permanent", None), bool):
            permanent = link.permanent
        status = _status_code(link)
        if status is not None and permanent is None:
            permanent = 400 <= status < 500 and status not in RETRYABLE_4XX
            key = key or f"http_{status}"
        if permanent is None and isinstance(link, ImportError | NotImplementedError):
            permanent = True
            key = key or (f"missing module {link.name}" if isinstance(link, ImportError)
                          and link.name else None)
    kind = f"{stage}: {type(exc).__name__}" + (f" [{key}]" if key else "")
    return FailureKind(kind=kind, permanent=bool(permanent))


class FailFast:
    """Watches the records a run delivers; :meth:`observe` returns why to stop, once, when the
    first ``after`` of them all failed permanently with one kind. Any other record first (a
    finished case, a passing or another failure) disarms it for the rest of the run."""

    def __init__(self, enabled: bool = True, after: int = 3):
        self.enabled, self.after = enabled, after
        self._seen: list[Any] = []
        self._armed = enabled
        self._lock = threading.Lock()
        self.reason: str | None = None

    def observe(self, record: Any) -> str | None:
        with self._lock:
            if not self._armed:
                return None
            first = self._seen[0] if self._seen else record
            if record.done or not record.error_permanent or record.error_kind != first.error_kind:
                self._armed = False
                return None
            self._seen.append(record)
            if len(self._seen) < self.after:
                return None
            self._armed = False
            self.reason = self._message(record)
            return self.reason

    def _message(self, record: Any) -> str:
        return (f"stopped after the first {len(self._seen)} cases all failed with the same "
                f"permanent error ({record.error_kind}), before spending renders on the rest: "
                f"{one_line(record.error or '')}. Fix the setting and run the same command "
                "again: it resumes, and the failed cases run again "
                "(`--set runtime.fail_fast=false` runs every case regardless)")


def group_failures(records: list[Any]) -> list[dict[str, Any]]:
    """Failed records grouped by kind, largest group first: kind, count, permanent, an example
    message and the first few ``model/case`` names.

        >>> from types import SimpleNamespace as R
        >>> rows = [R(done=False, error_kind="loop: E", error_permanent=True, error="x 1",
        ...           model="m", case_id=str(i)) for i in range(2)]
        >>> [(g["kind"], g["count"], g["cases"]) for g in group_failures(rows)]
        [('loop: E', 2, ['m/0', 'm/1'])]
    """
    groups: dict[str, list[Any]] = defaultdict(list)
    for record in records:
        if not record.done:
            groups[_kind_of(record)].append(record)
    ordered = sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
    return [{"kind": kind, "count": len(members),
             "permanent": bool(members[0].error_permanent),
             "example": one_line(members[0].error or "")[:500],
             "cases": [f"{r.model}/{r.case_id}" for r in members[:CASES_PER_GROUP]]}
            for kind, members in ordered]


def _kind_of(record: Any) -> str:
    """A record's kind; records written before kinds existed group by their message's head."""
    if record.error_kind:
        return record.error_kind
    head = (record.error or "unknown").split(":")[:2]
    return ":".join(head).strip()


def failures_line(groups: list[dict[str, Any]], total: int) -> str:
    """One line for the log and the terminal: how many failed, and why, by kind.

        >>> failures_line([{"kind": "loop: E", "count": 2, "example": "boom"}], 5)
        '2 of 5 cases failed: 2 x loop: E (e.g. boom)'
    """
    failed = sum(g["count"] for g in groups)
    parts = [f"{g['count']} x {g['kind']} (e.g. {g['example'][:200]})" for g in groups]
    return f"{failed} of {total} cases failed: " + "; ".join(parts)
