"""``runtime.cache`` under Ray: one cache on the driver's node, read and written by every worker.

The run's cache is one SQLite file (the run folder's ``cache.sqlite`` or ``runtime.cache_dir``)
on the driver's storage, which workers on other nodes cannot open, and which must not be
written by several hosts. So a :class:`CacheService` actor, pinned to the driver's node, owns
it; each worker's :class:`ServiceCache` (the :class:`~repainter.cache.ResponseCache` interface)
asks the service for what it has not made itself and sends it every new entry:

* entries go out in small batches as they are made (without waiting) and the rest at the end of
  every case (waiting: the case's entries are committed before its record is written), so a run
  interrupted mid-case keeps most of that case's replies, and its re-run asks only for the rest;
* a render's entry points at its PNG in the run folder (renders are stored once): the worker
  names the file the driver will write, and the service sends the image's bytes with a hit, so
  a worker on any node can use it; a file not written yet (or lost) is a miss;
* hits and misses are counted per worker and summed into run.json's ``cache``, as with the
  local executor.
"""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path
from typing import Any

from repainter.cache import CacheCounts, ResponseCache

#: Entries a worker collects before sending them on without waiting.
SEND_EVERY = 8
Entry = tuple[str, str, Any, "bytes | None"]


class CacheService:
    """The Ray actor that owns the run's cache file (one per run, on the driver's node)."""

    def __init__(self, path: str):
        self.cache = ResponseCache(path)

    def lookup(self, namespace: str, key: str) -> tuple[Any, bytes | None] | None:
        found = self.cache.get(namespace, key)
        if found is None:
            return None
        value, blob = found
        if isinstance(value, dict) and value.get("file"):  # a render: its bytes travel
            try:
                blob = Path(value["file"]).read_bytes()
            except OSError:  # not written yet, or deleted: render again
                return None
            value = {k: v for k, v in value.items() if k != "file"}
        return value, blob

    def store(self, entries: list[Entry]) -> int:
        for namespace, key, value, blob in entries:
            self.cache.put(namespace, key, value, blob)
        self.cache.flush()
        return len(entries)

    def close(self) -> None:
        self.cache.close()


def start_service(ray, path: Path) -> Any:
    """The service actor on this (the driver's) node, holding no CPU a worker could use."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return ray.remote(CacheService).options(
        num_cpus=0, max_concurrency=32, max_restarts=0,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False),
    ).remote(str(path))


class ServiceCache(CacheCounts):
    """A worker's view of the service: the :class:`ResponseCache` interface the cached
    backends use. ``scratch`` is the worker's folder, ``run_root`` the driver's run folder (a
    render's file is named by its place there)."""

    def __init__(self, service: Any, scratch: Path, run_root: str):
        super().__init__()
        self.service, self.scratch, self.run_root = service, Path(scratch).resolve(), run_root
        self._lock = threading.Lock()
        self._mine: dict[str, tuple[Any, bytes | None]] = {}  # made here since the last flush
        self._unsent: list[Entry] = []
        self._sending: list[Any] = []
        self._sent_keys: list[str] = []
        self.commits = 0

    def get(self, namespace: str, key: str) -> tuple[Any, bytes | None] | None:
        import ray

        with self._lock:
            found = self._mine.get(key)
        if found is None:
            found = ray.get(self.service.lookup.remote(namespace, key))
        with self._lock:
            self._count(namespace, found is not None)
        return found

    def put(self, namespace: str, key: str, value: Any, blob: bytes | None = None) -> None:
        if isinstance(value, dict) and value.get("file"):
            value = {**value, "file": self._in_run_folder(value["file"])}
        with self._lock:
            self._mine[key] = (value, blob)
            self._unsent.append((namespace, key, value, blob))
            batch = self._take() if len(self._unsent) >= SEND_EVERY else None
        if batch:
            self._sending.append(self.service.store.remote(batch))

    def _in_run_folder(self, file: str) -> str:
        """Where the driver writes the file this worker saved in its scratch folder."""
        try:
            return str(Path(self.run_root) / Path(file).resolve().relative_to(self.scratch))
        except ValueError:  # not a case file of the scratch folder: kept as it is
            return file

    def _take(self) -> list[Entry]:
        batch, self._unsent = self._unsent, []
        self._sent_keys.extend(key for _, key, _, _ in batch)
        return batch

    def flush(self) -> None:
        """Send what is left and wait until the service has committed everything sent."""
        import ray

        with self._lock:
            batch = self._take()
            sending, self._sending = self._sending, []
            sent, self._sent_keys = self._sent_keys, []
        if batch:
            sending.append(self.service.store.remote(batch))
        if sending:
            ray.get(sending)
            self.commits += 1
        with self._lock:  # committed: the service answers for them from now on
            for key in sent:
                self._mine.pop(key, None)

    def close(self) -> None:
        self.flush()


def merge_stats(reports: list[dict[str, dict[str, int]] | None]) -> dict[str, dict[str, int]]:
    """The workers' hit and miss counts, summed per namespace."""
    total: dict[str, Counter[str]] = {}
    for report in reports:
        for namespace, counts in (report or {}).items():
            total.setdefault(namespace, Counter()).update(counts)
    return {n: {"hits": c["hits"], "misses": c["misses"]} for n, c in sorted(total.items())}
