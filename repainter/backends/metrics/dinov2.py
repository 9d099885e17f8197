"""DINOv2: cosine similarity of DINOv2 image features of each candidate and the reference.

Preprocessing: images converted to RGB and passed through the model's own ``AutoImageProcessor``
(for ``facebook/dinov2-base``: resize shortest side to 256, centre crop 224, ImageNet mean / std).
Features: ``pooling="mean"`` (default, the reference method) averages ``last_hidden_state`` over
all tokens (CLS and patches); ``pooling="cls"`` takes the CLS token. The score is the cosine of
the two feature vectors (1.0 = same features), computed in float64.

Weights: ``model`` is a hub id or a local folder (``config.json`` + weights, as written by
``save_pretrained``); offline, a missing model raises :class:`repainter.weights.WeightsNotFoundError`.
The identity's ``weights`` hold the SHA-256 of a local folder's files, or the hub commit the
cached snapshot resolves to (:mod:`repainter.file_identity`): an edited folder is a new model.

Example (weights required, so not run as a doctest)::

    >>> metric = DinoV2Similarity(model="facebook/dinov2-base")  # doctest: +SKIP
    >>> metric(ref, [ref.image])  # doctest: +SKIP
    [1.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from PIL import Image

from repainter.backends._torch import EmbeddingCosine, cached_model, select_device
from repainter.file_identity import weights_identity
from repainter.images import to_rgb
from repainter.weights import DEFAULT_DINOV2_MODEL, WeightRequirement, hub_load

POOLINGS = ("mean", "cls")


class DinoV2Similarity(EmbeddingCosine):
    """DINOv2 image-image cosine (transformers), mean-pooled tokens by default."""

    name = "dinov2"
    higher_is_better = True

    @classmethod
    def requirements(cls, params: dict[str, Any]) -> list[WeightRequirement]:
        """The transformers checkpoint (hub id at a revision, or a folder)."""
        return [WeightRequirement("dinov2", "transformers",
                                  str(params.get("model", DEFAULT_DINOV2_MODEL)),
                                  params.get("revision"))]

    def __init__(
        self,
        model: str = DEFAULT_DINOV2_MODEL,
        pooling: str = "mean",
        revision: str | None = None,
        device: str = "auto",
        batch_size: int = 32,
    ):
        if pooling not in POOLINGS:
            raise ValueError(f"dinov2: pooling must be one of {POOLINGS}, not {pooling!r}")
        self.model_name = str(model)
        self.pooling = pooling
        self.revision = revision
        self.device = select_device(device)
        self.batch_size = max(1, int(batch_size))
        sources = [(self.model_name, revision, None)]
        # content of a local folder: a changed file loads (and keys scores) anew
        local = weights_identity(sources, hub=False)
        params = {"model": self.model_name, "revision": revision, "device": str(self.device),
                  "weights": local}
        self._model, self._processor = cached_model("transformers-dinov2", params, self._load)
        self.weights = {**local, **weights_identity(sources, hub=True)}

    def _load(self):
        from transformers import AutoImageProcessor, AutoModel

        kwargs: dict[str, Any] = {}
        if self.revision:
            kwargs["revision"] = self.revision
        processor = hub_load(AutoImageProcessor.from_pretrained, self.model_name, "transformers",
                             **kwargs)
        model = hub_load(AutoModel.from_pretrained, self.model_name, "transformers", **kwargs)
        model.to(self.device).eval()
        return model, processor

    def _embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        feats = []
        for start in range(0, len(images), self.batch_size):
            chunk = [to_rgb(im) for im in images[start:start + self.batch_size]]
            inputs = self._processor(images=chunk, return_tensors="pt")
            pixels = inputs["pixel_values"].to(self.device, dtype=self._model.dtype)
            with torch.inference_mode():
                hidden = self._model(pixel_values=pixels).last_hidden_state
            pooled = hidden.mean(dim=1) if self.pooling == "mean" else hidden[:, 0]
            feats.append(pooled.float().cpu())
        return torch.cat(feats)

    def identity(self) -> dict[str, Any]:
        return {"metric": self.name, "model": self.model_name, "revision": self.revision,
                "pooling": self.pooling, "weights": self.weights}
