"""The selection score, finite checks and cosine similarity: the small numeric core shared by the
graph (:mod:`repainter.graph.nodes`), ``repainter rescore`` (:mod:`repainter.rescore`), the
meta-evaluation, the identification metric and the world's embedding.

It imports no other repainter module but the missing-value policy
(:func:`repainter.records.base.finite_or_none`), so any of them can use it without an import
cycle.

>>> class Sim:                      # a metric: higher is better
...     higher_is_better = True
...     def similarity(self, value): return value
>>> class Dist:                     # a distance in [0, 1]: similarity is 1 - d
...     higher_is_better = False
...     def similarity(self, value): return 1.0 - value
>>> metrics = {"ssim": Sim(), "lpips": Dist()}
>>> selection_score({"ssim": 0.8, "lpips": 0.4}, {"ssim": 1.0, "lpips": 1.0}, metrics)
0.7
>>> selection_score({"ssim": 0.8, "lpips": None}, {"ssim": 1.0, "lpips": 1.0}, metrics) is None
True
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repainter.records.base import finite_or_none


def selection_score(scores: dict[str, float | None], weights: dict[str, float],
                    metrics: dict[str, Any]) -> float | None:
    """Weighted mean of the selection metrics' similarities; None if any of them is missing.

    ``weights`` is the spec's ``selection`` (metric name -> weight), ``metrics`` the metric
    objects by name (their ``similarity`` maps a raw score onto "higher is closer").
    """
    if any(scores.get(name) is None for name in weights):
        return None
    total = sum(weights.values())
    return sum(w * metrics[name].similarity(scores[name]) for name, w in weights.items()) / total


def metric_scores(metric, prepared: Any, candidates: list[dict[str, Any]], images: list) -> list:
    """(candidate, value) pairs of one metric: on the images, or, for a metric that
    ``reads_metadata``, on that key of the candidates' recorded ``metadata`` (candidates
    without it are left out).

    >>> class Size:
    ...     def score(self, prepared, images): return [float(len(i)) for i in images]
    >>> metric_scores(Size(), None, [{"id": 1}, {"id": 2}], ["ab", "abc"])
    [({'id': 1}, 2.0), ({'id': 2}, 3.0)]
    """
    key = getattr(metric, "reads_metadata", None)  # duck-typed metrics may lack the attribute
    if key is None:
        return list(zip(candidates, metric.score(prepared, images), strict=True))
    carrying = [c for c in candidates if (c.get("metadata") or {}).get(key) is not None]
    values = (metric.score_metadata(prepared, [c["metadata"][key] for c in carrying])
              if carrying else [])
    return list(zip(carrying, values, strict=True))


def cosine_similarities(queries: np.ndarray, gallery: np.ndarray) -> np.ndarray:
    """(len(queries), len(gallery)) cosines of the rows (zero rows stay zero).

    >>> cosine_similarities(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([[2.0, 0.0], [1.0, 1.0]])).round(4)
    array([[1.    , 0.7071],
           [0.    , 0.    ]])
    """
    q = queries / np.clip(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12, None)
    g = gallery / np.clip(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12, None)
    return q @ g.T


__all__ = ["cosine_similarities", "finite_or_none", "metric_scores", "selection_score"]
