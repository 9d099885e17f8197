"""Datasets: where references come from.

A dataset lists its items cheaply (ids, categories); each item's image is loaded on demand by
``DatasetItem.load``, so one broken file fails that case alone, with its reason, and the run goes
on. Problems with the dataset as a whole (missing folder, malformed manifest, duplicate ids, no
items) raise :class:`DatasetError` when it is listed.

Built-in datasets:

* ``world``: the offline procedural world (default; :mod:`repainter.bench.world.dataset`);
* ``folder``: every image in a folder, sub-folder names as categories;
* ``manifest``: a JSONL or CSV list of images, by local ``path`` or by ``url`` (downloaded into a
  verified cache, see :mod:`repainter.fetch`);
* ``hf``: a Hugging Face ``datasets`` dataset (hub id or a local ``imagefolder``; ``hf`` extra);
* ``evalref-100``: the reference method's 100-image evaluation set, fetched on demand from the
  bundled manifest of URLs (``repainter fetch evalref-100``).

The parts: the items, the dataset base class and its errors (:mod:`.base`), one module per
source (:mod:`.folder`, :mod:`.manifest`, :mod:`.evalref`, :mod:`.hf`) and fetching a manifest's
URL items ahead of a run (:mod:`.fetching`); everything public is importable from here.
"""

from repainter.datasets.base import (
    Dataset,
    DatasetError,
    DatasetItem,
    ItemError,
    load_dataset,
    refuse_duplicate_ids,
)
from repainter.datasets.evalref import EVALREF_LICENSE, EvalRef100Dataset, evalref100_manifest
from repainter.datasets.fetching import fetch_dataset, fetch_dataset_items, fetch_manifest
from repainter.datasets.folder import IMAGE_SUFFIXES, FolderDataset
from repainter.datasets.hf import HFImageDataset
from repainter.datasets.manifest import MANIFEST_FIELDS, ManifestDataset, ManifestEntry

__all__ = ["EVALREF_LICENSE", "IMAGE_SUFFIXES", "MANIFEST_FIELDS", "Dataset", "DatasetError",
           "DatasetItem", "EvalRef100Dataset", "FolderDataset", "HFImageDataset", "ItemError",
           "ManifestDataset", "ManifestEntry", "evalref100_manifest", "fetch_dataset",
           "fetch_dataset_items", "fetch_manifest", "load_dataset", "refuse_duplicate_ids"]
