"""Retrieval as a T2I model (GILL, TIGeR): each prompt is answered with the best-matching image
of a gallery instead of a generated one.

A retrieval "model" is a useful baseline on a leaderboard: it shows how far the loop gets when
the model can only pick an existing image, and what a generator adds over retrieval.

Gallery
    ``gallery`` names a dataset the way a run spec does: ``{name: world}``,
    ``{name: folder, params: {path: ...}}``, optionally with ``categories`` and ``limit``. It is
    built with :func:`repainter.datasets.load_dataset`; items that fail to load are left out.

Methods
    * ``clip``: an open_clip model's text tower embeds the prompt, its image tower the gallery;
      the score is their cosine. The open_clip parameters (``model``, ``pretrained``,
      ``checkpoint``, ``model_config``, ``quick_gelu``, ``device``, ``batch_size``) are those of
      the ``clip_i`` metric, which loads the model (local checkpoints, custom configs, offline
      checks). ``tokenizer`` (a Hugging Face tokenizer id or folder) overrides the model's own.
    * any matcher of :data:`repainter.registry.RETRIEVAL_METHODS`, which plugins extend: the
      simulation bench registers ``scene`` for its procedural world, with no weights (the world's
      grammar against its image analysis: :mod:`repainter.bench.world.retrieval`).

Gallery features are computed once per process and stored as ``.npz`` files in ``cache_dir``
(default ``$REPAINTER_CACHE/retrieval``; ``cache_dir: false`` keeps them in memory only), keyed
by the gallery's identity (spec, item ids, file sizes and times) and the feature extractor's.

Leave-one-out
    A reference must never retrieve itself. The graph does not tell a T2I backend which case it
    renders for, so the backend reads :data:`repainter.backend_timing.CURRENT_CASE` (set by the runner
    for each case) and excludes the gallery item whose **id** equals the case id. The gallery must
    therefore use the run dataset's ids (e.g. the same dataset) for the exclusion to apply. The
    excluded id is part of :meth:`RetrievalT2I.identity`, so renders cached for one case are
    never served to another. ``leave_one_out: false`` turns the exclusion off.

Seeds
    ``top_k`` (default 1) ranks candidates; a seed picks ``ranked[seed % top_k]``. With the default
    ``top_k: 1`` the seed is ignored and every variant of one prompt retrieves the same image; with
    ``top_k > 1`` the variants of a round can return different images.

>>> t2i = RetrievalT2I(gallery={"name": "world", "limit": 4}, method="scene", cache_dir=False)
>>> [g.metadata["retrieved"] for g in t2i.generate(
...     ["a flat illustration, light blue background, a large yellow diamond at the upper center"],
...     [0])]
['single-00']
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from repainter.backend_timing import CURRENT_CASE
from repainter.backends.base import GeneratedImage, Reference, T2IBackend
from repainter.gallery_features import Gallery, gallery_features, resolve_cache_dir
from repainter.registry import RETRIEVAL_METHODS, T2I

logger = logging.getLogger(__name__)


def methods() -> list[str]:
    """The method names this backend accepts: its own ``clip`` and every registered matcher."""
    return ["clip", *[m for m in RETRIEVAL_METHODS.names() if m != "clip"]]

# -- the backend -----------------------------------------------------------------------------


@T2I.register("retrieval")
class RetrievalT2I(T2IBackend):
    """Retrieval baseline: answers each prompt with the best-matching gallery image."""

    kind = "retrieval"

    def __init__(
        self,
        gallery: Any = None,
        method: str = "clip",
        top_k: int = 1,
        leave_one_out: bool = True,
        cache_dir: str | bool | None = None,
        size: int | None = None,
        # open_clip (method "clip"), as in the clip_i metric
        model: str | None = None,
        pretrained: str | None = None,
        checkpoint: str | None = None,
        model_config: dict[str, Any] | str | None = None,
        quick_gelu: bool | None = None,
        tokenizer: str | None = None,
        device: str = "auto",
        batch_size: int = 32,
    ):
        if gallery is None:
            raise ValueError("retrieval: 'gallery' is required, e.g. {name: world}")
        if method not in methods():
            raise ValueError(f"retrieval: unknown method {method!r}; use one of {', '.join(methods())}")
        if int(top_k) < 1:
            raise ValueError("retrieval: top_k must be >= 1")
        if size is not None and not 16 <= int(size) <= 4096:
            raise ValueError("retrieval: size must be between 16 and 4096 pixels, or null")
        self.method = method
        self.top_k = int(top_k)
        self.leave_one_out = bool(leave_one_out)
        self.size = int(size) if size else None
        self.cache_dir = resolve_cache_dir(cache_dir)
        self.gallery = Gallery(gallery)
        self._gallery_identity = self.gallery.identity()
        self._clip = None
        self._text = None
        self._matcher = None  # a registered method's matcher (any method but clip)
        self.tokenizer_name = tokenizer
        if method == "clip":
            from repainter.backends.metrics.clip_i import ClipImageSimilarity, ClipTextEncoder
            from repainter.weights import DEFAULT_CLIP_MODEL, DEFAULT_CLIP_PRETRAINED

            if model is None:
                model = DEFAULT_CLIP_MODEL
                pretrained = DEFAULT_CLIP_PRETRAINED if pretrained is None else pretrained
            self._clip = ClipImageSimilarity(
                model=model, pretrained=pretrained, checkpoint=checkpoint, device=device,
                batch_size=batch_size, model_config=model_config, quick_gelu=quick_gelu,
            )
            self._text = ClipTextEncoder(self._clip, tokenizer)
        elif any(v is not None for v in (model, pretrained, checkpoint, model_config, tokenizer)):
            raise ValueError("retrieval: model / pretrained / checkpoint / model_config / tokenizer "
                             "apply to method 'clip' only")
        else:
            self._matcher = RETRIEVAL_METHODS.create(method)
        self._lock = threading.Lock()

    # -- identity --------------------------------------------------------------------------

    def _extractor(self) -> dict[str, Any]:
        if self._clip is None:
            return self._matcher.identity()
        return {"kind": "clip", **self._clip.identity(), "metric": None}

    def _excluded(self) -> str | None:
        if not self.leave_one_out:
            return None
        current = CURRENT_CASE.get()
        return current[1] if current else None

    def identity(self) -> dict[str, Any]:
        out: dict[str, Any] = {"backend": self.kind, "method": self.method, "top_k": self.top_k,
                               "gallery": self._gallery_identity, "size": self.size,
                               "leave_one_out": self.leave_one_out}
        if self._text is not None:
            out["model"] = self._text.identity()
        # renders depend on the excluded case: keep them apart in the render cache
        out["exclude"] = self._excluded()
        return out

    # -- features --------------------------------------------------------------------------

    def features(self) -> dict[str, np.ndarray]:
        """The gallery's features (computed once per process, stored in ``cache_dir``)."""
        compute = self._matcher.features if self._clip is None else self._clip_features
        return gallery_features(self.gallery, self._extractor(), compute, self.cache_dir)

    def _clip_features(self, ids: list[str], references: list[Reference]) -> dict[str, np.ndarray]:
        emb = self._clip._embed([r.image for r in references])
        return {"embeddings": emb.double().numpy()}

    def embed_text(self, prompts: Sequence[str]) -> np.ndarray:
        """L2-normalised text embeddings (method ``clip``), float64 (N, D)."""
        return self._text.embed(prompts)

    def scores(self, prompts: Sequence[str]) -> np.ndarray:
        """(len(prompts), gallery size) match scores, higher = better (no exclusion applied)."""
        feats = self.features()
        if self._clip is None:
            return np.asarray(self._matcher.scores(list(prompts), feats), dtype=np.float64)
        gallery = feats["embeddings"]
        gallery = gallery / np.clip(np.linalg.norm(gallery, axis=1, keepdims=True), 1e-12, None)
        return self.embed_text(prompts) @ gallery.T

    def rank(self, prompt: str, exclude: str | None = None) -> list[tuple[str, float]]:
        """Gallery ids by decreasing score for ``prompt``, ``exclude`` left out (ties: id order)."""
        feats = self.features()
        row = self.scores([prompt])[0]
        order = sorted(range(len(row)), key=lambda i: (-row[i], i))
        return [(str(feats["ids"][i]), float(row[i])) for i in order
                if str(feats["ids"][i]) != exclude]

    # -- generation ------------------------------------------------------------------------

    def generate(self, prompts: Sequence[str], seeds: Sequence[int]) -> list[GeneratedImage]:
        if len(prompts) != len(seeds):
            raise ValueError(f"{len(prompts)} prompts but {len(seeds)} seeds")
        if not prompts:
            return []
        exclude = self._excluded()
        with self._lock:
            feats = self.features()
            table = self.scores(list(prompts))
        ids = [str(i) for i in feats["ids"]]
        out = []
        for prompt, seed, row in zip(prompts, seeds, table, strict=True):
            order = [i for i in sorted(range(len(row)), key=lambda i: (-row[i], i))
                     if ids[i] != exclude]
            if not order:
                raise ValueError("retrieval: the gallery holds no item but the current case")
            k = min(self.top_k, len(order))
            pick = int(seed) % k
            index = order[pick]
            image = self.gallery.load(ids[index]).image.convert("RGB")
            if self.size and image.size != (self.size, self.size):
                image = image.resize((self.size, self.size), Image.Resampling.BICUBIC)
            else:
                image = image.copy()
            out.append(GeneratedImage(
                image=image, prompt=prompt, seed=int(seed),
                metadata={"retrieved": ids[index], "rank": pick + 1,
                          "match_score": float(row[index]), "excluded": exclude},
            ))
        return out
