"""The ``evalref-100`` dataset: the reference method's 100-image evaluation set, fetched on
demand from the bundled manifest of URLs (``repainter fetch evalref-100``)."""

from __future__ import annotations

from pathlib import Path

from repainter.datasets.manifest import ManifestDataset
from repainter.fetch import DEFAULT_TIMEOUT
from repainter.registry import DATASETS

EVALREF_LICENSE = "CC-BY-NC-4.0"


def evalref100_manifest() -> Path:
    from repainter.resources import resource_dir

    return resource_dir("datasets") / "evalref100" / "manifest.jsonl"


@DATASETS.register("evalref-100")
class EvalRef100Dataset(ManifestDataset):
    """EvalRef-100 (ImageRepainter, AAAI 2025): 100 images, fetched into the cache on demand."""

    categories = ("portrait", "object", "scene", "complex")

    def __init__(self, cache_dir: str | None = None, allow_download: bool = True,
                 timeout: float = DEFAULT_TIMEOUT, manifest: str | None = None):
        super().__init__(str(manifest or evalref100_manifest()), license=EVALREF_LICENSE,
                         cache_dir=cache_dir, allow_download=allow_download, timeout=timeout,
                         cache_name="evalref-100")
        self.fetch_hint = "run `repainter fetch evalref-100` with network access"

