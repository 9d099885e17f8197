"""Identification: can the reference be picked out of a gallery with the candidate as the query?

Each candidate is embedded and compared with every image of a gallery of distractors plus the
reference (image-to-image retrieval). The metric is the **rank** of the true reference in that
list, reported as the reciprocal rank (``report: rr``, the per-candidate contribution to MRR,
1.0 = the reference is the nearest image) or as a hit (``report: hits@K``: 1.0 when the
reference is among the K nearest, else 0.0). A Metric returns one number per candidate, so list
the metric several times with labels to get several reports::

    metrics:
      - {name: identification, label: id_rr, params: {gallery: {name: world}}}
      - {name: identification, label: id_hits1, params: {gallery: {name: world}, report: hits@1}}
      - {name: identification, label: id_hits5, params: {gallery: {name: world}, report: hits@5}}

Gallery
    ``gallery`` (required: a metric does not know the run's dataset) names a dataset like a run
    spec does: ``{name: world}``, ``{name: folder, params: {path: ...}}``, optionally with
    ``categories`` / ``limit``. It is embedded once per process (and stored in ``cache_dir`` as in
    the ``retrieval`` T2I backend). ``prepare(reference)`` finds the reference in the gallery by
    pixel hash (:func:`repainter.images.image_sha256`), else (``match: hash_or_id``, default) by
    item id; a reference found in neither is added to the gallery. Every gallery item with the
    reference's pixels is the target, never a distractor.

Embedding
    ``embedding`` is ``colour_layout`` (default; weight-free, so it runs offline: an ``grid`` x
    ``grid`` CIELAB thumbnail plus a square-rooted ``bins``^3 RGB histogram; similarity = minus the
    Euclidean distance), any embedding of :data:`repainter.registry.EMBEDDINGS` (which plugins
    extend: the simulation bench registers ``scene_layout`` for its world, what is where, see
    :mod:`repainter.bench.world.embedding`; similarity = cosine) or any embedding metric of the
    registry, e.g. ``{name: clip_i, params: {model: ViT-B-32, pretrained: openai}}`` or
    ``{name: dinov2}``, whose ``_embed`` (see :class:`repainter.backends._torch.EmbeddingCosine`)
    is used; similarity = cosine.

Ties are counted against the candidate: rank = 1 + the number of distractors at least as similar
to the candidate as the reference is.

>>> from repainter.datasets import load_dataset
>>> metric = IdentificationMetric(gallery={"name": "world", "limit": 8}, cache_dir=False)
>>> ref = load_dataset("world").items()[0].load()
>>> metric(ref, [ref.image])
[1.0]
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from repainter.backends.base import Metric, Reference
from repainter.gallery_features import Gallery, gallery_features, resolve_cache_dir
from repainter.images import to_rgb
from repainter.registry import EMBEDDINGS, METRICS
from repainter.scoring import cosine_similarities

_REPORT = re.compile(r"^(rr|hits@(\d+))$")


class ColourLayoutEmbedding:
    """Weight-free image embedding: a coarse CIELAB layout plus a colour histogram."""

    name = "colour_layout"

    def __init__(self, grid: int = 8, bins: int = 4, hist_weight: float = 1.0):
        if not 1 <= int(grid) <= 64 or not 2 <= int(bins) <= 16 or hist_weight < 0:
            raise ValueError("colour_layout: grid in 1..64, bins in 2..16, hist_weight >= 0")
        self.grid, self.bins, self.hist_weight = int(grid), int(bins), float(hist_weight)

    def identity(self) -> dict[str, Any]:
        return {"embedding": self.name, "grid": self.grid, "bins": self.bins,
                "hist_weight": self.hist_weight, "version": 1}

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        from skimage.color import rgb2lab

        rows = []
        for image in images:
            image = to_rgb(image)
            thumb = np.asarray(image.resize((self.grid, self.grid), Image.Resampling.BOX),
                               dtype=np.float64) / 255.0
            layout = rgb2lab(thumb) / np.array([100.0, 128.0, 128.0])
            small = np.asarray(image.resize((64, 64), Image.Resampling.BOX), dtype=np.int64)
            q = np.clip(small * self.bins // 256, 0, self.bins - 1)
            index = (q[..., 0] * self.bins + q[..., 1]) * self.bins + q[..., 2]
            hist = np.bincount(index.ravel(), minlength=self.bins ** 3).astype(np.float64)
            hist = np.sqrt(hist / hist.sum())
            rows.append(np.concatenate([layout.ravel(), self.hist_weight * hist]))
        return np.stack(rows) if rows else np.zeros((0, 3 * self.grid ** 2 + self.bins ** 3))

    @staticmethod
    def similarities(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        d = np.sqrt(np.maximum((queries ** 2).sum(1)[:, None] + (gallery ** 2).sum(1)[None, :]
                               - 2.0 * queries @ gallery.T, 0.0))
        return -d


class MetricEmbedding:
    """The ``_embed`` of an embedding metric (clip_i, dinov2 ...); similarity = cosine."""

    def __init__(self, metric: Metric):
        embed = getattr(metric, "_embed", None)
        base = getattr(type(metric), "_embed", None)
        from repainter.backends._torch import EmbeddingCosine

        if embed is None or base is EmbeddingCosine._embed:
            raise ValueError(f"identification: metric {metric.name!r} has no image embedding "
                             "(_embed); use colour_layout or an embedding metric such as clip_i")
        self.metric = metric
        self.name = metric.name

    def identity(self) -> dict[str, Any]:
        return {"embedding": self.metric.identity()}

    def embed(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = self.metric._embed(list(images))
        out = out.double().cpu().numpy() if hasattr(out, "cpu") else np.asarray(out, np.float64)
        return out.reshape(len(images), -1)

    @staticmethod
    def similarities(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
        return cosine_similarities(queries, gallery)


def build_embedding(spec: Any):
    """``colour_layout`` / ``{name: ..., params}``: a registered embedding
    (:data:`repainter.registry.EMBEDDINGS`), else an embedding metric (``{name: clip_i, params}``)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, dict) or not spec.get("name"):
        raise ValueError(f"identification: embedding must be a name or {{name, params}}, not {spec!r}")
    name, params = str(spec["name"]), dict(spec.get("params") or {})
    if name in EMBEDDINGS:
        return EMBEDDINGS.create(name, **params)
    return MetricEmbedding(METRICS.create(name, **params))


@METRICS.register("identification")
class IdentificationMetric(Metric):
    """Reciprocal rank (or hits@K) of the reference in a gallery, the candidate as the query."""

    name = "identification"
    higher_is_better = True

    def __init__(
        self,
        gallery: Any = None,
        embedding: Any = "colour_layout",
        report: str = "rr",
        match: str = "hash_or_id",
        cache_dir: str | bool | None = None,
    ):
        if gallery is None:
            raise ValueError("identification: 'gallery' is required (a metric does not know the "
                             "run's dataset), e.g. {name: world}")
        report = str(report).lower().replace(" ", "")
        found = _REPORT.match(report)
        if not found or (found.group(2) is not None and int(found.group(2)) < 1):
            raise ValueError(f"identification: report must be rr or hits@K (K >= 1), not {report!r}")
        if match not in ("hash", "hash_or_id"):
            raise ValueError("identification: match must be 'hash' or 'hash_or_id'")
        self.report = report
        self.hits_k = int(found.group(2)) if found.group(2) else None
        self.match = match
        self.cache_dir = resolve_cache_dir(cache_dir)
        self.embedding = build_embedding(embedding)
        self.gallery = Gallery(gallery)
        self._gallery_identity = self.gallery.identity()

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "report": self.report, "match": self.match,
                "gallery": self._gallery_identity, **self.embedding.identity()}

    # -- gallery -----------------------------------------------------------------------------

    def gallery_features(self) -> dict[str, np.ndarray]:
        """Ids, pixel hashes and embeddings of the gallery (once per process, then stored)."""
        extractor = {"kind": f"ident-{self.embedding.name}", **self.embedding.identity()}
        return gallery_features(
            self.gallery, extractor,
            lambda ids, refs: {"embeddings": self.embedding.embed([r.image for r in refs])},
            self.cache_dir,
        )

    def prepare(self, reference: Reference) -> dict[str, Any]:
        from repainter.images import image_sha256

        feats = self.gallery_features()
        matrix = feats["embeddings"]
        digest = image_sha256(reference.image)
        targets = np.nonzero(feats["sha256"] == digest)[0]
        how = "hash"
        if not len(targets) and self.match == "hash_or_id":
            targets = np.nonzero(feats["ids"] == str(reference.id))[0]
            how = "id"
        if not len(targets):  # not in the gallery: the reference joins it
            matrix = np.concatenate([matrix, self.embedding.embed([reference.image])])
            targets = np.array([len(matrix) - 1])
            how = "added"
        return {"gallery": matrix, "targets": targets, "found_by": how}

    # -- scoring -----------------------------------------------------------------------------

    def ranks(self, prepared: dict[str, Any], candidates: Sequence[Image.Image]) -> list[int]:
        """Rank (1 = first) of the reference among the gallery for each candidate as the query."""
        if not candidates:
            return []
        sims = self.embedding.similarities(self.embedding.embed(list(candidates)),
                                           prepared["gallery"])
        is_target = np.zeros(sims.shape[1], bool)
        is_target[prepared["targets"]] = True
        target = sims[:, is_target].max(axis=1)
        return [int(1 + np.count_nonzero(row[~is_target] >= t)) for row, t in zip(sims, target)]

    def score(self, prepared: dict[str, Any], candidates: Sequence[Image.Image]) -> list[float]:
        ranks = self.ranks(prepared, candidates)
        if self.hits_k is not None:
            return [1.0 if r <= self.hits_k else 0.0 for r in ranks]
        return [1.0 / r for r in ranks]
