"""What the OpenAI-compatible MLLM changed to make a request work, and what it suspects a server
changed silently: noted per call, summed per case (the case record's ``mllm_adaptations``) and
per run (``run.json`` ``mllm_adaptations``, per MLLM label), logged once per backend.

Kinds (``requested`` -> ``used``):

* ``response_format``: ``json_schema`` -> ``json_object`` -> ``none`` (``json_mode: auto``,
  after the server rejected the stronger format; ``detail`` quotes the rejection);
* ``token_param``: ``max_tokens`` -> ``max_completion_tokens`` (``token_param: auto``, after a
  reasoning model's 400);
* ``image_downscaled``: the original size -> the size sent (``max_image_side``; ``count``:
  images);
* ``context_images_dropped``: context images given -> kept (``max_images``; ``count``: images
  dropped);
* ``images_combined``: ``2 images`` -> ``1 side-by-side image`` (``max_images: 1``);
* ``context_refused``: the request's estimate is over ``context_tokens``: not sent, the call
  fails;
* ``context_truncated_suspected``: the reply is used, with a warning: ``usage.prompt_tokens``
  under half of what was sent (estimated), or an Ollama endpoint without ``context_tokens``;
* ``context_truncated``: the server demonstrably read less than it was sent (its whole
  ``context_tokens``, or exactly a default Ollama context): the call fails.

A summary entry holds ``kind``, ``requested``, ``used``, ``count`` (the sum of what the notes
counted), ``calls`` (calls with the note), ``first_task`` and ``detail``. Kinds whose sizes
vary from call to call (:data:`PER_KIND`) are summed per kind and keep the first call's sizes.

>>> notes = []
>>> AdaptationLog("m").note(notes, "token_param", "max_tokens", "max_completion_tokens")
>>> summarize([{"task": "judge", "adaptations": notes}, {"task": "critique", "adaptations": notes}])
[{'kind': 'token_param', 'requested': 'max_tokens', 'used': 'max_completion_tokens', 'count': 2, 'calls': 2, 'first_task': 'judge'}]
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import urlparse

logger = logging.getLogger(__name__)

#: Kinds summed per kind (their sizes differ between calls): the first call's sizes are kept.
PER_KIND = frozenset({"image_downscaled", "context_images_dropped", "context_refused",
                      "context_truncated_suspected", "context_truncated"})
#: Context sizes Ollama runs a model with unless told otherwise (older releases 2048, newer
#: 4096): a reply that read exactly one of them, for a request estimated above it, was cut.
OLLAMA_DEFAULT_CONTEXTS = (2048, 4096)
OLLAMA_PORT = 11434
#: "Far below": the server read under this share of the (conservative) estimate of what was sent.
SUSPECT_RATIO = 0.5
#: Below this estimate (tokens) chat templates and tokenizer differences swamp the estimate.
SUSPECT_FLOOR = 1024
#: Pixels per image token of patch-based vision encoders (Qwen2-VL: 28 x 28).
PIXELS_PER_TOKEN = 28 * 28
#: Tokens of an image sent with ``detail: low`` (OpenAI).
LOW_DETAIL_TOKENS = 85
CONTEXT_FIX = ("raise the server's context (Ollama: OLLAMA_CONTEXT_LENGTH=16384 ollama serve, "
               "or PARAMETER num_ctx in a Modelfile; extra_body: {options: {num_ctx: N}} where "
               "the server honours it) and set context_tokens to the same value")


def describe(note: dict[str, Any]) -> str:
    """One line for the log: ``kind: requested -> used (detail)``."""
    change = " -> ".join(str(note[k]) for k in ("requested", "used") if note.get(k) is not None)
    return (f"{note['kind']}" + (f": {change}" if change else "")
            + (f" ({note['detail']})" if note.get("detail") else ""))


class AdaptationLog:
    """Notes adaptations into a call's list and warns once per kind and change per backend."""

    def __init__(self, owner: str):
        self.owner = owner
        self._warned: set[tuple] = set()
        self._lock = threading.Lock()

    def note(self, notes: list[dict[str, Any]], kind: str, requested: Any = None,
             used: Any = None, *, n: int = 1, detail: str | None = None) -> None:
        item: dict[str, Any] = {"kind": kind}
        if requested is not None:
            item["requested"] = str(requested)
        if used is not None:
            item["used"] = str(used)
        if n != 1:
            item["n"] = int(n)
        if detail:
            item["detail"] = detail
        notes.append(item)
        key = group_key(item)
        with self._lock:
            first = key not in self._warned
            self._warned.add(key)
        if first:
            logger.warning("%s adapted a request: %s", self.owner, describe(item))


def group_key(note: dict[str, Any]) -> tuple:
    if note["kind"] in PER_KIND:
        return (note["kind"],)
    return (note["kind"], note.get("requested"), note.get("used"))


def summarize(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-call records' ``adaptations`` summed per kind and change, in first-seen order."""
    groups: dict[tuple, dict[str, Any]] = {}
    for record in records:
        counted: set[tuple] = set()
        for note in record.get("adaptations") or ():
            key = group_key(note)
            group = groups.get(key)
            if group is None:
                group = groups[key] = {k: note[k] for k in ("kind", "requested", "used")
                                       if k in note}
                group.update(count=0, calls=0, first_task=record.get("task"))
                if note.get("detail"):
                    group["detail"] = note["detail"]
            group["count"] += note.get("n", 1)
            if key not in counted:
                group["calls"] += 1
                counted.add(key)
    return list(groups.values())


def merge(summaries: Iterable[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Summaries of several backends (Ray workers) added up per kind and change."""
    groups: dict[tuple, dict[str, Any]] = {}
    for summary in summaries:
        for entry in summary:
            key = group_key(entry)
            if key not in groups:
                groups[key] = dict(entry)
            else:
                groups[key]["count"] += entry.get("count", 0)
                groups[key]["calls"] += entry.get("calls", 0)
    return list(groups.values())


# -- context truncation ---------------------------------------------------------------------------


def is_ollama(base_url: str | None, served_by: str | None = None) -> bool:
    """An Ollama endpoint: its port, its native ``/api`` path, or its ``fp_ollama`` fingerprint."""
    parsed = urlparse(base_url or "")
    try:
        port = parsed.port
    except ValueError:
        port = None
    return port == OLLAMA_PORT or "/api" in parsed.path or "fp_ollama" in (served_by or "")


def image_token_floor(size: tuple[int, int], image_tokens: int, detail: str | None) -> int:
    """A low estimate of an image's tokens: ``image_tokens``, or fewer for a small or low-detail
    image (so that a server spending few tokens on images is not taken for a truncating one)."""
    if detail == "low":
        return min(image_tokens, LOW_DETAIL_TOKENS)
    return max(1, min(image_tokens, math.ceil(size[0] * size[1] / PIXELS_PER_TOKEN)))


def check_prompt_tokens(prompt_tokens: int, *, text_chars: int, image_sizes: Sequence[tuple],
                        image_tokens: int, image_detail: str | None,
                        context_tokens: int | None, ollama: bool) -> tuple[str, str] | None:
    """``("context_truncated", why)`` where the server demonstrably read less than it was sent,
    ``("context_truncated_suspected", why)`` where it probably did, else None.

    Demonstrated: it read its whole ``context_tokens``, or, without ``context_tokens``, exactly a
    default Ollama context while the request (text at 4 characters a token, ``image_tokens``
    per image) was larger, or the endpoint is Ollama. Suspected: it read under
    :data:`SUSPECT_RATIO` of a low estimate of what was sent (at least :data:`SUSPECT_FLOOR`
    tokens), or the endpoint is Ollama and no ``context_tokens`` is set (every request with an
    image, or larger than Ollama's smallest default context, is at risk).
    """
    text = text_chars // 4
    estimate = text + len(image_sizes) * image_tokens
    low = text + sum(image_token_floor(tuple(s), image_tokens, image_detail) for s in image_sizes)
    if context_tokens and prompt_tokens >= context_tokens:
        return "context_truncated", (f"the server read {prompt_tokens} prompt tokens, its whole "
                                     f"context ({context_tokens}), for a request of about "
                                     f"{estimate}")
    if (not context_tokens and image_sizes and prompt_tokens in OLLAMA_DEFAULT_CONTEXTS
            and (estimate > prompt_tokens or ollama)):
        return "context_truncated", (f"the server read exactly {prompt_tokens} prompt tokens, a "
                                     "default Ollama context, for a request of about "
                                     f"{estimate} with {len(image_sizes)} image(s)")
    if low >= SUSPECT_FLOOR and prompt_tokens < SUSPECT_RATIO * low:
        return "context_truncated_suspected", (
            f"the server read {prompt_tokens} prompt tokens of at least about {low} sent; a "
            "model that spends fewer tokens per image: set image_tokens to its count")
    if ollama and not context_tokens and (image_sizes or estimate > OLLAMA_DEFAULT_CONTEXTS[0]):
        return "context_truncated_suspected", (
            "an Ollama endpoint without context_tokens: past its context (2048 or 4096 tokens "
            "by default) it drops content silently, images first")
    return None


__all__ = ["AdaptationLog", "CONTEXT_FIX", "OLLAMA_DEFAULT_CONTEXTS", "PER_KIND",
           "check_prompt_tokens", "describe", "image_token_floor", "is_ollama", "merge",
           "summarize"]
