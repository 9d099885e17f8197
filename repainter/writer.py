"""One background thread that writes a run's files in order, off the case loop's critical path.

The loop hands it jobs (encode and write a render, save a checkpoint, commit a case record) and
goes on; the thread runs them first in, first out. That order is the run folder's crash safety:
a checkpoint naming a render is saved after the render is written, and a case's record is
written only after every file of the case is durable (fsynced once, at that commit, instead of
once per file), so a record never names a file a power cut could lose. A reader that needs a
file still queued waits for it (:meth:`BackgroundWriter.settle`). A job that fails stops the
writer: the error is raised to the loop at its next call, and the run fails saying so.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

logger = logging.getLogger(__name__)

#: Jobs queued at most before the loop waits for the writer (bounds the memory of queued renders).
MAX_QUEUED = 64


class WriterError(RuntimeError):
    """A queued write failed; the run cannot promise its files any more."""


class BackgroundWriter:
    """Runs queued jobs in one thread, in order; tracks which keys still have jobs queued."""

    def __init__(self, name: str = "run-writer", max_queued: int = MAX_QUEUED):
        self._jobs: queue.Queue = queue.Queue(maxsize=max_queued)
        self._pending: Counter[str] = Counter()
        self._changed = threading.Condition()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, keys: Iterable[str], job: Callable[[], Any]) -> None:
        """Queue ``job``; ``keys`` (file paths, checkpoint threads) are pending until it ran."""
        self._raise_if_failed()
        keys = tuple(keys)
        with self._changed:
            self._pending.update(keys)
        self._jobs.put((keys, job))

    def pending(self, key: str) -> bool:
        with self._changed:
            return self._pending[key] > 0

    def settle(self, key: str) -> None:
        """Wait until no job for ``key`` is queued or running (a reader of that file / thread)."""
        with self._changed:
            self._changed.wait_for(lambda: self._pending[key] <= 0 or self._error is not None)
        self._raise_if_failed()

    def flush(self) -> None:
        """Wait for every queued job; raise the first failure."""
        with self._changed:
            self._changed.wait_for(lambda: not +self._pending or self._error is not None)
        self._jobs.join()
        self._raise_if_failed()

    def close(self) -> None:
        """Run what is queued, stop the thread; raise the first failure."""
        if self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()
        self._raise_if_failed()

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise WriterError(f"writing the run folder failed: {type(self._error).__name__}: "
                              f"{self._error}") from self._error

    def _work(self) -> None:
        while True:
            item = self._jobs.get()
            try:
                if item is None:
                    return
                keys, job = item
                if self._error is None:  # after a failure nothing more is written
                    try:
                        job()
                    except BaseException as exc:  # noqa: BLE001 - re-raised in the loop's thread
                        logger.error("writing the run folder failed: %s", exc)
                        self._error = exc
                with self._changed:
                    self._pending.subtract(keys)
                    self._changed.notify_all()
            finally:
                self._jobs.task_done()
