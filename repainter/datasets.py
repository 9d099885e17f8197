"""Datasets: where references come from.

A dataset lists its items cheaply (ids, categories); each item's image is loaded on demand by
``DatasetItem.load``, so one broken file fails that case alone, with its reason, and the run goes
on. Built-in datasets: ``world`` (the offline procedural world, default), ``folder`` (every image
in a folder) and ``manifest`` (a JSONL or CSV list of images).
"""

from __future__ import annotations

import csv
import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from repainter.backends.base import Reference
from repainter.images import load_image
from repainter.registry import DATASETS

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


class DatasetError(ValueError):
    """The dataset as a whole cannot be used (missing folder, malformed manifest, no items)."""


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

    def select(self, categories: list[str] | None = None, limit: int | None = None) -> list[DatasetItem]:
        chosen = [i for i in self.items() if categories is None or i.category in categories]
        if not chosen:
            raise DatasetError(
                "the dataset has no items" + (f" in categories {categories}" if categories else "")
            )
        return chosen[:limit] if limit else chosen


def _file_item(item_id: str, path: Path, category: str, license: str, **extra: Any) -> DatasetItem:
    def load() -> Reference:
        return Reference(
            id=item_id, image=load_image(path), category=category, source=str(path),
            license=license, **extra,
        )

    return DatasetItem(id=item_id, loader=load, category=category, source=str(path))


@DATASETS.register("folder")
class FolderDataset(Dataset):
    """Every image file in ``path`` (sub-folder names become categories)."""

    def __init__(self, path: str, license: str = "", recursive: bool = True):
        self.root = Path(path)
        self.license = license
        if not self.root.is_dir():
            raise DatasetError(f"dataset folder {self.root} does not exist")
        self.recursive = recursive

    def items(self) -> list[DatasetItem]:
        pattern = "**/*" if self.recursive else "*"
        files = sorted(p for p in self.root.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES)
        items = []
        for path in files:
            rel = path.relative_to(self.root)
            category = rel.parts[0] if len(rel.parts) > 1 else "default"
            item_id = rel.with_suffix("").as_posix().replace("/", "__")
            items.append(_file_item(item_id, path, category, self.license))
        return items


@DATASETS.register("manifest")
class ManifestDataset(Dataset):
    """A JSONL or CSV manifest: ``id``, ``path`` (relative to the manifest), optional ``category``.

    Paths may not leave the manifest's folder unless ``allow_outside_root`` is set.
    """

    def __init__(self, path: str, license: str = "", allow_outside_root: bool = False):
        self.path = Path(path)
        self.license = license
        self.allow_outside_root = allow_outside_root
        if not self.path.is_file():
            raise DatasetError(f"manifest {self.path} does not exist")

    def _rows(self) -> list[dict[str, Any]]:
        text = self.path.read_text(encoding="utf-8")
        if self.path.suffix.lower() == ".csv":
            return list(csv.DictReader(text.splitlines()))
        rows = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{self.path}:{number}: not JSON ({exc.msg})") from exc
        return rows

    def items(self) -> list[DatasetItem]:
        root = self.path.parent.resolve()
        items, seen = [], set()
        for number, row in enumerate(self._rows(), 1):
            item_id, rel = str(row.get("id", "")).strip(), str(row.get("path", "")).strip()
            if not item_id or not rel:
                raise DatasetError(f"{self.path}: row {number} needs 'id' and 'path'")
            if item_id in seen:
                raise DatasetError(f"{self.path}: duplicate id {item_id!r} (row {number})")
            seen.add(item_id)
            path = (root / rel).resolve()
            if not self.allow_outside_root and not path.is_relative_to(root):
                raise DatasetError(f"{self.path}: row {number} path {rel!r} leaves {root}")
            category = str(row.get("category") or "default")
            license = str(row.get("license") or self.license)
            items.append(_file_item(item_id, path, category, license))
        return items


def load_dataset(name: str, params: dict[str, Any] | None = None) -> Dataset:
    return DATASETS.create(name, **(params or {}))
