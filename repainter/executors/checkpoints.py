"""Checkpoints saved by the run's writer thread, so saving one never blocks the case loop.

:class:`CaseProgress` keeps, per case, the state after its last finished node in one row of
the run's ``checkpoints.sqlite`` (replaced node after node): the graph of a fresh case runs
without LangGraph's checkpointer, whose per-step bookkeeping (a checkpoint and the task's
writes, handed to a thread of its own at every step) cost more than most of the framework's
other work together (issue 28). A case with a saved row resumes through the checkpointed
graph, from that node (:class:`repainter.executors.worker.CaseWorker`).

:class:`QueuedSaver` wraps LangGraph's ``SqliteSaver`` (resumed cases, and cases an earlier
version left checkpointed): ``put``, ``put_writes`` and ``delete_thread`` are queued on the
run's :class:`repainter.writer.BackgroundWriter` (after the render files a checkpoint names,
which are queued before it) and return at once; a read of a case's checkpoints first waits for
that case's queued saves. A process killed with saves still queued resumes from the last saved
checkpoint or row (every node re-enters safely).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

from repainter.writer import BackgroundWriter


def _key(thread_id: Any) -> str:
    return f"checkpoint:{thread_id}"


class QueuedSaver(BaseCheckpointSaver):
    """``inner``'s saves, made in ``writer``'s thread in the order they were asked for."""

    def __init__(self, inner: BaseCheckpointSaver, writer: BackgroundWriter):
        super().__init__(serde=inner.serde)
        self.inner, self.writer = inner, writer

    def put(self, config, checkpoint: Checkpoint, metadata: CheckpointMetadata,
            new_versions: ChannelVersions):
        thread_id = config["configurable"]["thread_id"]
        self.writer.submit([_key(thread_id)],
                           lambda: self.inner.put(config, checkpoint, metadata, new_versions))
        # what the saver returns once it has saved: the checkpoint's id under its thread
        return {"configurable": {"thread_id": thread_id,
                                 "checkpoint_ns": config["configurable"]["checkpoint_ns"],
                                 "checkpoint_id": checkpoint["id"]}}

    def put_writes(self, config, writes: Sequence[tuple[str, Any]], task_id: str,
                   task_path: str = "") -> None:
        self.writer.submit([_key(config["configurable"]["thread_id"])],
                           lambda: self.inner.put_writes(config, writes, task_id, task_path))

    def delete_thread(self, thread_id: str) -> None:
        self.writer.submit([_key(thread_id)], lambda: self.inner.delete_thread(thread_id))

    def get_tuple(self, config) -> CheckpointTuple | None:
        self.writer.settle(_key(config["configurable"]["thread_id"]))
        return self.inner.get_tuple(config)

    def list(self, config, *, filter: dict[str, Any] | None = None, before=None,  # noqa: A002
             limit: int | None = None) -> Iterator[CheckpointTuple]:
        if config is None:
            self.writer.flush()
        else:
            self.writer.settle(_key(config["configurable"]["thread_id"]))
        return self.inner.list(config, filter=filter, before=before, limit=limit)

    def get_delta_channel_history(self, *, config, channels):
        self.writer.settle(_key(config["configurable"]["thread_id"]))
        return self.inner.get_delta_channel_history(config=config, channels=channels)

    def get_next_version(self, current, channel):
        return self.inner.get_next_version(current, channel)


class CaseProgress:
    """The state of each unfinished case after its last finished node, saved by ``writer``.

    ``save`` only queues (the state is serialised in the writer's thread: nodes never change a
    state they were given, so the dicts queued stay as they were); ``load`` waits for the
    case's queued saves first. One row per case: the row of a finished case is deleted.
    """

    TABLE = "case_progress"

    def __init__(self, conn: sqlite3.Connection, writer: BackgroundWriter, serde: Any,
                 lock: threading.Lock | None = None):
        self.conn, self.writer, self.serde = conn, writer, serde
        # a connection shared with a SqliteSaver is used under that saver's lock
        self._lock = lock or threading.Lock()
        with self._lock:
            conn.execute(f"CREATE TABLE IF NOT EXISTS {self.TABLE} (thread_id TEXT PRIMARY KEY, "
                         "node TEXT NOT NULL, type TEXT NOT NULL, state BLOB NOT NULL)")
            conn.commit()

    def save(self, thread_id: str, node: str, state: dict[str, Any]) -> None:
        def write() -> None:
            kind, blob = self.serde.dumps_typed(state)
            with self._lock:
                self.conn.execute(f"INSERT OR REPLACE INTO {self.TABLE} VALUES (?, ?, ?, ?)",
                                  (thread_id, node, kind, blob))
                self.conn.commit()

        self.writer.submit([_key(thread_id)], write)

    def load(self, thread_id: str) -> tuple[str, dict[str, Any]] | None:
        """(last finished node, state after it), or None when the case saved none."""
        self.writer.settle(_key(thread_id))
        with self._lock:
            row = self.conn.execute(f"SELECT node, type, state FROM {self.TABLE} WHERE thread_id = ?",
                                    (thread_id,)).fetchone()
        return None if row is None else (row[0], self.serde.loads_typed((row[1], row[2])))

    def delete(self, thread_id: str) -> None:
        def write() -> None:
            with self._lock:
                self.conn.execute(f"DELETE FROM {self.TABLE} WHERE thread_id = ?", (thread_id,))
                self.conn.commit()

        self.writer.submit([_key(thread_id)], write)
