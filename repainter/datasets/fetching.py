"""Fetching a manifest dataset's URL items ahead of a run (``repainter fetch``): each is
downloaded (or re-verified) into the dataset's cache, one report row per item."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from repainter.datasets.base import DatasetError, load_dataset
from repainter.datasets.manifest import ManifestDataset
from repainter.fetch import DEFAULT_TIMEOUT, DownloadError, FetchedItem, FetchReport, ensure_cached


def fetch_manifest(
    manifest: str | os.PathLike,
    cache_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_item: Callable[[FetchedItem], None] | None = None,
    **dataset_params: Any,
) -> FetchReport:
    """Download (or re-verify) every URL item of a manifest into its cache."""
    dataset = ManifestDataset(str(manifest), cache_dir=cache_dir, timeout=timeout, **dataset_params)
    return fetch_dataset_items(dataset, force=force, on_item=on_item)


def fetch_dataset(
    name: str,
    cache_dir: str | os.PathLike | None = None,
    *,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
    on_item: Callable[[FetchedItem], None] | None = None,
) -> FetchReport:
    """Fetch a registered manifest dataset by name (``evalref-100``) or a manifest file path."""
    from repainter.registry import DATASETS

    if name in DATASETS:
        factory = DATASETS.get(name)
        if not (isinstance(factory, type) and issubclass(factory, ManifestDataset)):
            raise DatasetError(f"dataset {name!r} has nothing to fetch (not a manifest dataset); "
                               "give a manifest file instead")
        params: dict[str, Any] = {"timeout": timeout}
        if cache_dir:
            params["cache_dir"] = str(cache_dir)
        return fetch_dataset_items(load_dataset(name, params), force=force, on_item=on_item)
    if Path(name).is_file():
        return fetch_manifest(name, cache_dir, force=force, timeout=timeout, on_item=on_item)
    raise DatasetError(f"unknown dataset {name!r}: give a registered manifest dataset "
                       "(evalref-100) or the path of a manifest file")


def fetch_dataset_items(dataset, *, force: bool = False,
                        on_item: Callable[[FetchedItem], None] | None = None) -> FetchReport:
    report = FetchReport(dataset=str(dataset.path), cache_dir=str(dataset.cache_dir))
    for entry in dataset.entries():
        if entry.url:
            try:
                cached = ensure_cached(
                    entry.id, entry.url, dataset.cache_dir, expected_sha256=entry.sha256,
                    allow_download=dataset.allow_download, force=force, timeout=dataset.timeout,
                    fetch_hint=dataset.fetch_hint,
                    allow_private=dataset.allow_private_urls,
                )
                item = FetchedItem(entry.id, cached.status, entry.url, str(cached.path),
                                   cached.sha256)
            except DownloadError as exc:
                item = FetchedItem(entry.id, "failed", entry.url, error=str(exc))
        else:
            item = FetchedItem(entry.id, "local", path=str(entry.path))
        report.items.append(item)
        if on_item:
            on_item(item)
    return report
