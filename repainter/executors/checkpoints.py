"""Checkpoints saved by the run's writer thread, so saving one never blocks the case loop.

:class:`QueuedSaver` wraps LangGraph's ``SqliteSaver``: ``put``, ``put_writes`` and
``delete_thread`` are queued on the run's :class:`repainter.writer.BackgroundWriter` (after the
render files a checkpoint names, which are queued before it) and return at once; a read of a
case's checkpoints first waits for that case's queued saves. A process killed with saves still
queued resumes from the last saved checkpoint (every node re-enters safely).
"""

from __future__ import annotations

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
