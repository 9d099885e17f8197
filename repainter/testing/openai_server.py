"""An OpenAI-compatible chat-completions server on loopback, with seeded fault injection.

It answers ``POST /v1/chat/completions`` with canned replies that validate against the schema the
request asks for (``response_format.json_schema.name``, or, in ``json_object`` / plain mode, the
``title`` of the schema at the end of the system message, as :mod:`repainter.prompts` writes it),
so :class:`repainter.backends.mllm.openai_compat.OpenAIMLLM` can drive a whole run through the real
``openai`` client with no network::

    from repainter.testing import FaultPlan, OpenAICompatServer

    with OpenAICompatServer(latency=0.2, faults=FaultPlan(rate=0.3, kinds=["429", "drop"])) as srv:
        ...  # mllm: {name: openai, params: {model: fake, base_url: srv.url}}
        srv.stats()   # requests, calls per schema, faults per kind, peak requests in flight

Fault kinds (:data:`KINDS`): ``429`` (with ``Retry-After: 0``), ``500``, ``503``, ``hang`` (no
answer until ``hang_s`` has passed, then the connection is closed), ``drop`` (the connection is
closed without a response), ``truncated_json`` (HTTP 200 whose message content is cut JSON),
``schema_violation`` (valid JSON that breaks the schema), ``empty_choices`` (``choices: []``),
``refusal`` (``message.refusal`` set and ``content`` null, or a prose refusal), ``overlong`` (a
schema-valid reply stuffed to ``overlong_chars`` characters, 2 MB by default).
:data:`EXTRA_KINDS`: ``bad_body`` (HTTP 200 with an HTML body, as a misconfigured proxy sends) and
``echo_key`` (HTTP 500 whose error message repeats the request's ``Authorization`` header, to
check that a client never writes its key where a server echoes it).

Which request gets which fault is drawn from a seeded RNG under a lock, one draw per request in
arrival order, so a sequential client sees the same faults on every run.

A :class:`ServerProfile` (``profile=``, or a name of :data:`PROFILES`) makes it answer the way a
real server does, with that server's status code and error body: vLLM's image limit
(``--limit-mm-per-prompt``, 1 image by default on the V0 engine), OpenAI reasoning models'
``temperature`` / ``max_tokens`` rejections, a model without structured output, llama-server
without ``--mmproj``, Ollama's silent truncation past its context (``OLLAMA_CONTEXT_LENGTH``),
Azure's content filter, a context-length 400, ``x-should-retry``, ``cached_tokens``, replies
without ``usage`` and ``finish_reason`` ``length`` / ``content_filter``; ``drip_s`` sends the
reply one byte per ``drip_s`` seconds.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: The fault kinds every client must survive at a moderate rate.
KINDS: tuple[str, ...] = (
    "429", "500", "503", "hang", "drop", "truncated_json", "schema_violation",
    "empty_choices", "refusal", "overlong",
)
#: Further kinds: a non-JSON 200 body, and a 500 that echoes the caller's API key.
EXTRA_KINDS: tuple[str, ...] = ("bad_body", "echo_key")
ALL_KINDS: tuple[str, ...] = KINDS + EXTRA_KINDS
#: Kinds only drawn when named (not in ALL_KINDS, so seeded mixes stay as they were):
#: ``non_utf8``, a 200 JSON reply encoded as Latin-1 (a proxy that re-encodes bodies).
OPT_IN_KINDS: tuple[str, ...] = ("non_utf8",)

CHAT_PATH = "/v1/chat/completions"

# -- canned replies (in the built-in world's vocabulary, so the procedural T2I draws them) -------

_PROMPT = "a flat illustration, light blue background, a large red circle at the center"
_VARIANT_TAILS = ("", ", flat colour", ", centered composition", ", simple shapes",
                  ", even lighting", ", vector style", ", clean edges", ", plain background")

IUT_REPLY: dict[str, Any] = {
    "global_description": "A flat illustration of a large red circle on a light blue background.",
    "global_features": {"style": "flat vector illustration", "lighting": "flat, even lighting",
                        "color_palette": "light blue background; red",
                        "composition": "1 simple shape on a light blue background"},
    "objects": [
        {"name": "red circle", "type": "object",
         "attributes": {"color": "red", "shape": "circle", "size": "large", "position": "center"}},
        {"name": "blue square", "type": "object",
         "attributes": {"color": "blue", "shape": "square", "size": "small",
                        "position": "lower left"}},
    ],
    "relationships": [{"subject": "blue square", "relation": "left of", "object": "red circle"}],
}

DEFAULT_REPLIES: dict[str, Any] = {
    "ImageUnderstandingTree": IUT_REPLY,
    "GlobalDescription": {"global_description": IUT_REPLY["global_description"]},
    "GlobalFeatures": IUT_REPLY["global_features"],
    "ObjectList": {"objects": [{"name": o["name"], "type": o["type"]}
                               for o in IUT_REPLY["objects"]]},
    "ObjectAttributes": IUT_REPLY["objects"][0]["attributes"],
    "RelationshipList": {"relationships": IUT_REPLY["relationships"]},
    "RevisedPrompt": {"prompt": _PROMPT},
    "PromptVariants": None,  # built per request: n prompts
    "Critique": {"differences": [{"aspect": "composition",
                                  "description": "the red circle should be larger"}],
                 "summary": "1 difference: the red circle should be larger"},
    "Judgement": {"aesthetic": 4, "semantic": 4, "rationale": "close match"},
}

#: Valid JSON that breaks each schema (a wrong type, a missing field, a value out of range).
SCHEMA_VIOLATIONS: dict[str, Any] = {
    "ImageUnderstandingTree": {"objects": "many", "relationships": 3},
    "GlobalDescription": {"global_description": ""},
    "GlobalFeatures": {"style": ["not", "a", "string"]},
    "ObjectList": {"objects": [{"type": "object"}]},
    "ObjectAttributes": {"color": {"r": 255}},
    "RelationshipList": {"relationships": [{"subject": "a"}]},
    "RevisedPrompt": {"prompt": ""},
    "PromptVariants": {"prompts": []},
    "Critique": {"differences": [{"aspect": "smell", "description": "x"}]},
    "Judgement": {"aesthetic": 9, "semantic": 0},
}

#: The text field an ``overlong`` reply stuffs (else a ``padding`` key the schema ignores).
_LONG_FIELDS = {"ImageUnderstandingTree": "global_description",
                "GlobalDescription": "global_description", "GlobalFeatures": "style",
                "RevisedPrompt": "prompt", "Critique": "summary", "Judgement": "rationale"}

_N_PATTERNS = (re.compile(r"with exactly (\d+) prompts"), re.compile(r"Write (\d+) variants"))


def _request_text(body: dict[str, Any]) -> str:
    texts = []
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p.get("text", "") for p in content
                      if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(texts)


def schema_title(body: dict[str, Any]) -> str | None:
    """The schema a request asks for: the json_schema name, else the system message's title."""
    fmt = body.get("response_format") or {}
    if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
        name = (fmt.get("json_schema") or {}).get("name")
        if name:
            return str(name)
    messages = body.get("messages") or []
    if messages and isinstance(messages[0], dict) and isinstance(messages[0].get("content"), str):
        lines = messages[0]["content"].strip().splitlines()
        if lines:
            try:
                title = json.loads(lines[-1]).get("title")
            except (ValueError, AttributeError):
                title = None
            if title:
                return str(title)
    return None


def requested_n(body: dict[str, Any], default: int = 8) -> int:
    """How many prompt variants a write_variants request asks for (``default`` if it does not say)."""
    text = _request_text(body)
    for pattern in _N_PATTERNS:
        found = pattern.search(text)
        if found:
            return max(1, min(64, int(found.group(1))))
    return default


def _image_tag(body: dict[str, Any]) -> str:
    """A short digest of the request's last image ("" without one)."""
    urls = [p["image_url"].get("url", "") for m in body.get("messages") or []
            if isinstance(m, dict) and isinstance(m.get("content"), list)
            for p in m["content"]
            if isinstance(p, dict) and p.get("type") == "image_url"
            and isinstance(p.get("image_url"), dict)]
    return hashlib.sha256(urls[-1].encode()).hexdigest()[:8] if urls else ""


def canned_reply(title: str, body: dict[str, Any] | None = None) -> Any:
    """A schema-valid reply for ``title``.

    The request body gives PromptVariants its n, and the description of an image names the
    image's digest, so every reference gets its own description (and the text-only calls that
    quote it differ between references too, as they would with a real model).
    """
    body = body or {}
    if title in ("ImageUnderstandingTree", "GlobalDescription"):
        reply = copy.deepcopy(DEFAULT_REPLIES[title])
        tag = _image_tag(body)
        if tag:
            reply["global_description"] += f" (image {tag})"
        return reply
    if title == "PromptVariants":
        n = requested_n(body)
        return {"prompts": [_PROMPT + _VARIANT_TAILS[i % len(_VARIANT_TAILS)]
                            + ("" if i < len(_VARIANT_TAILS) else f", take {i}")
                            for i in range(n)]}
    if title not in DEFAULT_REPLIES:
        raise KeyError(title)
    return copy.deepcopy(DEFAULT_REPLIES[title])


def completion(content: str | None, *, refusal: str | None = None, choices: bool = True,
               prompt_tokens: int = 100, completion_tokens: int = 20,
               finish_reason: str = "stop", cached_tokens: int = 0, usage: bool = True,
               system_fingerprint: str | None = None) -> dict[str, Any]:
    """A ``chat.completion`` object around ``content``."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if refusal is not None:
        message["refusal"] = refusal
    reply: dict[str, Any] = {
        "id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
        "model": "fake",
        "choices": ([{"index": 0, "finish_reason": finish_reason, "message": message}]
                    if choices else []),
    }
    if usage:
        reply["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens}
        if cached_tokens:
            reply["usage"]["prompt_tokens_details"] = {
                "cached_tokens": min(cached_tokens, prompt_tokens)}
    if system_fingerprint:
        reply["system_fingerprint"] = system_fingerprint
    return reply


# -- real servers' behaviours ------------------------------------------------------------------


@dataclass
class ServerProfile:
    """How a real OpenAI-compatible server treats a request (None / default: no such rule).

    ``max_images``: vLLM, ``--limit-mm-per-prompt`` (V0 engine default 1): more images are a 400
    ``At most {n} image(s) may be provided in one request.``. ``reasoning``: OpenAI o-series /
    gpt-5: ``temperature`` other than 1 and ``max_tokens`` are 400s naming the ``param``.
    ``response_formats``: the ``response_format`` types accepted (others: 400, param
    ``response_format``). ``images``: False is llama-server without ``--mmproj`` (500 ``image
    input is not supported``). ``context_tokens``: Ollama's ``/v1``: content past the context
    (``image_tokens`` per image, 4 characters per text token) is dropped from the oldest part on,
    silently; ``truncation`` says what ``usage.prompt_tokens`` then reports: ``whole_context``
    the context size (Ollama's runner cuts the tokens to exactly its context), ``kept`` only what
    was kept (a server that drops whole parts and counts the rest: far below what was sent). ``content_filter``: Azure's 400
    ``content_filter``. ``context_limit``: a 400 ``context_length_exceeded`` above this many
    estimated tokens. ``should_retry``: the ``x-should-retry`` header on error replies, and
    ``error_status`` the status of an error every request gets. ``cached_tokens``: reported in
    ``usage.prompt_tokens_details``; ``usage=False`` sends no usage; ``finish_reason``: the
    choice's finish reason. ``drip_s``: seconds between the bytes of a reply.
    """

    max_images: int | None = None
    reasoning: bool = False
    response_formats: tuple[str, ...] = ("json_schema", "json_object")
    images: bool = True
    context_tokens: int | None = None
    image_tokens: int = 768
    truncation: str = "whole_context"
    content_filter: bool = False
    context_limit: int | None = None
    should_retry: str | None = None
    error_status: int | None = None
    cached_tokens: int = 0
    usage: bool = True
    finish_reason: str = "stop"
    drip_s: float = 0.0
    system_fingerprint: str | None = None


#: Profiles named after the servers they reproduce.
PROFILES: dict[str, ServerProfile] = {
    "vllm-v0": ServerProfile(max_images=1),
    "openai-reasoning": ServerProfile(reasoning=True, cached_tokens=1024,
                                      system_fingerprint="fp_reasoning"),
    "no-structured-output": ServerProfile(response_formats=()),
    "llama-server-no-mmproj": ServerProfile(images=False),
    # Ollama's default context (2048 in older releases); its /v1 replies carry fp_ollama
    "ollama": ServerProfile(context_tokens=2048, response_formats=("json_object",),
                            system_fingerprint="fp_ollama"),
    "azure-content-filter": ServerProfile(content_filter=True),
}


def _openai_error(message: str, param: str | None, code: str | None,
                  type_: str | None = "invalid_request_error") -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def _parts(body: dict[str, Any]) -> list[tuple[int, int, dict[str, Any]]]:
    """(message index, part index, part) of every content part, oldest first."""
    return [(i, j, part) for i, m in enumerate(body.get("messages") or [])
            if isinstance(m, dict) and isinstance(m.get("content"), list)
            for j, part in enumerate(m["content"]) if isinstance(part, dict)]


def _estimate_tokens(body: dict[str, Any], image_tokens: int) -> int:
    images = sum(1 for _, _, p in _parts(body) if p.get("type") == "image_url")
    return images * image_tokens + max(1, len(_request_text(body)) // 4)


def _count_parts(body: dict[str, Any]) -> tuple[int, int]:
    """Content parts and image parts of a request."""
    parts = _parts(body)
    return len(parts), sum(1 for _, _, p in parts if p.get("type") == "image_url")


def profile_rejection(profile: ServerProfile, body: dict[str, Any]
                      ) -> tuple[int, dict[str, str], dict[str, Any]] | None:
    """(status, headers, body) of the error a real server sends for ``body``, or None."""
    headers = {"x-should-retry": profile.should_retry} if profile.should_retry else {}
    images = sum(1 for _, _, p in _parts(body) if p.get("type") == "image_url")
    if profile.error_status:
        return profile.error_status, headers, _openai_error(
            "The server had an error while processing your request.", None, None, "server_error")
    if images and not profile.images:  # llama-server (tools/server/server.cpp) without --mmproj
        return 500, headers, {"error": {
            "code": 500, "type": "server_error",
            "message": "image input is not supported - hint: if this is unexpected, you may "
                       "need to provide the mmproj"}}
    if profile.max_images is not None and images > profile.max_images:  # vLLM chat_utils
        return 400, headers, {"object": "error", "type": "BadRequestError", "param": None,
                              "code": 400, "message": f"At most {profile.max_images} image(s) "
                                                      "may be provided in one request."}
    if profile.content_filter:
        return 400, headers, {"error": {
            "message": "The response was filtered due to the prompt triggering Azure OpenAI's "
                       "content management policy. Please modify your prompt and retry.",
            "type": None, "param": "prompt", "code": "content_filter", "status": 400}}
    if profile.reasoning and "temperature" in body and body["temperature"] != 1:
        return 400, headers, _openai_error(
            f"Unsupported value: 'temperature' does not support {body['temperature']} with this "
            "model. Only the default (1) value is supported.", "temperature", "unsupported_value")
    if profile.reasoning and "max_tokens" in body:
        return 400, headers, _openai_error(
            "Unsupported parameter: 'max_tokens' is not supported with this model. Use "
            "'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
    fmt = (body.get("response_format") or {}).get("type")
    if fmt and fmt not in profile.response_formats:
        return 400, headers, _openai_error(
            f"Invalid parameter: 'response_format' of type '{fmt}' is not supported with this "
            "model.", "response_format", None)
    if profile.context_limit is not None:
        needed = _estimate_tokens(body, profile.image_tokens)
        if needed > profile.context_limit:
            return 400, headers, _openai_error(
                f"This model's maximum context length is {profile.context_limit} tokens. "
                f"However, your messages resulted in {needed} tokens. Please reduce the length "
                "of the messages.", "messages", "context_length_exceeded")
    return None


def ollama_truncate(body: dict[str, Any], context_tokens: int, image_tokens: int,
                    truncation: str = "whole_context") -> int:
    """Drop the oldest content parts until the request fits (in place); the tokens it reads.

    Ollama cuts the token sequence to exactly the context ("truncating input prompt ...
    new=<limit>" in its log), so a truncated request reads the whole context
    (``whole_context``); with ``kept`` it reads only what is left.
    """
    if truncation not in ("whole_context", "kept"):
        raise ValueError(f"truncation must be whole_context or kept, not {truncation!r}")
    truncated = False
    while _estimate_tokens(body, image_tokens) > context_tokens:
        parts = _parts(body)
        if len(parts) <= 1:
            break
        i, j, _ = parts[0]
        del body["messages"][i]["content"][j]
        truncated = True
    if truncated and truncation == "whole_context":
        return context_tokens
    return _estimate_tokens(body, image_tokens)


# -- fault plan --------------------------------------------------------------------------------


@dataclass
class FaultPlan:
    """Inject a fault into a fraction ``rate`` of requests, drawn among ``kinds`` with ``seed``.

    ``hang_s``: how long a ``hang`` keeps the request open before closing it (set it past the
    client's timeout). ``overlong_chars``: the size of an ``overlong`` reply's content.
    """

    rate: float = 0.0
    kinds: Iterable[str] = KINDS
    seed: int = 0
    hang_s: float = 5.0
    overlong_chars: int = 2_000_000
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False)

    def __post_init__(self):
        self.kinds = tuple(str(k) for k in self.kinds)
        if not 0.0 <= float(self.rate) <= 1.0:
            raise ValueError(f"FaultPlan: rate must be within [0, 1], not {self.rate}")
        known = ALL_KINDS + OPT_IN_KINDS
        unknown = sorted(set(self.kinds) - set(known))
        if unknown:
            raise ValueError(f"FaultPlan: unknown fault kinds {unknown}; known: {list(known)}")
        if self.rate > 0 and not self.kinds:
            raise ValueError("FaultPlan: a positive rate needs at least one kind")
        self.rate = float(self.rate)
        self._rng = random.Random(self.seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """The fault for the next request, or None (two draws each time, so runs repeat)."""
        with self._lock:
            hit = self._rng.random()
            pick = self._rng.randrange(len(self.kinds)) if self.kinds else 0
        return self.kinds[pick] if self.kinds and hit < self.rate else None


# -- the server --------------------------------------------------------------------------------


class OpenAICompatServer:
    """A threaded OpenAI-compatible server on ``127.0.0.1`` (a free port); ``.url`` ends in ``/v1``.

    ``latency``: seconds every request waits before it is answered. ``faults``: a
    :class:`FaultPlan`. ``replies``: schema title -> reply (a dict, or a callable of the request
    body) overriding the canned ones. ``record_bodies``: keep every request body in ``.bodies``.
    Use it as a context manager, or call :meth:`start` and :meth:`close`.
    """

    def __init__(self, *, latency: float = 0.0, faults: FaultPlan | None = None,
                 replies: dict[str, Any | Callable[[dict], Any]] | None = None,
                 record_bodies: bool = False, host: str = "127.0.0.1", port: int = 0,
                 profile: ServerProfile | str | None = None):
        self.profile = PROFILES[profile] if isinstance(profile, str) else (profile or ServerProfile())
        self.latency = float(latency)
        self.faults = faults or FaultPlan()
        self.replies = dict(replies or {})
        self.record_bodies = record_bodies
        self.bodies: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._refusals = 0
        self._bad_bodies = 0
        self.reset_stats()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self.host, self.port = self._httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}/v1"
        self._thread: threading.Thread | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> OpenAICompatServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.02}, daemon=True,
                                            name=f"openai-compat-server:{self.port}")
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving; requests still hanging or waiting on latency end at once."""
        self._stop.set()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> OpenAICompatServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- counters -------------------------------------------------------------------------------

    def reset_stats(self) -> None:
        with self._lock:
            self.requests = 0
            self.calls: Counter[str] = Counter()  # requests per schema title
            self.injected: Counter[str] = Counter()  # faults per kind
            self.in_flight = 0
            self.peak_in_flight = 0
            self.images_dropped = 0  # images a context-truncating profile silently dropped
            self.truncated_requests = 0
            self.bodies.clear()
            self.request_lines: list[dict[str, Any]] = []  # path and headers (record_bodies)

    def stats(self) -> dict[str, Any]:
        """A snapshot: requests, calls per schema, faults per kind, their total, peak in flight,
        requests a context-truncating profile cut and the images it dropped from them."""
        with self._lock:
            return {"requests": self.requests, "calls": dict(self.calls),
                    "faults": dict(self.injected), "faults_total": sum(self.injected.values()),
                    "peak_in_flight": self.peak_in_flight,
                    "truncated_requests": self.truncated_requests,
                    "images_dropped": self.images_dropped}

    # -- replies --------------------------------------------------------------------------------

    def _reply(self, title: str, body: dict[str, Any]) -> Any:
        custom = self.replies.get(title)
        if custom is not None:
            return custom(body) if callable(custom) else copy.deepcopy(custom)
        return canned_reply(title, body)

    def _model_reads(self, body: dict[str, Any], length: int) -> tuple[dict[str, Any], int]:
        """The request as the model reads it and its prompt tokens: a context-truncating profile
        cuts a copy (counted in :meth:`stats`)."""
        profile = self.profile
        if not profile.context_tokens:
            return body, max(1, length // 4)
        sent_parts, sent_images = _count_parts(body)
        body = copy.deepcopy(body)
        tokens = ollama_truncate(body, profile.context_tokens, profile.image_tokens,
                                 profile.truncation)
        kept_parts, kept_images = _count_parts(body)
        with self._lock:
            self.truncated_requests += kept_parts < sent_parts
            self.images_dropped += sent_images - kept_images
        return body, tokens

    def _fault_response(self, kind: str, title: str, body: dict[str, Any],
                        authorization: str) -> tuple[int, dict[str, str], bytes] | None:
        """(status, headers, body) of a fault, or None for a fault that sends no response."""
        def error(status: int, message: str, kind_: str) -> tuple[int, dict[str, str], bytes]:
            data = {"error": {"message": message, "type": kind_, "code": status}}
            return status, {}, json.dumps(data).encode()

        if kind == "429":
            status, headers, data = error(429, "Rate limit reached; retry later.",
                                          "rate_limit_error")
            return status, {"Retry-After": "0"}, data
        if kind in ("500", "503"):
            return error(int(kind), "The server had an error while processing your request.",
                         "server_error")
        if kind == "echo_key":
            return error(500, f"upstream failed for request with Authorization: {authorization}",
                         "server_error")
        if kind == "bad_body":  # alternately an HTML page and a "JSON" body that is not JSON
            with self._lock:
                self._bad_bodies += 1
                html = self._bad_bodies % 2 == 1
            if html:
                return 200, {"content-type": "text/html"}, b"<html><body>502 Bad Gateway</body></html>"
            return 200, {}, b'{"id": "chatcmpl-fake", "choices": [{"mess'
        reply = self._reply(title, body)
        text = json.dumps(reply)
        if kind == "non_utf8":  # a top-level "café" in Latin-1: byte 0xe9 is not UTF-8
            data = json.dumps(completion(text)).encode()
            return 200, {}, data[:-1] + b', "note": "caf\xe9"}'
        if kind == "truncated_json":
            content = text[: max(1, len(text) // 2)]
            return 200, {}, json.dumps(completion(content)).encode()
        if kind == "schema_violation":
            bad = SCHEMA_VIOLATIONS.get(title, {"unexpected": "reply"})
            return 200, {}, json.dumps(completion(json.dumps(bad))).encode()
        if kind == "empty_choices":
            return 200, {}, json.dumps(completion(None, choices=False)).encode()
        if kind == "refusal":
            with self._lock:
                self._refusals += 1
                structured = self._refusals % 2 == 1
            if structured:
                payload = completion(None, refusal="I can't help with that.")
            else:
                payload = completion("I'm sorry, but I can't help with that.")
            return 200, {}, json.dumps(payload).encode()
        if kind == "overlong":
            size = self.faults.overlong_chars
            stuffed = reply if isinstance(reply, dict) else {"value": reply}
            key = _LONG_FIELDS.get(title, "padding")
            stuffed[key] = str(stuffed.get(key, "")) + " and more" * (size // 9 + 1)
            return 200, {}, json.dumps(completion(json.dumps(stuffed),
                                                  completion_tokens=size // 4)).encode()
        raise ValueError(f"no response for fault kind {kind!r}")

    def _handler_class(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _send(self, status: int, headers: dict[str, str], data: bytes) -> None:
                try:
                    self.send_response(status)
                    headers = {"content-type": "application/json", **headers}
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    if server.profile.drip_s:  # one byte at a time, until the client gives up
                        for i in range(len(data)):
                            if server._stop.wait(server.profile.drip_s):
                                return
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def _error(self, status: int, message: str) -> None:
                data = json.dumps({"error": {"message": message, "code": status}}).encode()
                self._send(status, {}, data)

            def do_GET(self):
                self._error(404, f"no route GET {self.path}")

            def do_POST(self):
                with server._lock:
                    server.in_flight += 1
                    server.peak_in_flight = max(server.peak_in_flight, server.in_flight)
                try:
                    self._post()
                finally:
                    with server._lock:
                        server.in_flight -= 1

            def _post(self):
                if self.path.split("?")[0].rstrip("/") != CHAT_PATH:
                    self._error(404, f"no route POST {self.path}")
                    return
                try:
                    length = int(self.headers.get("content-length", 0))
                    body = json.loads(self.rfile.read(length))
                    if not isinstance(body, dict):
                        raise ValueError("the body is not a JSON object")
                except ValueError as exc:
                    self._error(400, f"bad request body: {exc}")
                    return
                title = schema_title(body)
                kind = server.faults.draw()
                with server._lock:
                    server.requests += 1
                    server.calls[title or "?"] += 1
                    if kind is not None:
                        server.injected[kind] += 1
                    if server.record_bodies:
                        server.bodies.append(body)
                        server.request_lines.append(
                            {"path": self.path, "headers": {k.lower(): v for k, v in
                                                            self.headers.items()}})
                if server.latency:
                    server._stop.wait(server.latency)
                if kind in ("hang", "drop"):
                    if kind == "hang":
                        server._stop.wait(server.faults.hang_s)
                    self.close_connection = True  # no response at all
                    return
                if title is None or (title not in DEFAULT_REPLIES and title not in server.replies):
                    self._error(400, f"cannot tell which schema the request wants ({title!r})")
                    return
                if kind is not None:
                    status, headers, data = server._fault_response(
                        kind, title, body, self.headers.get("authorization", ""))
                    self._send(status, headers, data)
                    return
                profile = server.profile
                rejection = profile_rejection(profile, body)
                if rejection is not None:
                    status, headers, error_body = rejection
                    self._send(status, headers, json.dumps(error_body).encode())
                    return
                body, prompt_tokens = server._model_reads(body, length)
                text = json.dumps(server._reply(title, body))
                self._send(200, {}, json.dumps(completion(
                    text, prompt_tokens=prompt_tokens, completion_tokens=max(1, len(text) // 4),
                    finish_reason=profile.finish_reason, cached_tokens=profile.cached_tokens,
                    usage=profile.usage, system_fingerprint=profile.system_fingerprint)).encode())

        return Handler
