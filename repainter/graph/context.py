"""What the nodes work with besides the state: the spec, the loaded components and the store."""

from __future__ import annotations

import functools
import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from repainter.backends.base import Metric, MLLMBackend, Reference, T2IBackend
from repainter.datasets import DatasetItem
from repainter.images import check_not_constant, load_image, reference_digest
from repainter.spec import RunSpec
from repainter.store import RunStore, slug


@functools.cache
def _hashing() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=1, thread_name_prefix="reference-hash")


def case_seed(run_seed: int, case_id: str, round_number: int, variant: int) -> int:
    """The render seed of (case, round, variant) in a run with ``run_seed``."""
    text = f"{run_seed}:{case_id}:{round_number}:{variant}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big") & 0x7FFFFFFF


@dataclass
class RunContext:
    spec: RunSpec
    store: RunStore
    mllm: MLLMBackend
    t2i: dict[str, T2IBackend]  # display label -> backend
    metrics: list[Metric]
    #: Dataset items by case id; a case's reference is loaded on first use (and saved once).
    items: dict[str, DatasetItem] = field(default_factory=dict)
    references: dict[str, Reference] = field(default_factory=dict)
    # Worker threads run several cases at once over one context: each case's features live in
    # a scope of their own (case id -> metric name -> features), dropped whole by forget.
    _prepared: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    # Renders of cases in flight, by run-folder path: scoring, critique and judging read them
    # from memory; after a resume they are read back from disk. forget walks them, so inserts
    # and that walk hold _renders_lock (another thread inserting mid-walk would break it).
    _renders: dict[str, Image.Image] = field(default_factory=dict, repr=False)
    _renders_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Pixel hashes of the loaded references, hashed once in a helper thread (see below)
    _digests: dict[str, Future[str]] = field(default_factory=dict, repr=False)

    def reference(self, case_id: str) -> Reference:
        if case_id not in self.references:
            if case_id not in self.items:
                raise KeyError(f"case {case_id!r} is not in the dataset")
            reference = self.items[case_id].load()
            check_not_constant(reference.image, f"reference of case {case_id!r}")
            self.store.save_reference(case_id, reference.image)
            self.references[case_id] = reference
        return self.references[case_id]

    def reference_sha256(self, case_id: str) -> str:
        """The pixel hash of the case's reference (:func:`reference_digest`), hashed once."""
        return self.reference_hash(case_id).result()

    def reference_hash(self, case_id: str) -> Future[str]:
        """The reference's pixel hash, started in a helper thread (hashlib lets go of the GIL
        while it hashes): the case goes on meanwhile, off the hash's path (issue 28)."""
        future = self._digests.get(case_id)
        if future is None:
            image = self.reference(case_id).image
            future = self._digests[case_id] = _hashing().submit(reference_digest, image)
        return future

    def prepared(self, case_id: str, metric: Metric) -> Any:
        """The reference's features for ``metric``, computed once per case."""
        scope = self._prepared.setdefault(case_id, {})
        if metric.name not in scope:
            scope[metric.name] = metric.prepare(self.reference(case_id))
        return scope[metric.name]

    def remember_render(self, relative_path: str, image: Image.Image) -> None:
        with self._renders_lock:
            self._renders[relative_path] = image

    def candidate_image(self, relative_path: str) -> Image.Image:
        image = self._renders.get(relative_path)
        return image if image is not None else load_image(self.store.root / relative_path)

    def seed(self, case_id: str, round_number: int, variant: int) -> int:
        """The same seed for every model at the same (case, round, variant): fair comparisons."""
        return case_seed(self.spec.seed, case_id, round_number, variant)

    def forget(self, case_id: str) -> None:
        """Drop a finished case's reference and features to keep memory flat over long runs."""
        self.references.pop(case_id, None)
        self._digests.pop(case_id, None)
        self._prepared.pop(case_id, None)
        marker = f"/{slug(case_id)}/"
        with self._renders_lock:
            for path in [p for p in self._renders if marker in p]:
                del self._renders[path]
