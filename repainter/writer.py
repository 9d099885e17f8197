"""One background thread that writes a run's files in order, off the case loop's critical path.

The loop hands it jobs (encode and write a render, save a checkpoint, commit a case record) and
goes on; the thread runs them first in, first out. That order is the run folder's crash safety:
a checkpoint naming a render is saved after the render is written, and a case's record is
written only after every file of the case is durable (fsynced once, at that commit, instead of
once per file), so a record never names a file a power cut could lose. A reader that needs a
file still queued waits for it (:meth:`BackgroundWriter.settle`). Jobs are run in batches (see
``LINGER``). A job that fails stops the writer: the error is raised to the loop at its next
call, and the run fails saying so.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger(__name__)

#: Jobs queued at most before the loop waits for the writer (bounds the memory of queued renders).
MAX_QUEUED = 64
#: Seconds the writer lets jobs gather once one is queued: it then runs them in one go, so the
#: loop's thread hands it the interpreter once per batch, not once per job (a case queues some
#: twenty). A reader waiting for a file (settle, flush) or a full queue wakes it at once.
LINGER = 0.02


class WriterError(RuntimeError):
    """A queued write failed; the run cannot promise its files any more."""


class BackgroundWriter:
    """Runs queued jobs in one thread, in order; tracks which keys still have jobs queued."""

    def __init__(self, name: str = "run-writer", max_queued: int = MAX_QUEUED,
                 linger: float = LINGER):
        self._jobs: deque[tuple[tuple[str, ...], Callable[[], Any]]] = deque()
        self._max_queued, self._linger = max_queued, linger
        self._pending: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._running = 0  # jobs taken off the queue and not finished yet
        self._urgent = self._closing = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, keys: Iterable[str], job: Callable[[], Any]) -> None:
        """Queue ``job``; ``keys`` (file paths, checkpoint threads) are pending until it ran."""
        self._raise_if_failed()
        keys = tuple(keys)
        with self._changed:
            while len(self._jobs) >= self._max_queued and self._error is None:
                self._wake_now()
                self._changed.wait()
            self._pending.update(keys)
            self._jobs.append((keys, job))
            if len(self._jobs) == 1:  # the writer sleeps until a first job comes
                self._changed.notify_all()

    def pending(self, key: str) -> bool:
        with self._changed:
            return self._pending[key] > 0

    def settle(self, key: str) -> None:
        """Wait until no job for ``key`` is queued or running (a reader of that file / thread)."""
        with self._changed:
            if self._pending[key] > 0:
                self._wake_now()
                self._changed.wait_for(lambda: self._pending[key] <= 0 or self._error is not None)
        self._raise_if_failed()

    def flush(self) -> None:
        """Wait for every queued job; raise the first failure."""
        with self._changed:
            self._wake_now()
            self._changed.wait_for(lambda: (not self._jobs and not self._running)
                                   or self._error is not None)
        self._raise_if_failed()

    def close(self) -> None:
        """Run what is queued, stop the thread; raise the first failure."""
        if self._thread.is_alive():
            with self._changed:
                self._closing = True
                self._wake_now()
            self._thread.join()
        self._raise_if_failed()

    def _wake_now(self) -> None:
        """(Holding the lock.) The writer runs what is queued without waiting for more."""
        self._urgent = True
        self._changed.notify_all()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise WriterError(f"writing the run folder failed: {type(self._error).__name__}: "
                              f"{self._error}") from self._error

    def _next_batch(self) -> list[tuple[tuple[str, ...], Callable[[], Any]]] | None:
        """Every job queued once the first has lingered (None: closed and nothing queued)."""
        with self._changed:
            self._changed.wait_for(lambda: self._jobs or self._closing)
            if self._jobs and not (self._urgent or self._closing):
                self._changed.wait_for(lambda: self._urgent or self._closing, timeout=self._linger)
            self._urgent = False
            if not self._jobs:
                return None
            batch = list(self._jobs)
            self._jobs.clear()
            self._running = len(batch)
            self._changed.notify_all()  # room in the queue again
            return batch

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            for keys, job in batch:
                if self._error is None:  # after a failure nothing more is written
                    try:
                        job()
                    except BaseException as exc:  # noqa: BLE001 - re-raised in the loop's thread
                        logger.error("writing the run folder failed: %s", exc)
                        self._error = exc
                with self._changed:
                    self._pending.subtract(keys)
                    self._running -= 1
                    self._changed.notify_all()
