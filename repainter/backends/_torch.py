"""Torch helpers shared by the model-backed backends: device / dtype choice and a per-process cache.

A model is loaded once per process whatever the number of backend objects built with the same
parameters (the graph may build a metric per case); :func:`cached_model` keys the cache on the
loader's name and its canonical JSON parameters.
"""

from __future__ import annotations

import json
import threading
from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import torch
from PIL import Image

from repainter.backends.base import Metric, Reference

T = TypeVar("T")

_CACHE: dict[str, Any] = {}
_LOCKS: dict[str, threading.Lock] = {}
_GUARD = threading.Lock()

_DTYPES = {
    "float32": torch.float32, "fp32": torch.float32,
    "float16": torch.float16, "fp16": torch.float16, "half": torch.float16,
    "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
}


def select_device(device: str = "auto") -> torch.device:
    """``auto`` -> cuda if available, else mps, else cpu; anything else is taken as given."""
    if device in (None, "", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def select_dtype(dtype: str = "auto", device: torch.device | str = "cpu") -> torch.dtype:
    """``auto`` -> float16 on GPUs (bfloat16 where supported), float32 on cpu."""
    device = torch.device(device)
    if dtype in (None, "", "auto"):
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        if device.type == "mps":
            return torch.float16
        return torch.float32
    try:
        return _DTYPES[str(dtype).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {dtype!r}; use one of auto, {', '.join(_DTYPES)}") from None


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def cache_key(kind: str, params: dict[str, Any]) -> str:
    return kind + ":" + json.dumps(params, sort_keys=True, default=str, separators=(",", ":"))


def cached_model(kind: str, params: dict[str, Any], loader: Callable[[], T]) -> T:
    """Return the object ``loader()`` built for (kind, params), loading it once per process."""
    key = cache_key(kind, params)
    with _GUARD:
        if key in _CACHE:
            return _CACHE[key]
        lock = _LOCKS.setdefault(key, threading.Lock())
    with lock:
        if key not in _CACHE:
            _CACHE[key] = loader()
        return _CACHE[key]


def release_model(kind: str, params: dict[str, Any]) -> None:
    """Forget the object loaded for (kind, params), so it is freed once nothing else holds it."""
    key = cache_key(kind, params)
    with _GUARD:
        _CACHE.pop(key, None)
        _LOCKS.pop(key, None)


def cosine_rows(reference: torch.Tensor, candidates: torch.Tensor) -> list[float]:
    """Cosine of each row of ``candidates`` (N, D) with ``reference`` (D,) or (1, D), in float64."""
    ref = reference.reshape(1, -1).double()
    cand = candidates.reshape(candidates.shape[0], -1).double()
    ref = ref / ref.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    cand = cand / cand.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return [float(v) for v in (cand @ ref.T).squeeze(1).clamp(-1.0, 1.0).tolist()]


class EmbeddingCosine(Metric):
    """Base of the embedding metrics: the reference is embedded once per case, the candidates in
    one batch, and each score is the cosine of the two embeddings. Subclasses implement
    ``_embed(images) -> (N, D) tensor``."""

    @abstractmethod
    def _embed(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """Unit-free embeddings of ``images``, one row each."""

    def prepare(self, reference: Reference) -> torch.Tensor:
        return self._embed([reference.image])[0]

    def score(self, prepared: torch.Tensor, candidates: Sequence[Image.Image]) -> list[float]:
        if not candidates:
            return []
        return cosine_rows(prepared, self._embed(list(candidates)))
