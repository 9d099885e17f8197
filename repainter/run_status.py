"""run.json never stays ``running``: a run ends ``finished``, ``failed`` or ``interrupted``.

    >>> import tempfile
    >>> from repainter.store import RunStore
    >>> store = RunStore(tempfile.mkdtemp())
    >>> from repainter.records.run_info import RunInfo
    >>> info = RunInfo(status="running")
    >>> try:
    ...     with recorded_outcome(store, info):
    ...         raise ValueError("the MLLM server went away")
    ... except ValueError:
    ...     pass
    >>> store.read_run_info().status, store.read_run_info().error
    ('failed', 'ValueError: the MLLM server went away')
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from repainter.errors import one_line, user_message
from repainter.failures import RunFailedError
from repainter.records.run_info import RunInfo

logger = logging.getLogger("repainter.run")


def now_iso() -> str:
    """The current UTC time as run.json records it (ISO 8601, seconds)."""
    return datetime.now(UTC).isoformat(timespec="seconds")


class Terminated(KeyboardInterrupt):
    """SIGTERM (Slurm's time limit, ``kill``): handled like Ctrl-C so run.json says so."""


def _reason(exc: BaseException) -> tuple[str, str]:
    if isinstance(exc, Terminated):
        return "interrupted", "terminated by SIGTERM; run the same command again to resume"
    if isinstance(exc, KeyboardInterrupt):
        return "interrupted", "interrupted (Ctrl-C); run the same command again to resume"
    if isinstance(exc, SystemExit):
        return "interrupted", f"the process exited (code {exc.code}); run it again to resume"
    if isinstance(exc, RunFailedError):  # says itself why and how to go on
        return "failed", str(exc)
    message = user_message(exc)
    return "failed", message or f"{type(exc).__name__}: {one_line(str(exc))}"


@contextmanager
def recorded_outcome(store, info: RunInfo) -> Iterator[None]:
    """Write ``failed`` / ``interrupted`` with the reason (``error``) to run.json when the body
    raises (``info``: the run's record so far, updated in place)."""
    with _sigterm_as_interrupt():
        try:
            yield
        except BaseException as exc:
            status, reason = _reason(exc)
            info.update(status=status, error=reason, finished_at=now_iso())
            try:
                store.write_run_info(info)
            except OSError:  # the folder itself is the problem (full, removed): keep the cause
                pass
            logger.error("run %s: %s", status, reason)
            raise


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """In the main thread, turn SIGTERM into :class:`Terminated` for the body's duration."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated()

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # pragma: no cover - not allowed here (embedded interpreters)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
