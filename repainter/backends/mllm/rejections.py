"""The OpenAI-compatible MLLM's errors: what a server's rejection is about, whether a retry can
help, and the advice each names.

Every :class:`MLLMError` carries ``reason_key`` (a stable name of what failed, to group failed
cases by) and ``permanent`` (True where sending the same request again cannot help: a setting,
the server's or repainter's, has to change; a run can stop at its first cases instead of
failing every one of them the same way). The keys:

* permanent rejections (never retried): ``image_limit``, ``no_image_support``, ``temperature``,
  ``max_tokens``, ``response_format``, ``context_length``, ``http_<status>`` (any other 4xx, or
  a 5xx the server marked ``x-should-retry: false``); refused or cut for the context:
  ``context_overflow``, ``context_truncated``; ``no_api_key``;
* not permanent: a content filter's rejection (``content_filter``: it is about this request's
  content, not a setting), failures that outlasted the retries (``rate_limited``, ``timeout``,
  ``connection``, ``not_a_chat_completion``, ``http_5xx``), replies (``invalid_reply``,
  ``reply_cut``, ``content_filter``).

>>> MLLMCallError("boom", reason_key="image_limit", permanent=True).reason_key
'image_limit'
>>> image_limit_hint(1, "At most 0 image(s) may be provided in one request.", None)[:44]
'the server accepts no images for this model '
"""

from __future__ import annotations

import re
import time
from typing import Any


class MLLMError(RuntimeError):
    """Base class of this backend's errors (``reason_key`` and ``permanent``: module docstring)."""

    default_reason = "mllm_error"

    def __init__(self, message: str = "", *, reason_key: str | None = None,
                 permanent: bool = False):
        super().__init__(message)
        self.reason_key = reason_key or self.default_reason
        self.permanent = bool(permanent)


class MLLMCallError(MLLMError):
    """The server could not be reached, kept failing after all retries, or rejected the call."""

    default_reason = "call_failed"


class MLLMReplyError(MLLMError):
    """The model's reply did not validate, even after the re-asks (or was cut / filtered)."""

    default_reason = "invalid_reply"


class NotAChatCompletion(MLLMError):
    """A 2xx reply whose body is not a chat completion (retried like a server error)."""

    default_reason = "not_a_chat_completion"


def status_of(exc: BaseException) -> int | None:
    return getattr(exc, "status_code", None)


def error_text(exc: BaseException) -> str:
    """The server's own error message (``error.message`` of the body), else the exception text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)
    return str(exc)


_IMAGE_LIMIT = re.compile(r"at most \d+ image|limit[-_]mm[-_]per[-_]prompt|too many images"
                          r"|only (one|1) image")
_AT_MOST = re.compile(r"at most (\d+) image", re.IGNORECASE)


def classify_rejection(exc: BaseException) -> str:
    """What an error reply is about, from its ``param``, ``code`` and message.

    One of ``response_format``, ``temperature``, ``max_tokens``, ``image_limit``,
    ``context_length``, ``content_filter``, ``no_image_support`` or ``other``.
    """
    param = str(getattr(exc, "param", None) or "").lower()
    code = str(getattr(exc, "code", None) or "").lower()
    text = error_text(exc).lower()
    if "content_filter" in code or "content management policy" in text or "content_filter" in text:
        return "content_filter"
    if "image input is not supported" in text or "mmproj" in text:
        return "no_image_support"
    if _IMAGE_LIMIT.search(text):
        return "image_limit"
    if "context_length" in code or "context length" in text or "context window" in text:
        return "context_length"
    if param == "temperature" or "'temperature'" in text:
        return "temperature"
    if param == "max_tokens" or "max_completion_tokens" in text:
        return "max_tokens"
    if (param.startswith("response_format") or "response_format" in text
            or "json_schema" in text or "json_object" in text or "structured output" in text):
        return "response_format"
    return "other"


def rejection_key(exc: BaseException) -> str:
    """The ``reason_key`` of a rejection: its class, or ``http_<status>`` where it has none."""
    reason = classify_rejection(exc)
    return reason if reason != "other" else f"http_{status_of(exc) or 'error'}"


def should_retry_header(exc: BaseException) -> bool | None:
    """The server's ``x-should-retry`` verdict (as openai-python reads it), or None."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("x-should-retry") if headers else None
    return {"true": True, "false": False}.get(str(value).lower()) if value else None


def is_retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, NotAChatCompletion)):
        return True
    status = status_of(exc)
    if status is None:
        return False
    verdict = should_retry_header(exc)
    if verdict is not None:
        return verdict
    if status >= 500 and classify_rejection(exc) == "no_image_support":
        return False  # the same request fails the same way every time
    return status in (408, 409, 429) or status >= 500


def transient_key(exc: BaseException) -> str:
    """The ``reason_key`` of a failure that outlasted the retries."""
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, NotAChatCompletion):
        return exc.reason_key
    status = status_of(exc)
    return "rate_limited" if status == 429 else f"http_{status or 'error'}"


#: What each named rejection means for the user (the server's own message follows it); the
#: image limit's advice depends on the limit the server names (:func:`image_limit_hint`).
REJECTION_HINTS = {
    "context_length": "the request ({images} image(s)) is over the model's context; lower "
                      "max_image_side, set image_detail: low or use a longer context",
    "content_filter": "the provider's content filter blocked the request",
    "no_image_support": "the server takes no image input (llama-server needs --mmproj with a "
                        "vision model; Ollama needs a vision model)",
    "temperature": "the model accepts no temperature other than its default (reasoning models "
                   "such as o-series / gpt-5): leave it unset (temperature: null, the "
                   "default)",
}


def image_limit_hint(images: int, message: str, max_images: int | None) -> str:
    """Advice for an image-limit rejection of a request with ``images`` images.

    Never names a limit equal to what just failed: a server that refuses a single image accepts
    none for this model (a text-only model, or vLLM started with an image limit of 0).
    """
    found = _AT_MOST.search(message)
    limit = int(found.group(1)) if found else None
    # the most images one call sends: critique and judge send 2 unless max_images says fewer
    needed = max(images, max_images or 2)
    if limit == 0 or (limit is None and images <= 1):
        return ("the server accepts no images for this model (it may be a text-only model): "
                "serve a vision model and start vLLM with --limit-mm-per-prompt "
                f"'{{\"image\": N}}' with N >= {needed} (the most images one call sends)")
    return (f"the server takes {f'at most {limit}' if limit else 'fewer'} image(s) per request "
            f"and this call sends {images}: start vLLM with --limit-mm-per-prompt "
            f"'{{\"image\": {needed}}}' or set max_images: "
            + (f"{limit}" if limit else "the server's limit")
            + (" (critique / judge then send the pair side by side)" if limit == 1 else ""))


def rejection_hint(reason: str, images: int, message: str, max_images: int | None) -> str:
    if reason == "image_limit":
        return image_limit_hint(images, message, max_images)
    return REJECTION_HINTS.get(reason, "").format(images=images)


def retry_after(exc: BaseException | None) -> float | None:
    """Seconds a server asked to wait (``retry-after-ms`` / ``retry-after``), or None."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    for name in ("retry-after-ms", "retry-after"):
        raw = headers.get(name)
        if raw is None:
            continue
        try:
            value = float(raw)
        except ValueError:
            try:
                from email.utils import parsedate_to_datetime

                value = parsedate_to_datetime(raw).timestamp() - time.time()
            except (TypeError, ValueError):
                continue
            return max(0.0, value)
        return max(0.0, value / 1000.0 if name == "retry-after-ms" else value)
    return None


def body_suffix(exc: BaseException) -> str:
    import json

    body: Any = getattr(exc, "body", None)
    if not body or (isinstance(body, dict) and set(body) <= {"message"}):
        return ""
    return f" (server said: {json.dumps(body, default=str)[:1000]})"


__all__ = ["MLLMCallError", "MLLMError", "MLLMReplyError", "NotAChatCompletion",
           "REJECTION_HINTS", "body_suffix", "classify_rejection", "error_text",
           "image_limit_hint", "is_retryable", "rejection_hint", "rejection_key", "retry_after",
           "should_retry_header", "status_of", "transient_key"]
