"""Any OpenAI-compatible chat-completions server as the loop's MLLM (OpenAI, vLLM, Ollama, ...).

* The API key is read from the environment variable ``api_key_env`` when the backend is built and
  is handed to the ``openai`` client only: it never appears in :meth:`identity`, :meth:`usage`,
  records, logs or ``repr``.
* Images are sent as base64 data URLs (PNG by default, or JPEG), downscaled so that their longer
  side is at most ``max_image_side`` (never upscaled).
* Every reply is structured: ``response_format`` is a JSON schema where the server supports it
  (``json_mode="auto"`` falls back to ``json_object`` and then to plain text on a 400 or 422
  whose ``param`` or message is about the response format; the mode in use is in
  :meth:`identity`), the first JSON object of the reply is extracted and validated against the
  pydantic schema of :mod:`repainter.schemas`; an invalid reply is re-asked up to ``reask``
  times with the validation error.
* Rate limits (429), server errors (5xx), connection errors and timeouts are retried with
  exponential backoff and jitter (tenacity), honouring ``Retry-After`` and ``x-should-retry``;
  after ``max_retries`` retries an :class:`MLLMCallError` says what failed, with the server's
  error message. A 200 reply that is not a chat completion (an HTML page from a proxy, a body
  that is not JSON) is retried the same way. A 500 saying the server takes no images
  (llama-server without ``--mmproj``) is not retried. ``timeout`` is a total deadline per
  request (a server that sends one byte a second cannot stretch it).
* Other rejections are named, not retried blindly: too many images (vLLM's
  ``--limit-mm-per-prompt``), context length, content filter; a reasoning model's
  ``max_tokens`` rejection switches to ``max_completion_tokens`` once; ``temperature: null``
  sends none. ``max_images`` / ``image_detail`` / ``context_tokens`` fit a server's image and
  context budget: ``max_images: 1`` sends critique / judge pairs side by side in one image, and
  Ollama's ``/v1``, which silently drops the oldest content past its context, is caught by
  ``context_tokens``.
* A reply cut at ``finish_reason == "length"`` or stopped by a content filter is an error,
  not re-asked as if it were malformed.
* Replies are bounded: content over ``max_reply_chars`` characters, an empty ``choices`` list or a
  refusal counts as an invalid reply (re-asked, then :class:`MLLMReplyError`), and JSON
  extraction is bounded in work and nesting depth.
* Error messages never hold the API key, even where a server echoes it back.
* Each call's tokens, latency and cost (with ``prices``: USD per 1M input / output tokens) are
  recorded (cached input tokens at the ``cached_input`` price; a reply without usage is counted
  in ``calls_without_usage``, not as 0 tokens); :meth:`usage` sums them. At most
  ``concurrency`` requests run at once (the sync methods may be called from several threads);
  ``a<method>`` coroutines run them from asyncio code.

All prompt texts are the templates ``prompts/*.j2``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import json
import os
import random
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from PIL import Image
from pydantic import BaseModel, Field, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from repainter.backends.base import MLLMBackend, current_prompt_budget
from repainter.deadline import deadline_http_client, total_deadline
from repainter.instrument import CURRENT_CASE
from repainter.prompts import render_prompt
from repainter.schemas import (
    MAX_OBJECTS,
    Critique,
    GlobalFeatures,
    ImageUnderstandingTree,
    Judgement,
    ObjectAttributes,
    PromptVariants,
    Relationship,
    RevisedPrompt,
    SceneObject,
)
from repainter.version import __version__
from repainter.weights import WeightRequirement

M = TypeVar("M", bound=BaseModel)

JSON_MODES = ("auto", "json_schema", "json_object", "none")
IUT_MODES = ("single", "multi")
TOKEN_PARAMS = ("auto", "max_tokens", "max_completion_tokens")
IMAGE_DETAILS = ("auto", "low", "high")
#: The schemas this backend asks for (hashed into its identity, so a schema edit is a new key).
SCHEMAS: tuple[type[BaseModel], ...] = (
    ImageUnderstandingTree, GlobalFeatures, ObjectAttributes, PromptVariants, RevisedPrompt,
    Critique, Judgement)


class MLLMError(RuntimeError):
    """Base class of this backend's errors."""


class MLLMCallError(MLLMError):
    """The server could not be reached or kept failing after all retries."""


class MLLMReplyError(MLLMError):
    """The model's reply did not validate, even after the re-asks."""


class NotAChatCompletion(MLLMError):
    """A 2xx reply whose body is not a chat completion (retried like a server error)."""


# -- intermediate schemas of the multi-call IUT ---------------------------------------------------


class GlobalDescription(BaseModel):
    global_description: str = Field(min_length=1)


class ObjectName(BaseModel):
    name: str = Field(min_length=1)
    type: str = "object"


class ObjectList(BaseModel):
    objects: list[ObjectName] = Field(default_factory=list)


class RelationshipList(BaseModel):
    relationships: list[Relationship] = Field(default_factory=list)


# -- helpers ------------------------------------------------------------------------------------


def encode_image(image: Image.Image, max_side: int = 768, fmt: str = "png") -> str:
    """``data:image/...;base64,...`` URL of ``image`` with its longer side at most ``max_side``."""
    fmt = fmt.lower()
    if fmt not in ("png", "jpeg", "jpg"):
        raise ValueError(f"image format must be png or jpeg, not {fmt!r}")
    img = image.convert("RGB") if image.mode != "RGB" else image.copy()
    if max(img.size) > max_side:
        scale = max_side / max(img.size)
        new = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
        img = img.resize(new, Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    if fmt == "png":
        img.save(buffer, format="PNG")
        mime = "image/png"
    else:
        img.save(buffer, format="JPEG", quality=90)
        mime = "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(buffer.getvalue()).decode('ascii')}"


def side_by_side(left: Image.Image, right: Image.Image) -> Image.Image:
    """``left`` and ``right`` at the same height, next to each other on white (RGB)."""
    height = max(left.height, right.height)
    scaled = [img.convert("RGB").resize((max(1, round(img.width * height / img.height)), height),
                                        Image.Resampling.LANCZOS) if img.height != height
              else img.convert("RGB") for img in (left, right)]
    canvas = Image.new("RGB", (scaled[0].width + scaled[1].width, height), "white")
    canvas.paste(scaled[0], (0, 0))
    canvas.paste(scaled[1], (scaled[0].width, 0))
    return canvas


#: How many top-level ``{`` :func:`extract_json` tries before it gives up (bounds its work).
MAX_JSON_STARTS = 64


def _top_level_braces(text: str):
    """Positions of the ``{`` that open an object outside any other (strings inside skipped)."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == "{":
            if depth == 0:
                yield i
            depth += 1
        elif depth:
            if ch == "}":
                depth -= 1
            elif ch == '"':
                in_string = True


def extract_json(text: str) -> Any:
    """The JSON value of ``text``, or the first JSON object inside it (code fences, prose ...).

    Only objects that open at the top level are tried, so a reply cut off mid-object is
    rejected rather than read as one of its complete inner objects (``{"differences":
    [{...}], "summ`` is not the ``Critique`` ``{...}``). At most :data:`MAX_JSON_STARTS` are
    tried, and JSON nested too deeply for the parser is a ``ValueError`` like any other
    unusable reply (never a ``RecursionError``).
    """
    text = (text or "").strip()
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        pass
    decoder = json.JSONDecoder()
    for tries, start in enumerate(_top_level_braces(text)):
        if tries >= MAX_JSON_STARTS:
            break
        try:
            value, _ = decoder.raw_decode(text, start)
            return value
        except (ValueError, RecursionError):
            continue
    raise ValueError("the reply holds no complete JSON object")


def _reply_text(response: Any) -> str:
    """The first choice's message text; a ``ValueError`` says why there is none."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise ValueError("the reply has no choices")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    refusal = getattr(message, "refusal", None)
    if not content and refusal:
        raise ValueError(f"the model refused: {refusal}")
    if content is not None and not isinstance(content, str):
        raise ValueError(f"the reply's content is a {type(content).__name__}, not text")
    return content or ""


def _status(exc: BaseException) -> int | None:
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


def _should_retry_header(exc: BaseException) -> bool | None:
    """The server's ``x-should-retry`` verdict (as openai-python reads it), or None."""
    headers = getattr(getattr(exc, "response", None), "headers", None)
    value = headers.get("x-should-retry") if headers else None
    return {"true": True, "false": False}.get(str(value).lower()) if value else None


def _is_retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, NotAChatCompletion)):
        return True
    status = _status(exc)
    if status is None:
        return False
    verdict = _should_retry_header(exc)
    if verdict is not None:
        return verdict
    if status >= 500 and classify_rejection(exc) == "no_image_support":
        return False  # the same request fails the same way every time
    return status in (408, 409, 429) or status >= 500


#: What each named rejection means for the user (the server's own message follows it).
REJECTION_HINTS = {
    "image_limit": "the server takes fewer images per request than this call sends ({images}); "
                   "start vLLM with --limit-mm-per-prompt '{{\"image\": {images}}}' or set "
                   "max_images",
    "context_length": "the request ({images} image(s)) is over the model's context; lower "
                      "max_image_side, set image_detail: low or use a longer context",
    "content_filter": "the provider's content filter blocked the request",
    "no_image_support": "the server takes no image input (llama-server needs --mmproj with a "
                        "vision model; Ollama needs a vision model)",
    "temperature": "the model accepts no temperature other than its default (reasoning models "
                   "such as o-series / gpt-5): set temperature: null",
}


def _count_images(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if isinstance(m.get("content"), list)
               for p in m["content"] if isinstance(p, dict) and p.get("type") == "image_url")


def _text_chars(messages: list[dict[str, Any]]) -> int:
    total = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    return total


@functools.cache
def _schemas_digest() -> str:
    """Hash of the JSON schemas this backend asks for (computed once per process)."""
    return _fingerprint([m.model_json_schema() for m in SCHEMAS])


def _fingerprint(value: Any) -> str:
    import hashlib

    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _retry_after(exc: BaseException | None) -> float | None:
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


def _schema_name(schema: type[BaseModel]) -> str:
    return schema.__name__[:64]


class OpenAIMLLM(MLLMBackend):
    """An OpenAI-compatible chat-completions model (OpenAI, vLLM, Ollama, LM Studio ...)."""

    kind = "openai"

    @classmethod
    def requirements(cls, params: dict[str, Any]) -> list[WeightRequirement]:
        """The API key's environment variable; none with a ``base_url`` (local servers such as
        vLLM or Ollama often need no key)."""
        if params.get("base_url"):
            return []
        return [WeightRequirement("openai", "api_key", str(params.get("api_key_env", "OPENAI_API_KEY")))]

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_image_side: int = 768,
        image_format: str = "png",
        temperature: float | None = 0.0,
        max_tokens: int | None = None,
        max_retries: int = 5,
        timeout: float = 60.0,
        reask: int = 2,
        json_mode: str = "auto",
        iut_mode: str = "single",
        concurrency: int = 4,
        prices: dict[str, float] | None = None,
        retry_initial_wait: float = 1.0,
        retry_max_wait: float = 60.0,
        extra_body: dict[str, Any] | None = None,
        max_reply_chars: int = 200_000,
        token_param: str = "auto",
        max_images: int | None = None,
        image_detail: str | None = None,
        context_tokens: int | None = None,
        image_tokens: int = 768,
        default_headers: dict[str, str] | None = None,
        default_query: dict[str, Any] | None = None,
    ):
        import openai

        if json_mode not in JSON_MODES:
            raise ValueError(f"openai: json_mode must be one of {JSON_MODES}, not {json_mode!r}")
        if iut_mode not in IUT_MODES:
            raise ValueError(f"openai: iut_mode must be one of {IUT_MODES}, not {iut_mode!r}")
        if max_image_side < 16:
            raise ValueError("openai: max_image_side must be at least 16")
        if token_param not in TOKEN_PARAMS:
            raise ValueError(f"openai: token_param must be one of {TOKEN_PARAMS}, not {token_param!r}")
        if image_detail is not None and image_detail not in IMAGE_DETAILS:
            raise ValueError(f"openai: image_detail must be one of {IMAGE_DETAILS} or null")
        if max_images is not None and int(max_images) < 1:
            raise ValueError("openai: max_images must be at least 1")
        key = os.environ.get(api_key_env) if api_key_env else None
        if not key:
            if base_url is None:
                raise MLLMError(
                    f"openai: no API key - export {api_key_env}=<key> (or set base_url to an "
                    "OpenAI-compatible server that needs none)"
                )
            key = "not-needed"  # local servers ignore it; the client insists on one
        self.model = model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.max_image_side = int(max_image_side)
        self.image_format = image_format
        self.temperature = None if temperature is None else float(temperature)
        self.max_tokens = max_tokens
        self.token_param = token_param
        self.max_images = None if max_images is None else int(max_images)
        self.image_detail = image_detail
        self.context_tokens = None if context_tokens is None else int(context_tokens)
        self.image_tokens = int(image_tokens)
        self.default_query = dict(default_query or {})
        self._header_names = sorted(default_headers or {})
        self.max_retries = max(0, int(max_retries))
        self.timeout = float(timeout)
        self.reask = max(0, int(reask))
        self.json_mode = json_mode
        self.iut_mode = iut_mode
        self.concurrency = max(1, int(concurrency))
        self.prices = dict(prices) if prices else None
        self.retry_initial_wait = float(retry_initial_wait)
        self.retry_max_wait = float(retry_max_wait)
        self.extra_body = dict(extra_body or {})
        self.max_reply_chars = max(1, int(max_reply_chars))
        # openai's own retries are off: tenacity below does them, with our policy and records.
        # the http client enforces `timeout` as a total deadline per request (see _request)
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=self.timeout,
                                     max_retries=0, default_headers=default_headers,
                                     default_query=default_query or None,
                                     http_client=deadline_http_client(timeout=self.timeout))
        del key
        self._mode = "json_schema" if json_mode == "auto" else json_mode
        # auto: max_tokens until a server says to use max_completion_tokens
        self._token_param = "max_tokens" if token_param == "auto" else token_param
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._totals = {"calls": 0, "requests": 0, "retries": 0, "reasks": 0, "errors": 0,
                        "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
                        "calls_without_usage": 0, "latency_s": 0.0, "cost_usd": 0.0}

    def __repr__(self) -> str:
        return f"OpenAIMLLM(model={self.model!r}, base_url={self.base_url!r})"

    # -- identity / usage -----------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """Everything that shapes a request (the cache key): settings, the response format and
        token parameter in use, hashes of the prompt templates and schemas, the project version.
        """
        from repainter.prompts import templates_digest

        with self._lock:
            mode, token_param = self._mode, self._token_param
        return {
            "backend": self.kind,
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "token_param": token_param,
            "max_image_side": self.max_image_side,
            "image_format": self.image_format,
            "image_detail": self.image_detail,
            "max_images": self.max_images,
            "iut_mode": self.iut_mode,
            "json_mode": self.json_mode,
            "json_mode_in_use": mode,
            "extra_body": self.extra_body,
            "default_query": self.default_query,
            "default_headers": self._header_names,  # names only: values may hold secrets
            "templates": templates_digest(),
            "schemas": _schemas_digest(),
            "repainter": __version__,
        }

    def usage(self) -> dict[str, float]:
        with self._lock:
            totals = dict(self._totals)
        totals["total_tokens"] = totals["prompt_tokens"] + totals["completion_tokens"]
        if self.prices is None:
            totals.pop("cost_usd")
        return {k: float(v) for k, v in totals.items()}

    def case_usage(self, model: str, case_id: str) -> dict[str, float]:
        """Calls, tokens and cost of the calls made while the runner worked on this case."""
        with self._lock:
            mine = [r for r in self._records if r.get("case") == (model, case_id)]
        usage = {"calls": len(mine),
                 "prompt_tokens": sum(r["prompt_tokens"] for r in mine),
                 "completion_tokens": sum(r["completion_tokens"] for r in mine)}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        usage["cached_tokens"] = sum(r.get("cached_tokens", 0) for r in mine)
        usage["calls_without_usage"] = sum(1 for r in mine if r.get("usage_missing"))
        if self.prices is not None:
            usage["cost_usd"] = sum(r.get("cost_usd", 0.0) for r in mine)
        # which model build answered (response.model / system_fingerprint), for the case record
        served = sorted({r["served_by"] for r in mine if r.get("served_by")})
        if served:
            usage["served_by"] = served  # type: ignore[assignment]
        return usage

    def records(self) -> list[dict[str, Any]]:
        """Per-call records: task, tokens, latency, attempts, re-asks, cost."""
        with self._lock:
            return [dict(r) for r in self._records]

    # -- requests -------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = _retry_after(exc)
        if hinted is not None:
            return min(hinted, self.retry_max_wait)
        base = self.retry_initial_wait * (2 ** (state.attempt_number - 1))
        return min(self.retry_max_wait, random.uniform(0, base) + base / 2)

    def _request(self, messages: list[dict[str, Any]], response_format: dict | None,
                 seed: int | None, stats: dict[str, Any], sent: dict[str, Any] | None = None):
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages}
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        if self.max_tokens:
            with self._lock:
                kwargs[self._token_param] = self.max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        if seed is not None:
            kwargs["seed"] = seed
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body
        if sent is not None:
            sent.update(kwargs)

        def attempt():
            stats["requests"] += 1
            with self._slots, total_deadline(self.timeout):
                try:
                    response = self._client.chat.completions.create(**kwargs)
                except json.JSONDecodeError as exc:  # a JSON content type over a non-JSON body
                    raise NotAChatCompletion(f"the reply body is not JSON ({exc})") from exc
            if not isinstance(getattr(response, "choices", None), list):
                raise NotAChatCompletion(
                    "the reply is not a chat completion: "
                    f"{self._redact(repr(response))[:200]}")
            return response

        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except Exception as exc:
            if not _is_retryable(exc):
                raise
            message = self._redact(
                f"{self.model} at {self.base_url or 'api.openai.com'}: request failed after "
                f"{stats['requests']} attempt(s): {type(exc).__name__}: {exc}"
                + self._body_suffix(exc))
            # a cause that holds the key (a server echoed it) is not chained into tracebacks
            raise MLLMCallError(message) from (None if self._holds_key(str(exc)) else exc)

    def _holds_key(self, text: str) -> bool:
        key = getattr(self._client, "api_key", None)
        return isinstance(key, str) and len(key) >= 8 and key != "not-needed" and key in text

    def _redact(self, text: str) -> str:
        """``text`` with the API key, where it occurs, replaced by ``***``."""
        if self._holds_key(text):
            text = text.replace(self._client.api_key, "***")
        return text

    @staticmethod
    def _response_format(schema: type[BaseModel], mode: str) -> dict | None:
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {
                "name": _schema_name(schema), "schema": schema.model_json_schema(),
                "strict": False}}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    @staticmethod
    def _body_suffix(exc: BaseException) -> str:
        body = getattr(exc, "body", None)
        if not body or (isinstance(body, dict) and set(body) <= {"message"}):
            return ""
        return f" (server said: {json.dumps(body, default=str)[:1000]})"

    def _downgrade(self, sent_mode: str) -> bool:
        """After a rejected response format in auto mode: the next weaker mode.

        Under the lock, and only if no parallel call has changed the mode since this request was
        sent (else the request simply goes again with the mode now in use).
        """
        if self.json_mode != "auto" or sent_mode == "none":
            return False
        with self._lock:
            if self._mode == sent_mode:
                self._mode = {"json_schema": "json_object", "json_object": "none"}[sent_mode]
        return True

    def _switch_token_param(self, sent: dict[str, Any]) -> bool:
        """A reasoning model rejected ``max_tokens``: use ``max_completion_tokens`` from now on."""
        if self.token_param != "auto" or "max_tokens" not in sent:
            return False
        with self._lock:
            self._token_param = "max_completion_tokens"
        return True

    def _rejected(self, task: str, exc: BaseException, n_images: int) -> MLLMCallError:
        reason = classify_rejection(exc)
        hint = REJECTION_HINTS.get(reason, "").format(images=n_images)
        message = (f"{self.model}: {task} request rejected ({_status(exc)}"
                   f"{', ' + reason if reason != 'other' else ''}): {error_text(exc)}"
                   + (f" - {hint}" if hint else "") + self._body_suffix(exc))
        error = MLLMCallError(self._redact(message))
        error.reason = reason  # type: ignore[attr-defined]
        return error

    def _check_context(self, task: str, messages: list[dict[str, Any]]) -> None:
        """Refuse a request that cannot fit ``context_tokens``; warn when it comes near.

        Ollama's OpenAI layer does not fail on overflow: it drops the oldest content parts (the
        images first) and answers about what is left.
        """
        if not self.context_tokens:
            return
        estimate = (_count_images(messages) * self.image_tokens + _text_chars(messages) // 3
                    + (self.max_tokens or 0))
        if estimate > self.context_tokens:
            raise MLLMCallError(
                f"{self.model}: the {task} request needs about {estimate} tokens "
                f"({_count_images(messages)} image(s) at ~{self.image_tokens}), over "
                f"context_tokens={self.context_tokens}; the server would silently drop content - "
                "raise the context (Ollama: OLLAMA_CONTEXT_LENGTH) or lower max_images")
        if estimate > 0.8 * self.context_tokens:
            import warnings

            warnings.warn(f"{self.model}: the {task} request needs about {estimate} of "
                          f"{self.context_tokens} context tokens", stacklevel=3)

    def _check_truncated_context(self, task: str, prompt_tokens: int) -> None:
        """A reply whose prompt filled the whole context was made from a truncated request."""
        if self.context_tokens and prompt_tokens >= self.context_tokens:
            raise MLLMCallError(
                f"{self.model}: the server read {prompt_tokens} prompt tokens for the {task} "
                f"request, its whole context ({self.context_tokens}): it dropped part of the "
                "request (Ollama does this silently) - raise OLLAMA_CONTEXT_LENGTH / num_ctx")

    def _structured(
        self,
        task: str,
        user_content: list[dict[str, Any]],
        schema: type[M],
        check: Callable[[M], None] | None = None,
        seed: int | None = None,
    ) -> M:
        import openai

        system = render_prompt(
            "system", schema=json.dumps(schema.model_json_schema(), separators=(",", ":"))
        )
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": user_content},
        ]
        stats: dict[str, Any] = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0,
                                 "cached_tokens": 0, "downgrades": 0, "corrections": 0,
                                 "usage_missing": False, "served_by": None}
        start = time.perf_counter()
        reasks = 0
        n_images = _count_images(messages)
        try:
            self._check_context(task, messages)
            while True:
                with self._lock:
                    sent_mode = self._mode
                sent: dict[str, Any] = {}
                try:
                    response = self._request(messages, self._response_format(schema, sent_mode),
                                             seed, stats, sent)
                except openai.APIStatusError as exc:
                    if self._recover(exc, sent_mode, sent, stats):
                        continue
                    raise self._rejected(task, exc, n_images) from (
                        None if self._holds_key(str(exc)) else exc)
                self._count_usage(task, response, stats)
                content = ""
                try:
                    content = self._checked_reply(task, response)
                    value = schema.model_validate(extract_json(content))
                    if check is not None:
                        check(value)
                    self._record(task, stats, start, reasks, ok=True)
                    return value
                except (ValueError, ValidationError) as exc:
                    if reasks >= self.reask:
                        raise MLLMReplyError(
                            f"{self.model}: the {task} reply did not validate against "
                            f"{schema.__name__} after {reasks} re-ask(s): "
                            f"{self._redact(str(exc))[:2000]}"
                        ) from exc
                    reasks += 1
                    if len(content) > self.max_reply_chars:  # never send a huge reply back
                        content = content[:1000] + f" [... {len(content) - 1000} characters cut]"
                    messages = messages + [
                        {"role": "assistant", "content": content},
                        {"role": "user", "content": render_prompt(
                            "reask", error=str(exc)[:2000],
                            schema=json.dumps(schema.model_json_schema(), separators=(",", ":")),
                        )},
                    ]
        except Exception:  # every failed call is recorded, whatever it raised
            self._record(task, stats, start, reasks, ok=False)
            raise

    def _recover(self, exc: BaseException, sent_mode: str, sent: dict[str, Any],
                 stats: dict[str, Any]) -> bool:
        """Whether a rejected request can go again: a weaker response format (auto mode), or
        ``max_completion_tokens`` for a reasoning model (once per call)."""
        if _status(exc) not in (400, 422):
            return False
        reason = classify_rejection(exc)
        if reason == "response_format" and self._downgrade(sent_mode):
            stats["downgrades"] += 1
            return True
        if reason == "max_tokens" and not stats["corrections"] and self._switch_token_param(sent):
            stats["corrections"] += 1
            return True
        return False

    def _count_usage(self, task: str, response: Any, stats: dict[str, Any]) -> None:
        usage = getattr(response, "usage", None)
        model = getattr(response, "model", None)
        fingerprint = getattr(response, "system_fingerprint", None)
        if model or fingerprint:
            stats["served_by"] = f"{model or '?'}" + (f"@{fingerprint}" if fingerprint else "")
        if usage is None:
            stats["usage_missing"] = True  # flagged, not counted as 0 tokens
            return
        prompt_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
        stats["prompt_tokens"] += prompt_tokens
        stats["completion_tokens"] += int(getattr(usage, "completion_tokens", 0) or 0)
        details = getattr(usage, "prompt_tokens_details", None)
        stats["cached_tokens"] += int(getattr(details, "cached_tokens", 0) or 0)
        self._check_truncated_context(task, prompt_tokens)

    def _checked_reply(self, task: str, response: Any) -> str:
        """The reply's text; a cut or filtered reply is an error (a re-ask would not help)."""
        choices = getattr(response, "choices", None) or []
        finish = getattr(choices[0], "finish_reason", None) if choices else None
        if finish == "content_filter":
            raise MLLMReplyError(f"{self.model}: the {task} reply was stopped by the provider's "
                                 "content filter (finish_reason content_filter)")
        content = _reply_text(response)
        if finish == "length":
            raise MLLMReplyError(
                f"{self.model}: the {task} reply was cut at the token limit (finish_reason "
                f"length, {self._token_param}={self.max_tokens}); raise max_tokens - reasoning "
                "models spend part of it on hidden reasoning")
        if len(content) > self.max_reply_chars:
            raise ValueError(
                f"the reply is {len(content)} characters long, over the limit of "
                f"{self.max_reply_chars}; reply with a much shorter JSON object")
        return content

    def _record(self, task: str, stats: dict[str, Any], start: float, reasks: int, ok: bool):
        latency = time.perf_counter() - start
        record = {"task": task, "ok": ok, "attempts": stats["requests"], "reasks": reasks,
                  "prompt_tokens": stats["prompt_tokens"],
                  "completion_tokens": stats["completion_tokens"],
                  "cached_tokens": stats["cached_tokens"], "latency_s": latency,
                  "case": CURRENT_CASE.get()}
        if stats["usage_missing"]:
            record["usage_missing"] = True
        if stats["served_by"]:
            record["served_by"] = stats["served_by"]
        if self.prices is not None:
            record["cost_usd"] = self._cost(stats)
            if stats["cached_tokens"] and "cached_input" not in self.prices:
                record["cost_upper_bound"] = True  # cached tokens priced as fresh input
        with self._lock:
            self._records.append(record)
            t = self._totals
            t["calls"] += 1
            t["requests"] += stats["requests"]
            t["retries"] += max(0, stats["requests"] - 1 - reasks - stats["downgrades"]
                                - stats["corrections"])
            t["reasks"] += reasks
            t["errors"] += 0 if ok else 1
            t["prompt_tokens"] += stats["prompt_tokens"]
            t["completion_tokens"] += stats["completion_tokens"]
            t["cached_tokens"] += stats["cached_tokens"]
            t["calls_without_usage"] += 1 if stats["usage_missing"] else 0
            t["latency_s"] += latency
            t["cost_usd"] += record.get("cost_usd", 0.0)

    def _cost(self, stats: dict[str, Any]) -> float:
        """USD: fresh input, cached input (``cached_input`` price, else the input price) and
        output tokens, each at its price per 1M tokens."""
        prices = self.prices or {}
        input_price = float(prices.get("input", 0.0))
        cached = min(stats["cached_tokens"], stats["prompt_tokens"])
        return ((stats["prompt_tokens"] - cached) * input_price
                + cached * float(prices.get("cached_input", input_price))
                + stats["completion_tokens"] * float(prices.get("output", 0.0))) / 1e6

    # -- message parts --------------------------------------------------------------------------

    def _image_part(self, image: Image.Image) -> dict[str, Any]:
        url: dict[str, Any] = {"url": encode_image(image, self.max_image_side, self.image_format)}
        if self.image_detail:
            url["detail"] = self.image_detail
        return {"type": "image_url", "image_url": url}

    def _fit_context_images(self, ctx_images: list[dict], own: int) -> list[dict]:
        """The most recent context images that fit ``max_images`` beside the call's own ones."""
        if self.max_images is None:
            return ctx_images
        room = max(0, self.max_images - own)
        return ctx_images[len(ctx_images) - room:] if room else []

    def _pair_parts(self, reference: Image.Image, candidate: Image.Image) -> list[dict]:
        """Reference and candidate as two images, or side by side in one where ``max_images``
        is 1 (vLLM's default limit; Ollama models that see only the last image)."""
        if self.max_images is None or self.max_images >= 2:
            return [self._text_part("Image 1 (reference):"), self._image_part(reference),
                    self._text_part("Image 2 (candidate):"), self._image_part(candidate)]
        return [self._text_part("One picture, two images side by side: Image 1 (reference) on "
                                "the left half, Image 2 (candidate) on the right half."),
                self._image_part(side_by_side(reference, candidate))]

    @staticmethod
    def _text_part(text: str) -> dict[str, Any]:
        return {"type": "text", "text": text}

    def _context_parts(self, context: Sequence[dict[str, Any]]) -> tuple[list[dict], list[str]]:
        parts, texts = [], []
        for item in context:
            if isinstance(item.get("image"), Image.Image):
                parts.append(self._image_part(item["image"]))
            if item.get("text"):
                texts.append(str(item["text"]))
        return parts, texts

    # -- roles ----------------------------------------------------------------------------------

    def describe(self, image: Image.Image, context: Sequence[dict[str, Any]] = ()) -> ImageUnderstandingTree:
        ctx_images, ctx_texts = self._context_parts(context)
        ctx_images = self._fit_context_images(ctx_images, own=1)
        if self.iut_mode == "single":
            text = render_prompt("describe_iut", context=ctx_texts, max_objects=MAX_OBJECTS,
                                 n_context_images=len(ctx_images))
            return self._structured("describe", ctx_images + [self._image_part(image),
                                                              self._text_part(text)],
                                    ImageUnderstandingTree)
        return self._describe_multi(image, ctx_images, ctx_texts)

    def _describe_multi(self, image, ctx_images, ctx_texts) -> ImageUnderstandingTree:
        img = self._image_part(image)

        def ask(task: str, template: str, schema, **variables):
            text = render_prompt(template, **variables)
            parts = (ctx_images if task == "describe_global" else []) + [img, self._text_part(text)]
            return self._structured(task, parts, schema)

        glob = ask("describe_global", "describe_global", GlobalDescription, context=ctx_texts,
                   n_context_images=len(ctx_images))
        features = ask("describe_features", "describe_features", GlobalFeatures,
                       global_description=glob.global_description)
        listed = ask("describe_objects", "describe_objects", ObjectList,
                     global_description=glob.global_description, max_objects=MAX_OBJECTS)
        objects: list[SceneObject] = []
        for obj in listed.objects[:MAX_OBJECTS]:
            kind = obj.type if obj.type in ("person", "animal", "object") else "object"
            attrs = ask("describe_object_attributes", "describe_object_attributes",
                        ObjectAttributes, object_name=obj.name, object_type=kind,
                        global_description=glob.global_description)
            objects.append(SceneObject(name=obj.name, type=kind, attributes=attrs))
        relationships: list[Relationship] = []
        if len(objects) > 1:
            relationships = ask("describe_relationships", "describe_relationships",
                                RelationshipList, objects=[o.name for o in objects]).relationships
        return ImageUnderstandingTree(global_description=glob.global_description,
                                      global_features=features, objects=objects,
                                      relationships=relationships)

    def rewrite_prompt(self, draft: str, iut: ImageUnderstandingTree) -> str:
        text = render_prompt("rewrite_prompt", draft=draft, iut=iut.model_dump_json(),
                             budget=current_prompt_budget())
        return self._structured("rewrite_prompt", [self._text_part(text)], RevisedPrompt).prompt.strip()

    def refine_dialogue(self, caption: str, dialog: Sequence[tuple[str, str]]) -> str:
        text = render_prompt("refine_dialogue", caption=caption,
                             dialog=[{"question": q, "answer": a} for q, a in dialog],
                             budget=current_prompt_budget())
        return self._structured("refine_dialogue", [self._text_part(text)],
                                RevisedPrompt).prompt.strip()

    def write_variants(self, prompt: str, n: int, iut: ImageUnderstandingTree,
                       critique: Critique | None, seed: int) -> list[str]:
        if n < 1:
            return []
        text = render_prompt(
            "write_variants", prompt=prompt, n=n, iut=iut.model_dump_json(),
            critique=critique.model_dump_json() if critique is not None else "",
            budget=current_prompt_budget(),
        )

        def enough(value: PromptVariants) -> None:
            usable = [p for p in value.prompts if p.strip()]
            if len(usable) < n:
                raise ValueError(f"expected {n} non-empty prompts, got {len(usable)}")

        value = self._structured("write_variants", [self._text_part(text)], PromptVariants,
                                 check=enough, seed=seed)
        return [p.strip() for p in value.prompts if p.strip()][:n]

    def critique(self, reference: Image.Image, candidate: Image.Image, prompt: str) -> Critique:
        text = render_prompt("critique", prompt=prompt)
        parts = self._pair_parts(reference, candidate) + [self._text_part(text)]
        return self._structured("critique", parts, Critique)

    def revise(self, prompt: str, critique: Critique, iut: ImageUnderstandingTree) -> str:
        text = render_prompt("revise_prompt", prompt=prompt, critique=critique.model_dump_json(),
                             iut=iut.model_dump_json(), budget=current_prompt_budget())
        return self._structured("revise", [self._text_part(text)], RevisedPrompt).prompt.strip()

    def judge(self, reference: Image.Image, candidate: Image.Image) -> Judgement:
        text = render_prompt("judge")
        parts = self._pair_parts(reference, candidate) + [self._text_part(text)]
        return self._structured("judge", parts, Judgement)

    # -- asyncio variants (run the sync call in a worker thread; concurrency still applies) ---

    async def adescribe(self, image, context=()):
        return await asyncio.to_thread(self.describe, image, context)

    async def arewrite_prompt(self, draft, iut):
        return await asyncio.to_thread(self.rewrite_prompt, draft, iut)

    async def awrite_variants(self, prompt, n, iut, critique, seed):
        return await asyncio.to_thread(self.write_variants, prompt, n, iut, critique, seed)

    async def acritique(self, reference, candidate, prompt):
        return await asyncio.to_thread(self.critique, reference, candidate, prompt)

    async def arevise(self, prompt, critique, iut):
        return await asyncio.to_thread(self.revise, prompt, critique, iut)

    async def ajudge(self, reference, candidate):
        return await asyncio.to_thread(self.judge, reference, candidate)

    def close(self) -> None:
        self._client.close()
