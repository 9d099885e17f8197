"""Scoring a gallery for diffusion-augmented retrieval: text scorers, image embeddings, fusion.

Text scorers (query text vs. each gallery image) are found by name in
:data:`repainter.registry.DAR_TEXT_SCORERS`, which plugins extend:

* ``clip``: an open_clip model's text tower against its image tower (cosine), the real-model
  scorer; params as the ``clip_i`` metric (``model``, ``pretrained``, ``checkpoint``,
  ``model_config``, ``quick_gelu``, ``device``, ``batch_size``) plus ``tokenizer``.
* the simulation bench registers ``concepts`` and ``scene``, weight-free scorers of its
  procedural world (:mod:`repainter.bench.world.dar`).

Image embeddings (generated image vs. each gallery image) are those of the ``identification``
metric (:func:`repainter.backends.metrics.identification.build_embedding`): ``colour_layout``,
any registered embedding (the bench's ``scene_layout``: what is where), or any embedding metric
such as ``clip_i`` or ``dinov2``.

The fused score per gallery image is ``alpha * z(text) + (1 - alpha) * z(image)`` with
z-normalisation over the gallery, per turn.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from repainter.references import Reference
from repainter.registry import DAR_TEXT_SCORERS

logger = logging.getLogger(__name__)


def zscore(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    std = values.std()
    if not np.isfinite(std) or std < 1e-12:
        return np.zeros_like(values)
    return (values - values.mean()) / std


def ahead_and_tied(scores: np.ndarray, index: int) -> tuple[int, int]:
    """How many other items score above ``scores[index]``, and how many tie with it."""
    scores = np.asarray(scores, dtype=np.float64)
    others = np.delete(scores, index)
    return int((others > scores[index]).sum()), int((others == scores[index]).sum())


def expected_hits(ahead: int, tied: int, k: int) -> float:
    """P(rank <= k) when ties are broken at random: the target is equally likely to land at
    any of the ``tied + 1`` places after the ``ahead`` items."""
    return float(min(max((k - ahead) / (tied + 1), 0.0), 1.0))


def cumulative_hits(hits_by_dialogue: Sequence[Sequence[float]], turns: Sequence[int]) -> list[float]:
    """ChatIR's Hits@K: per turn ``t``, the share of *all* dialogues whose target has entered
    the top K at some turn ``<= t`` (a dialogue counts from its first hit on, and one shorter
    than ``t`` keeps the state of its last turn).

    This is ``cumulative_hits_per_round`` (through ``get_first_hitting_time``) of ChatIR's
    ``eval.py`` (github.com/levymsn/ChatIR, commit c62600c), the evaluation DAR's benchmarks
    use (a fraction here, where ChatIR prints a percentage). ``hits_by_dialogue[d][s]`` is the probability that dialogue ``d``'s target is in the
    top K at its turn ``s``: 0 or 1 without ties, as in ChatIR. With ties (broken at random,
    independently per turn) a dialogue has hit by turn ``t`` with probability
    ``1 - prod(1 - p_s for s <= t)``, which is ChatIR's count whenever no score ties.

    >>> cumulative_hits([[0, 1, 0], [0, 0, 1], [0, 0]], [0, 1, 2])
    [0.0, 0.3333333333333333, 0.6666666666666666]
    """
    if not hits_by_dialogue:
        return [0.0 for _ in turns]
    out = []
    for t in turns:
        hit = [1.0 - float(np.prod([1.0 - p for p in hits[: t + 1]])) for hits in hits_by_dialogue]
        out.append(float(np.mean(hit)))
    return out


def fuse(text: np.ndarray, image: np.ndarray, alpha: float) -> np.ndarray:
    return float(alpha) * zscore(text) + (1.0 - float(alpha)) * zscore(image)


# -- text scorers ------------------------------------------------------------------------------


class ClipTextScorer:
    """open_clip text embedding of the query against the image embeddings of the gallery."""

    name = "clip"

    def __init__(self, tokenizer: str | None = None, **clip_params: Any):
        from repainter.backends.metrics.clip_i import ClipImageSimilarity, ClipTextEncoder
        from repainter.weights import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

        if "model" not in clip_params:
            clip_params["model"] = DEFAULT_CLIP_MODEL
            clip_params.setdefault("pretrained", DEFAULT_CLIP_PRETRAINED)
        self.clip = ClipImageSimilarity(**clip_params)
        self.text = ClipTextEncoder(self.clip, tokenizer)

    def fit(self, ids: list[str], references: list[Reference]) -> None:
        emb = self.clip._embed([r.image for r in references]).double().numpy()
        self.gallery = emb / np.clip(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12, None)

    def scores(self, query: str) -> np.ndarray:
        return (self.text.embed([query]) @ self.gallery.T)[0]

    def identity(self) -> dict[str, Any]:
        return {"text_scorer": self.name, **self.text.identity()}


def build_text_scorer(spec: Any):
    """``"concepts"`` / ``{name: clip, params: {...}}`` -> a registered text scorer (not yet
    fitted)."""
    if isinstance(spec, str):
        spec = {"name": spec}
    name = getattr(spec, "name", None) or (spec.get("name") if isinstance(spec, dict) else None)
    params = dict(getattr(spec, "params", None) or (spec.get("params") if isinstance(spec, dict)
                                                     else None) or {})
    if name not in DAR_TEXT_SCORERS:
        known = ", ".join(DAR_TEXT_SCORERS.names())
        raise ValueError(f"text_scorer must be one of {known}, not {name!r}")
    factory = DAR_TEXT_SCORERS.get(name)
    if params and not _takes_params(factory):
        raise ValueError(f"text scorer {name!r} takes no params")
    return factory(**params)


def _takes_params(factory: Any) -> bool:
    try:
        return bool(inspect.signature(factory).parameters)
    except (TypeError, ValueError):  # no signature to read: let the call decide
        return True


# -- the gallery -------------------------------------------------------------------------------


@dataclass
class GalleryIndex:
    """A DAR gallery, fitted once: its ids, the text scorer and the image embeddings."""

    ids: list[str]
    text_scorer: Any
    embedding: Any
    image_features: np.ndarray
    left_out: dict[str, str]

    @classmethod
    def build(cls, gallery_items: Sequence[Any], text_scorer: Any = "concepts",
              embedding: Any = "scene_layout") -> GalleryIndex:
        """Load every item (one that fails is left out, with its reason) and fit the scorers."""
        from repainter.backends.metrics.identification import build_embedding

        ids, refs, left_out = [], [], {}
        for item in gallery_items:
            item_id = str(item.id)
            try:
                ref = item if isinstance(item, Reference) else item.load()
            except Exception as exc:  # noqa: BLE001 - one broken image leaves the gallery
                logger.warning("DAR gallery item %r left out: %s", item_id, exc)
                left_out[item_id] = f"{type(exc).__name__}: {exc}"
                continue
            ids.append(item_id)
            refs.append(ref)
        if not refs:
            raise ValueError("DAR gallery is empty (no item could be loaded)")
        if len(set(ids)) != len(ids):
            raise ValueError("DAR gallery has duplicate ids")
        scorer = text_scorer if hasattr(text_scorer, "scores") else build_text_scorer(text_scorer)
        if hasattr(embedding, "model_dump"):  # a ComponentSpec
            embedding = {"name": embedding.name, "params": embedding.params}
        emb = embedding if hasattr(embedding, "embed") else build_embedding(embedding)
        scorer.fit(ids, refs)
        return cls(ids=ids, text_scorer=scorer, embedding=emb,
                   image_features=emb.embed([r.image for r in refs]), left_out=left_out)

    def text_scores(self, query: str) -> np.ndarray:
        return np.asarray(self.text_scorer.scores(query), dtype=np.float64)

    def image_scores(self, images: Sequence[Any]) -> np.ndarray:
        """Mean similarity of the generated ``images`` to every gallery image."""
        sims = self.embedding.similarities(self.embedding.embed(list(images)), self.image_features)
        return np.asarray(sims, dtype=np.float64).mean(axis=0)

    def identity(self) -> dict[str, Any]:
        emb = self.embedding.identity() if hasattr(self.embedding, "identity") else {}
        return {"size": len(self.ids), "left_out": sorted(self.left_out),
                "text_scorer": self.text_scorer.identity(), "embedding": emb}
