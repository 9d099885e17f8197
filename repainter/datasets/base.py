"""What every dataset shares: its items (listed cheaply, each loaded on demand), the selection
of items by category, id and offset, and the two errors (the dataset's, an item's).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from repainter.references import Reference
from repainter.registry import DATASETS


class DatasetError(ValueError):
    """The dataset as a whole cannot be used (missing folder, malformed manifest, no items)."""


class ItemError(ValueError):
    """One item cannot be used (raised by ``DatasetItem.load``); the message says why."""


@dataclass
class DatasetItem:
    id: str
    loader: Callable[[], Reference] = field(repr=False)
    category: str = "default"
    source: str = ""

    def load(self) -> Reference:
        """Load the reference; raises with a readable reason if it cannot be used."""
        return self.loader()


class Dataset(ABC):
    license: str = ""

    @abstractmethod
    def items(self) -> list[DatasetItem]: ...

    def select(
        self,
        categories: list[str] | None = None,
        limit: int | None = None,
        *,
        offset: int = 0,
        ids: Iterable[str] | None = None,
    ) -> list[DatasetItem]:
        """The items in ``categories`` (all when None), from ``offset``, at most ``limit``.

        ``ids`` keeps only those ids (in the dataset's order); an unknown id is an error.
        """
        every = self.items()
        refuse_duplicate_ids([(i.id, i.source) for i in every])
        chosen = [i for i in every if categories is None or i.category in categories]
        if ids is not None:
            wanted = [str(i) for i in ids]
            known = {i.id for i in chosen}
            missing = [i for i in wanted if i not in known]
            if missing:
                raise DatasetError(f"unknown item ids{' in ' + str(categories) if categories else ''}: "
                                   f"{missing[:10]}")
            keep = set(wanted)
            chosen = [i for i in chosen if i.id in keep]
        if offset < 0:
            raise DatasetError("offset must be >= 0")
        chosen = chosen[offset:]
        if not chosen:
            raise DatasetError(
                "the dataset has no items" + (f" in categories {categories}" if categories else "")
                + (f" after offset {offset}" if offset else "")
            )
        return chosen[:limit] if limit else chosen


def refuse_duplicate_ids(ids_and_sources: list[tuple[str, str]]) -> None:
    """A dataset whose items share an id would silently drop records: refuse it, naming both.

    >>> refuse_duplicate_ids([("x__y", "x__y.png"), ("x__y", "x/y.png")])
    Traceback (most recent call last):
    ...
    repainter.datasets.base.DatasetError: duplicate item id 'x__y' (x__y.png and x/y.png); rename one
    """
    seen: dict[str, str] = {}
    for item_id, source in ids_and_sources:
        if item_id in seen:
            raise DatasetError(f"duplicate item id {item_id!r} ({seen[item_id]} and {source}); "
                               "rename one")
        seen[item_id] = source


def load_dataset(name: str, params: dict[str, Any] | None = None) -> Dataset:
    """The registered dataset ``name`` built with ``params``."""
    return DATASETS.create(name, **(params or {}))

