"""What a case worker needs before its first case: the selected items and built components.

In its own module below the runner and the executors, so that both import it (the runner to plan,
every executor to build its workers) without importing each other.
"""

from __future__ import annotations

from pathlib import Path

from repainter.backend_timing import timed
from repainter.cache import ResponseCache
from repainter.components import Components, build_components
from repainter.datasets import DatasetItem, load_dataset
from repainter.graph.context import RunContext
from repainter.spec import RunSpec
from repainter.store import RunStore, check_distinct_names


def selected_items(spec: RunSpec) -> list[DatasetItem]:
    """The dataset items the spec selects (categories, limit), in dataset order."""
    return load_dataset(spec.dataset.name, spec.dataset.params).select(
        spec.dataset.categories, spec.dataset.limit
    )


def prepare_context(spec: RunSpec, store: RunStore, cache: ResponseCache | None = None
                    ) -> tuple[RunContext, list, Components]:
    """Select the dataset's items and build the components: everything a graph needs. ``cache``
    (a Ray worker's view of the driver's cache) is used instead of opening the spec's."""
    items = selected_items(spec)
    check_distinct_names("case id", [i.id for i in items])  # one file per case, model
    check_distinct_names("T2I label", [t.display_name for t in spec.t2i])
    if cache is None and spec.runtime.cache:
        folder = Path(spec.runtime.cache_dir) if spec.runtime.cache_dir else store.root
        cache = ResponseCache(folder / "cache.sqlite")
    components = build_components(spec, cache)
    ctx = RunContext(spec=spec, store=store, mllm=components.mllm, t2i=components.t2i,
                     metrics=components.metrics,
                     items={i.id: timed(i, "dataset", components.clock) for i in items})
    return ctx, items, components


__all__ = ["prepare_context", "selected_items"]
