"""A dataset used as a gallery, and its features computed once per process and stored on disk.

Shared by the retrieval T2I backend (:mod:`repainter.backends.t2i.retrieval`) and the
identification metric (:mod:`repainter.backends.metrics.identification`), neither of which
imports the other.

Gallery features are stored as ``.npz`` files in ``cache_dir`` (default
``$REPAINTER_CACHE/retrieval``; ``cache_dir: false`` keeps them in memory only), keyed by the
gallery's identity (spec, item ids, file sizes and times) and the feature extractor's.

>>> normalise_gallery_spec("world")
{'name': 'world', 'params': {}, 'categories': None, 'limit': None}
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from repainter.references import Reference

logger = logging.getLogger(__name__)

# -- galleries -------------------------------------------------------------------------------


def normalise_gallery_spec(spec: Any) -> dict[str, Any]:
    """``"world"`` / ``{name, params, categories, limit}`` -> a full dict (validated)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not spec.get("name"):
        raise ValueError(f"gallery must be a dataset name or a mapping with 'name', not {spec!r}")
    unknown = sorted(set(spec) - {"name", "params", "categories", "limit"})
    if unknown:
        raise ValueError(f"gallery: unknown key(s) {unknown}; use name, params, categories, limit")
    return {"name": str(spec["name"]), "params": dict(spec.get("params") or {}),
            "categories": list(spec["categories"]) if spec.get("categories") else None,
            "limit": int(spec["limit"]) if spec.get("limit") else None}


def _canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str, separators=(",", ":"))


def _digest(data: Any) -> str:
    return hashlib.sha256(_canonical(data).encode()).hexdigest()


class Gallery:
    """A dataset used as a gallery: items listed once, images loaded on demand (small LRU)."""

    def __init__(self, spec: Any):
        from repainter.datasets import load_dataset

        self.spec = normalise_gallery_spec(spec)
        dataset = load_dataset(self.spec["name"], self.spec["params"])
        self.items = dataset.select(self.spec["categories"], self.spec["limit"])
        self.ids = [item.id for item in self.items]
        self._index = {item_id: i for i, item_id in enumerate(self.ids)}
        self._load = lru_cache(maxsize=64)(self._load_uncached)

    def identity(self) -> dict[str, Any]:
        """The spec, the item count and a digest of the ids and of local files' sizes / times."""
        stats = []
        for item in self.items:
            try:
                st = os.stat(item.source.split("#", 1)[0]) if item.source else None
            except (OSError, ValueError):
                st = None
            stats.append([st.st_size, st.st_mtime_ns] if st else None)
        return {**self.spec, "n": len(self.ids), "ids": _digest(self.ids)[:16],
                "files": _digest(stats)[:16]}

    def _load_uncached(self, index: int) -> Reference:
        return self.items[index].load()

    def load(self, item_id: str) -> Reference:
        return self._load(self._index[item_id])

    def references(self) -> list[tuple[str, Reference | None, str | None]]:
        """(id, reference or None, why not) for every item, in order."""
        out = []
        for i, item_id in enumerate(self.ids):
            try:
                out.append((item_id, self._load(i), None))
            except Exception as exc:  # one broken item leaves the gallery, not the run
                logger.warning("gallery item %r left out: %s", item_id, exc)
                out.append((item_id, None, f"{type(exc).__name__}: {exc}"))
        return out


# Per-process store of gallery features: key -> {"ids": array, ...}.
_FEATURES: dict[str, dict[str, np.ndarray]] = {}
_FEATURE_LOCKS: dict[str, threading.Lock] = {}
_FEATURES_GUARD = threading.Lock()


def default_cache_dir() -> Path:
    from repainter.fetch import cache_root

    return cache_root() / "retrieval"


def resolve_cache_dir(cache_dir: str | bool | None) -> Path | None:
    """A ``cache_dir`` parameter -> where gallery features are stored (None: memory only).

    ``None`` / unset: :func:`default_cache_dir`; ``false``, ``""`` or ``"none"``: not stored.
    """
    if cache_dir is False or (isinstance(cache_dir, str) and cache_dir.lower() in ("", "none")):
        return None
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def gallery_features(
    gallery: Gallery,
    extractor: dict[str, Any],
    compute: Callable[[list[str], list[Reference]], dict[str, np.ndarray]],
    cache_dir: Path | None,
) -> dict[str, np.ndarray]:
    """Features of every loadable gallery item, computed once per process and stored on disk.

    ``compute(ids, references)`` returns a dict of arrays; ``ids`` (the kept items) and
    ``sha256`` (their pixel hashes, :func:`repainter.images.image_sha256`) are added.
    ``extractor`` identifies the feature extractor (it is part of the key).
    """
    key = _digest({"gallery": gallery.identity(), "extractor": extractor})
    with _FEATURES_GUARD:
        if key in _FEATURES:
            return _FEATURES[key]
        lock = _FEATURE_LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key in _FEATURES:
            return _FEATURES[key]
        path = None
        if cache_dir is not None:
            kind = str(extractor.get("kind", "features"))
            path = Path(cache_dir).expanduser() / f"{gallery.spec['name']}-{kind}-{key[:24]}.npz"
        features = _read_npz(path, key) if path is not None else None
        if features is None:
            from repainter.images import image_sha256

            loaded = [(i, r) for i, r, _ in gallery.references() if r is not None]
            if not loaded:
                raise ValueError(f"gallery {gallery.spec['name']!r}: no item could be loaded")
            ids = [i for i, _ in loaded]
            refs = [r for _, r in loaded]
            features = dict(compute(ids, refs))
            features["ids"] = np.array(ids, dtype=str)
            features["sha256"] = np.array([image_sha256(r.image) for r in refs], dtype=str)
            if path is not None:
                _write_npz(path, key, features)
        _FEATURES[key] = features
        return features


def _read_npz(path: Path, key: str) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            if str(data["_key"]) != key:
                return None
            return {name: data[name] for name in data.files if name != "_key"}
    except Exception as exc:  # a corrupt store is recomputed
        logger.warning("ignoring unreadable gallery features %s: %s", path, exc)
        return None


def _write_npz(path: Path, key: str, features: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
        np.savez(tmp, _key=np.array(key), **features)
        os.replace(tmp, path)
    except OSError as exc:  # a read-only cache costs time, never results
        logger.warning("could not store gallery features in %s: %s", path, exc)


def clear_gallery_features() -> None:
    """Forget every gallery's in-process features (tests)."""
    with _FEATURES_GUARD:
        _FEATURES.clear()
        _FEATURE_LOCKS.clear()
