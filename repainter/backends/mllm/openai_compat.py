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
  ``--limit-mm-per-prompt``; a server that refuses even one image is said to take none),
  context length, content filter; a reasoning model's ``max_tokens`` rejection switches to
  ``max_completion_tokens`` once. Every error carries ``reason_key`` and ``permanent``
  (:mod:`~repainter.backends.mllm.rejections`). ``temperature`` is sent only when set
  (default None: reasoning models reject any but their own; set 0.0 for steadier replies on
  models that take it). ``max_images`` / ``image_detail`` / ``context_tokens`` fit a server's
  image and context budget: ``max_images: 1`` sends critique / judge pairs side by side.
* Every adaptation is recorded where a reader looks (:mod:`~repainter.backends.mllm.adaptations`):
  the response format stepped down, the token parameter switched, images downscaled, context
  images dropped or pairs combined, requests refused or cut for their context. Per call in
  :meth:`records`, per case in :meth:`case_adaptations` (the case record's
  ``mllm_adaptations``), per run in :meth:`adaptations` (``run.json``), and a warning the first
  time each happens. The response format and token parameter in use are in :meth:`identity`,
  so the cache keys a reply by the mode that produced it (``CachedMLLM`` stores it under the
  identity after the call: a ``json_object`` reply is never served to a request that would run
  as ``json_schema``).
* Silent context truncation (Ollama's ``/v1`` drops the oldest content past its context, images
  first, and answers about the rest) is refused where it is demonstrated and warned where it is
  suspected: with ``context_tokens`` a request estimated over it is refused before it is sent,
  and a reply that read the whole context fails the call; without it, a reply that read exactly
  a default Ollama context (2048 / 4096) for a request estimated above it fails the call (the
  error names the fix: the server's context and ``context_tokens``). A reply that read under
  half of a low estimate of what was sent, or any image request to an Ollama endpoint (port
  11434, ``/api``, fingerprint ``fp_ollama``) without ``context_tokens``, is used but recorded
  as ``context_truncated_suspected`` and logged: usage alone cannot prove it, since servers
  spend very different numbers of tokens on an image.
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
import functools
import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from PIL import Image
from pydantic import BaseModel, Field, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from repainter.backends.base import MLLMBackend, current_prompt_budget
from repainter.backends.mllm.adaptations import (
    CONTEXT_FIX,
    AdaptationLog,
    check_prompt_tokens,
    is_ollama,
    summarize,
)
from repainter.backends.mllm.rejections import (  # the errors are part of this module's API
    MLLMCallError,
    MLLMError,
    MLLMReplyError,
    NotAChatCompletion,
    body_suffix,
    classify_rejection,
    error_text,
    is_retryable,
    rejection_hint,
    rejection_key,
    retry_after,
    status_of,
    transient_key,
)
from repainter.backends.mllm.wire import (  # part of this module's API, too
    encode_image,
    extract_json,
    fitted_size,
    reply_text,
    side_by_side,
)
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


def _schema_name(schema: type[BaseModel]) -> str:
    return schema.__name__[:64]


class OpenAIMLLM(MLLMBackend):
    """An OpenAI-compatible chat-completions model (OpenAI, vLLM, Ollama, LM Studio ...)."""

    kind = "openai"
    #: Imported on use, so the class loads without it; the preflight checks it is installed.
    packages = ("openai",)
    extra = "models"

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
        temperature: float | None = None,
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
                    "OpenAI-compatible server that needs none)", reason_key="no_api_key",
                    permanent=True)
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
        self._log = AdaptationLog(f"{model} at {base_url or 'api.openai.com'}")
        self._format_rejections: dict[str, str] = {}  # mode -> why the server refused it
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
            mine = [r for r in self._records
                    if r.get("case") == (model, case_id) and not r.get("cache_hit")]
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
        """Per-call records: task, tokens, latency, attempts, re-asks, cost, adaptations."""
        with self._lock:
            return [dict(r) for r in self._records]

    def adaptations(self) -> list[dict[str, Any]]:
        """Every adaptation of every call so far, summed per kind and change (run.json)."""
        with self._lock:
            return summarize(list(self._records))

    def case_adaptations(self, model: str, case_id: str) -> list[dict[str, Any]]:
        """The adaptations of the calls made (or answered from the cache) for one case."""
        with self._lock:
            return summarize([r for r in self._records if r.get("case") == (model, case_id)])

    def note_cache_hit(self, task: str) -> None:
        """A reply the cache answered was made in the response format and token parameter in
        use now (they are in the cache key): record them for the case where they are adapted."""
        notes: list[dict[str, Any]] = []
        self._note_modes(self._new_stats(()) | {"adaptations": notes}, self._mode,
                         {self._token_param: self.max_tokens} if self.max_tokens else {})
        if notes:
            with self._lock:
                self._records.append({"task": task, "case": CURRENT_CASE.get(),
                                      "cache_hit": True, "adaptations": notes})

    # -- requests -------------------------------------------------------------------------------

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = retry_after(exc)
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
            retry=retry_if_exception(is_retryable),
            stop=stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            message = self._redact(
                f"{self.model} at {self.base_url or 'api.openai.com'}: request failed after "
                f"{stats['requests']} attempt(s): {type(exc).__name__}: {exc}"
                + body_suffix(exc))
            # a cause that holds the key (a server echoed it) is not chained into tracebacks
            raise MLLMCallError(message, reason_key=transient_key(exc)) from (
                None if self._holds_key(str(exc)) else exc)

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

    def _downgrade(self, sent_mode: str, exc: BaseException) -> bool:
        """After a rejected response format in auto mode: the next weaker mode.

        Under the lock, and only if no parallel call has changed the mode since this request was
        sent (else the request simply goes again with the mode now in use).
        """
        if self.json_mode != "auto" or sent_mode == "none":
            return False
        with self._lock:
            self._format_rejections.setdefault(sent_mode, error_text(exc)[:300])
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
        """The error of a rejection no retry can fix (``permanent`` but for a content filter:
        rejections.py)."""
        reason = classify_rejection(exc)
        hint = rejection_hint(reason, n_images, error_text(exc), self.max_images)
        message = (f"{self.model}: {task} request rejected ({status_of(exc)}"
                   f"{', ' + reason if reason != 'other' else ''}): {error_text(exc)}"
                   + (f" - {hint}" if hint else "") + body_suffix(exc))
        # a content filter judges this request's content: other requests may pass
        return MLLMCallError(self._redact(message), reason_key=rejection_key(exc),
                             permanent=reason != "content_filter")

    def _check_context(self, task: str, messages: list[dict[str, Any]],
                       stats: dict[str, Any]) -> None:
        """Refuse a request that cannot fit ``context_tokens``; warn when it comes near.

        Ollama's OpenAI layer does not fail on overflow: it drops the oldest content parts (the
        images first) and answers about what is left.
        """
        if not self.context_tokens:
            return
        images = _count_images(messages)
        estimate = (images * self.image_tokens + _text_chars(messages) // 3
                    + (self.max_tokens or 0))
        if estimate > self.context_tokens:
            self._log.note(stats["adaptations"], "context_refused", f"~{estimate} tokens",
                           f"context_tokens={self.context_tokens}", detail="not sent")
            raise MLLMCallError(
                f"{self.model}: the {task} request needs about {estimate} tokens "
                f"({images} image(s) at ~{self.image_tokens}), over "
                f"context_tokens={self.context_tokens}; the server would silently drop content - "
                "raise the context (Ollama: OLLAMA_CONTEXT_LENGTH) or lower max_images",
                reason_key="context_overflow", permanent=True)
        if estimate > 0.8 * self.context_tokens:
            import warnings

            warnings.warn(f"{self.model}: the {task} request needs about {estimate} of "
                          f"{self.context_tokens} context tokens", stacklevel=3)

    def _check_read_tokens(self, task: str, prompt_tokens: int, stats: dict[str, Any],
                           messages: list[dict[str, Any]]) -> None:
        """Fail a call whose request the server demonstrably cut; note one it probably cut
        (:func:`~repainter.backends.mllm.adaptations.check_prompt_tokens`)."""
        found = check_prompt_tokens(
            prompt_tokens, text_chars=_text_chars(messages), image_sizes=stats["image_sizes"],
            image_tokens=self.image_tokens, image_detail=self.image_detail,
            context_tokens=self.context_tokens,
            ollama=is_ollama(self.base_url, stats["served_by"]))
        if found is None:
            return
        kind, why = found
        self._log.note(stats["adaptations"], kind, detail=why)
        if kind == "context_truncated":
            raise MLLMCallError(
                f"{self.model}: {task}: the server dropped part of the request ({why}); it "
                "cuts the oldest content past its context, images first, and answers anyway - "
                f"{CONTEXT_FIX}", reason_key="context_truncated", permanent=True)

    def _structured(
        self,
        task: str,
        user_content: list[dict[str, Any]],
        schema: type[M],
        check: Callable[[M], None] | None = None,
        seed: int | None = None,
        notes: Sequence[dict[str, Any]] = (),
    ) -> M:
        import openai

        system = render_prompt(
            "system", schema=json.dumps(schema.model_json_schema(), separators=(",", ":"))
        )
        stats = self._new_stats(notes)
        messages: list[dict[str, Any]] = [
            {"role": "system", "content": system},
            {"role": "user", "content": self._wire_parts(user_content, stats)},
        ]
        start = time.perf_counter()
        reasks = 0
        try:
            self._check_context(task, messages, stats)
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
                    raise self._rejected(task, exc, len(stats["image_sizes"])) from (
                        None if self._holds_key(str(exc)) else exc)
                self._note_modes(stats, sent_mode, sent)
                self._count_usage(task, response, stats, messages)
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
                    messages = messages + self._reask_messages(content, exc, schema)
        except Exception:  # every failed call is recorded, whatever it raised
            self._record(task, stats, start, reasks, ok=False)
            raise

    def _reask_messages(self, content: str, exc: BaseException, schema: type[BaseModel]):
        if len(content) > self.max_reply_chars:  # never send a huge reply back
            content = content[:1000] + f" [... {len(content) - 1000} characters cut]"
        return [{"role": "assistant", "content": content},
                {"role": "user", "content": render_prompt(
                    "reask", error=str(exc)[:2000],
                    schema=json.dumps(schema.model_json_schema(), separators=(",", ":")))}]

    @staticmethod
    def _new_stats(notes: Sequence[dict[str, Any]]) -> dict[str, Any]:
        return {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "cached_tokens": 0,
                "downgrades": 0, "corrections": 0, "usage_missing": False, "served_by": None,
                "adaptations": list(notes), "image_sizes": [], "modes_noted": False}

    def _note_modes(self, stats: dict[str, Any], sent_mode: str, sent: dict[str, Any]) -> None:
        """The response format and token parameter the call's answered request ran with, where
        they are not what was asked for (noted once per call)."""
        if stats["modes_noted"]:
            return
        stats["modes_noted"] = True
        notes = stats["adaptations"]
        if self.json_mode == "auto" and sent_mode != "json_schema":
            refused = "json_schema" if sent_mode == "json_object" else "json_object"
            with self._lock:
                why = self._format_rejections.get(refused)
            self._log.note(notes, "response_format", "json_schema", sent_mode,
                           detail=f"the server rejected {refused}: {why}" if why else None)
        if self.token_param == "auto" and "max_completion_tokens" in sent:
            self._log.note(notes, "token_param", "max_tokens", "max_completion_tokens",
                           detail="the server rejected max_tokens")

    def _recover(self, exc: BaseException, sent_mode: str, sent: dict[str, Any],
                 stats: dict[str, Any]) -> bool:
        """Whether a rejected request can go again: a weaker response format (auto mode), or
        ``max_completion_tokens`` for a reasoning model (once per call)."""
        if status_of(exc) not in (400, 422):
            return False
        reason = classify_rejection(exc)
        if reason == "response_format" and self._downgrade(sent_mode, exc):
            stats["downgrades"] += 1
            return True
        if reason == "max_tokens" and not stats["corrections"] and self._switch_token_param(sent):
            stats["corrections"] += 1
            return True
        return False

    def _count_usage(self, task: str, response: Any, stats: dict[str, Any],
                     messages: list[dict[str, Any]]) -> None:
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
        self._check_read_tokens(task, prompt_tokens, stats, messages)

    def _checked_reply(self, task: str, response: Any) -> str:
        """The reply's text; a cut or filtered reply is an error (a re-ask would not help)."""
        choices = getattr(response, "choices", None) or []
        finish = getattr(choices[0], "finish_reason", None) if choices else None
        if finish == "content_filter":
            raise MLLMReplyError(f"{self.model}: the {task} reply was stopped by the provider's "
                                 "content filter (finish_reason content_filter)",
                                 reason_key="content_filter")
        content = reply_text(response)
        if finish == "length":
            raise MLLMReplyError(
                f"{self.model}: the {task} reply was cut at the token limit (finish_reason "
                f"length, {self._token_param}={self.max_tokens}); raise max_tokens - reasoning "
                "models spend part of it on hidden reasoning", reason_key="reply_cut")
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
        if stats["adaptations"]:
            record["adaptations"] = stats["adaptations"]
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
        """An ``image_url`` part; ``_sizes`` (original, sent) is read and removed before sending."""
        url: dict[str, Any] = {"url": encode_image(image, self.max_image_side, self.image_format)}
        if self.image_detail:
            url["detail"] = self.image_detail
        return {"type": "image_url", "image_url": url,
                "_sizes": (image.size, fitted_size(image.size, self.max_image_side))}

    def _wire_parts(self, parts: list[dict[str, Any]], stats: dict[str, Any]) -> list[dict]:
        """``parts`` as sent; the images' sent sizes go to ``stats``, downscales to its notes."""
        wire = []
        for part in parts:
            sizes = part.get("_sizes")
            if sizes is not None:
                (original, sent) = sizes
                stats["image_sizes"].append(sent)
                if tuple(original) != tuple(sent):
                    self._log.note(stats["adaptations"], "image_downscaled",
                                   "x".join(map(str, original)), "x".join(map(str, sent)),
                                   detail=f"max_image_side: {self.max_image_side}")
            wire.append({k: v for k, v in part.items() if k != "_sizes"})
        return wire

    def _fit_context_images(self, ctx_images: list[dict], own: int,
                            notes: list[dict[str, Any]]) -> list[dict]:
        """The most recent context images that fit ``max_images`` beside the call's own ones."""
        if self.max_images is None:
            return ctx_images
        room = max(0, self.max_images - own)
        kept = ctx_images[len(ctx_images) - room:] if room else []
        if len(kept) < len(ctx_images):
            self._log.note(notes, "context_images_dropped", f"{len(ctx_images)} context images",
                           f"{len(kept)} kept", n=len(ctx_images) - len(kept),
                           detail=f"max_images: {self.max_images}")
        return kept

    def _pair_parts(self, reference: Image.Image, candidate: Image.Image,
                    notes: list[dict[str, Any]]) -> list[dict]:
        """Reference and candidate as two images, or side by side in one where ``max_images``
        is 1 (vLLM's default limit; Ollama models that see only the last image)."""
        if self.max_images is None or self.max_images >= 2:
            return [self._text_part("Image 1 (reference):"), self._image_part(reference),
                    self._text_part("Image 2 (candidate):"), self._image_part(candidate)]
        self._log.note(notes, "images_combined", "2 images", "1 side-by-side image",
                       detail="max_images: 1")
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
        notes: list[dict[str, Any]] = []
        ctx_images = self._fit_context_images(ctx_images, own=1, notes=notes)
        if self.iut_mode == "single":
            text = render_prompt("describe_iut", context=ctx_texts, max_objects=MAX_OBJECTS,
                                 n_context_images=len(ctx_images))
            return self._structured("describe", ctx_images + [self._image_part(image),
                                                              self._text_part(text)],
                                    ImageUnderstandingTree, notes=notes)
        return self._describe_multi(image, ctx_images, ctx_texts, notes)

    def _describe_multi(self, image, ctx_images, ctx_texts, notes) -> ImageUnderstandingTree:
        img = self._image_part(image)

        def ask(task: str, template: str, schema, **variables):
            text = render_prompt(template, **variables)
            first = task == "describe_global"  # the one call that sees the context
            parts = (ctx_images if first else []) + [img, self._text_part(text)]
            return self._structured(task, parts, schema, notes=notes if first else ())

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
        notes: list[dict[str, Any]] = []
        parts = self._pair_parts(reference, candidate, notes) + [self._text_part(text)]
        return self._structured("critique", parts, Critique, notes=notes)

    def revise(self, prompt: str, critique: Critique, iut: ImageUnderstandingTree) -> str:
        text = render_prompt("revise_prompt", prompt=prompt, critique=critique.model_dump_json(),
                             iut=iut.model_dump_json(), budget=current_prompt_budget())
        return self._structured("revise", [self._text_part(text)], RevisedPrompt).prompt.strip()

    def judge(self, reference: Image.Image, candidate: Image.Image) -> Judgement:
        text = render_prompt("judge")
        notes: list[dict[str, Any]] = []
        parts = self._pair_parts(reference, candidate, notes) + [self._text_part(text)]
        return self._structured("judge", parts, Judgement, notes=notes)

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
