"""How the OpenAI-compatible MLLM talks to its server: one ``openai`` client, retries, deadlines,
the modes a server made it adapt, and errors that never hold the API key.

* The API key is read from the environment variable ``api_key_env`` here and handed to the
  client only (a local server with a ``base_url`` needs none).
* At most ``concurrency`` requests are in flight; each has ``timeout`` as a total deadline
  (:mod:`repainter.deadline`). Rate limits, server errors, connection errors, timeouts and 2xx
  replies that are not chat completions are retried with exponential backoff and jitter
  (tenacity), honouring ``Retry-After`` and ``x-should-retry`` (:mod:`.rejections` decides).
* The response format (``json_mode: auto``: ``json_schema`` -> ``json_object`` -> ``none``) and
  the token parameter (``token_param: auto``: ``max_tokens`` -> ``max_completion_tokens``) step
  down once a server rejects them, and the calls that ran that way note it (:mod:`.adaptations`).
* A request estimated over ``context_tokens`` is refused before it is sent; a reply that read
  demonstrably less than it was sent fails the call, one that probably did is noted.
"""

from __future__ import annotations

import json
import os
import random
import threading
from typing import Any

from pydantic import BaseModel
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt

from repainter.backends.mllm.adaptations import (
    CONTEXT_FIX,
    AdaptationLog,
    check_prompt_tokens,
    is_ollama,
)
from repainter.backends.mllm.openai_config import OpenAIConfig
from repainter.backends.mllm.openai_messages import count_images, schema_name, text_chars
from repainter.backends.mllm.openai_usage import CallStats
from repainter.backends.mllm.rejections import (
    MLLMCallError,
    MLLMError,
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
from repainter.deadline import deadline_http_client, total_deadline

#: The response format a rejected one steps down to (``json_mode: auto``).
WEAKER_MODE = {"json_schema": "json_object", "json_object": "none"}


def response_format(schema: type[BaseModel], mode: str) -> dict | None:
    """The ``response_format`` of a request in ``mode`` (None: plain text)."""
    if mode == "json_schema":
        return {"type": "json_schema", "json_schema": {
            "name": schema_name(schema), "schema": schema.model_json_schema(), "strict": False}}
    if mode == "json_object":
        return {"type": "json_object"}
    return None


def _api_key(config: OpenAIConfig) -> str:
    key = os.environ.get(config.api_key_env) if config.api_key_env else None
    if key:
        return key
    if config.base_url is None:
        raise MLLMError(
            f"openai: no API key - export {config.api_key_env}=<key> (or set base_url to an "
            "OpenAI-compatible server that needs none)", reason_key="no_api_key",
            permanent=True)
    return "not-needed"  # local servers ignore it; the client insists on one


class ChatTransport:
    """Sends chat-completion requests for one backend (thread-safe)."""

    def __init__(self, config: OpenAIConfig, log: AdaptationLog):
        import openai

        self.config = config
        self.log = log
        # openai's own retries are off: tenacity below does them, with our policy and records;
        # the http client enforces `timeout` as a total deadline per request (see send)
        self._client = openai.OpenAI(
            api_key=_api_key(config), base_url=config.base_url, timeout=config.timeout,
            max_retries=0, default_headers=config.default_headers,
            default_query=config.default_query or None,
            http_client=deadline_http_client(timeout=config.timeout))
        self._slots = threading.BoundedSemaphore(config.concurrency)
        self._lock = threading.Lock()
        self._mode = "json_schema" if config.json_mode == "auto" else config.json_mode
        # auto: max_tokens until a server says to use max_completion_tokens
        self._token_param = "max_tokens" if config.token_param == "auto" else config.token_param
        self._format_rejections: dict[str, str] = {}  # mode -> why the server refused it

    def modes(self) -> tuple[str, str]:
        """The response format and token parameter requests are sent with now."""
        with self._lock:
            return self._mode, self._token_param

    def close(self) -> None:
        self._client.close()

    # -- sending --------------------------------------------------------------------------------

    def payload(self, messages: list[dict[str, Any]], response_format: dict | None,
                seed: int | None) -> dict[str, Any]:
        """The keyword arguments of ``chat.completions.create``."""
        config = self.config
        kwargs: dict[str, Any] = {"model": config.model, "messages": messages}
        if config.temperature is not None:
            kwargs["temperature"] = config.temperature
        if config.max_tokens:
            with self._lock:
                kwargs[self._token_param] = config.max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        if seed is not None:
            kwargs["seed"] = seed
        if config.extra_body:
            kwargs["extra_body"] = config.extra_body
        return kwargs

    def send(self, kwargs: dict[str, Any], stats: CallStats) -> Any:
        """The chat completion of ``kwargs``, retried while a retry can help; an
        :class:`MLLMCallError` once the retries are spent."""

        def attempt():
            stats.requests += 1
            with self._slots, total_deadline(self.config.timeout):
                try:
                    response = self._client.chat.completions.create(**kwargs)
                except json.JSONDecodeError as exc:  # a JSON content type over a non-JSON body
                    raise NotAChatCompletion(f"the reply body is not JSON ({exc})") from exc
                except UnicodeDecodeError as exc:  # JSON must be UTF-8 (a re-encoding proxy?)
                    raise NotAChatCompletion(
                        f"the reply body is not UTF-8 (byte 0x{exc.object[exc.start]:02x} at "
                        f"offset {exc.start}: {exc.reason})") from exc
            if not isinstance(getattr(response, "choices", None), list):
                raise NotAChatCompletion(
                    "the reply is not a chat completion: "
                    f"{self.redact(repr(response))[:200]}")
            return response

        retrying = Retrying(retry=retry_if_exception(is_retryable),
                            stop=stop_after_attempt(self.config.max_retries + 1),
                            wait=self._wait, reraise=True)
        try:
            return retrying(attempt)
        except Exception as exc:
            if not is_retryable(exc):
                raise
            message = self.redact(
                f"{self.config.model} at {self.config.endpoint}: request failed after "
                f"{stats.requests} attempt(s): {type(exc).__name__}: {exc}" + body_suffix(exc))
            # a cause that holds the key (a server echoed it) is not chained into tracebacks
            raise MLLMCallError(message, reason_key=transient_key(exc)) from (
                None if self.holds_key(str(exc)) else exc)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        hinted = retry_after(exc)
        if hinted is not None:
            return min(hinted, self.config.retry_max_wait)
        base = self.config.retry_initial_wait * (2 ** (state.attempt_number - 1))
        return min(self.config.retry_max_wait, random.uniform(0, base) + base / 2)

    def holds_key(self, text: str) -> bool:
        key = getattr(self._client, "api_key", None)
        return isinstance(key, str) and len(key) >= 8 and key != "not-needed" and key in text

    def redact(self, text: str) -> str:
        """``text`` with the API key, where it occurs, replaced by ``***``."""
        if self.holds_key(text):
            text = text.replace(self._client.api_key, "***")
        return text

    # -- rejections -----------------------------------------------------------------------------

    def rejected(self, task: str, exc: BaseException, n_images: int) -> MLLMCallError:
        """The error of a rejection no retry can fix (``permanent`` but for a content filter:
        rejections.py)."""
        reason = classify_rejection(exc)
        hint = rejection_hint(reason, n_images, error_text(exc), self.config.max_images)
        message = (f"{self.config.model}: {task} request rejected ({status_of(exc)}"
                   f"{', ' + reason if reason != 'other' else ''}): {error_text(exc)}"
                   + (f" - {hint}" if hint else "") + body_suffix(exc))
        # a content filter judges this request's content: other requests may pass
        return MLLMCallError(self.redact(message), reason_key=rejection_key(exc),
                             permanent=reason != "content_filter")

    def recover(self, exc: BaseException, sent_mode: str, sent: dict[str, Any],
                stats: CallStats) -> bool:
        """Whether a rejected request can go again: a weaker response format (auto mode), or
        ``max_completion_tokens`` for a reasoning model (once per call)."""
        if status_of(exc) not in (400, 422):
            return False
        reason = classify_rejection(exc)
        if reason == "response_format" and self._downgrade(sent_mode, exc):
            stats.downgrades += 1
            return True
        if reason == "max_tokens" and not stats.corrections and self._switch_token_param(sent):
            stats.corrections += 1
            return True
        return False

    def _downgrade(self, sent_mode: str, exc: BaseException) -> bool:
        """After a rejected response format in auto mode: the next weaker mode.

        Under the lock, and only if no parallel call has changed the mode since this request was
        sent (else the request simply goes again with the mode now in use).
        """
        if self.config.json_mode != "auto" or sent_mode == "none":
            return False
        with self._lock:
            self._format_rejections.setdefault(sent_mode, error_text(exc)[:300])
            if self._mode == sent_mode:
                self._mode = WEAKER_MODE[sent_mode]
        return True

    def _switch_token_param(self, sent: dict[str, Any]) -> bool:
        """A reasoning model rejected ``max_tokens``: use ``max_completion_tokens`` from now on."""
        if self.config.token_param != "auto" or "max_tokens" not in sent:
            return False
        with self._lock:
            self._token_param = "max_completion_tokens"
        return True

    def note_modes(self, stats: CallStats, sent_mode: str, sent: dict[str, Any]) -> None:
        """The response format and token parameter the call's answered request ran with, where
        they are not what was asked for (noted once per call)."""
        if stats.modes_noted:
            return
        stats.modes_noted = True
        notes = stats.adaptations
        if self.config.json_mode == "auto" and sent_mode != "json_schema":
            refused = "json_schema" if sent_mode == "json_object" else "json_object"
            with self._lock:
                why = self._format_rejections.get(refused)
            self.log.note(notes, "response_format", "json_schema", sent_mode,
                          detail=f"the server rejected {refused}: {why}" if why else None)
        if self.config.token_param == "auto" and "max_completion_tokens" in sent:
            self.log.note(notes, "token_param", "max_tokens", "max_completion_tokens",
                          detail="the server rejected max_tokens")

    def cache_hit_notes(self) -> list[dict[str, Any]]:
        """The adaptations a reply the cache answers was made with (the modes in use now: they
        are in the cache key)."""
        stats = CallStats()
        mode, token_param = self._mode, self._token_param
        max_tokens = self.config.max_tokens
        self.note_modes(stats, mode, {token_param: max_tokens} if max_tokens else {})
        return stats.adaptations

    # -- context --------------------------------------------------------------------------------

    def check_context(self, task: str, messages: list[dict[str, Any]], stats: CallStats) -> None:
        """Refuse a request that cannot fit ``context_tokens``; warn when it comes near.

        Ollama's OpenAI layer does not fail on overflow: it drops the oldest content parts (the
        images first) and answers about what is left.
        """
        config = self.config
        if not config.context_tokens:
            return
        images = count_images(messages)
        estimate = (images * config.image_tokens + text_chars(messages) // 3
                    + (config.max_tokens or 0))
        if estimate > config.context_tokens:
            self.log.note(stats.adaptations, "context_refused", f"~{estimate} tokens",
                          f"context_tokens={config.context_tokens}", detail="not sent")
            raise MLLMCallError(
                f"{config.model}: the {task} request needs about {estimate} tokens "
                f"({images} image(s) at ~{config.image_tokens}), over "
                f"context_tokens={config.context_tokens}; the server would silently drop "
                "content - raise the context (Ollama: OLLAMA_CONTEXT_LENGTH) or lower max_images",
                reason_key="context_overflow", permanent=True)
        if estimate > 0.8 * config.context_tokens:
            import warnings

            warnings.warn(f"{config.model}: the {task} request needs about {estimate} of "
                          f"{config.context_tokens} context tokens", stacklevel=3)

    def check_read_tokens(self, task: str, prompt_tokens: int, stats: CallStats,
                          messages: list[dict[str, Any]]) -> None:
        """Fail a call whose request the server demonstrably cut; note one it probably cut
        (:func:`~repainter.backends.mllm.adaptations.check_prompt_tokens`)."""
        config = self.config
        found = check_prompt_tokens(
            prompt_tokens, text_chars=text_chars(messages), image_sizes=stats.image_sizes,
            image_tokens=config.image_tokens, image_detail=config.image_detail,
            context_tokens=config.context_tokens,
            ollama=is_ollama(config.base_url, stats.served_by))
        if found is None:
            return
        kind, why = found
        self.log.note(stats.adaptations, kind, detail=why)
        if kind == "context_truncated":
            raise MLLMCallError(
                f"{config.model}: {task}: the server dropped part of the request ({why}); it "
                "cuts the oldest content past its context, images first, and answers anyway - "
                f"{CONTEXT_FIX}", reason_key="context_truncated", permanent=True)


__all__ = ["ChatTransport", "WEAKER_MODE", "response_format"]
