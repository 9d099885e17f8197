"""Any OpenAI-compatible chat-completions server as the loop's MLLM (OpenAI, vLLM, Ollama, ...).

* The API key is read from the environment variable ``api_key_env`` when the backend is built and
  is handed to the ``openai`` client only: it never appears in :meth:`identity`, :meth:`usage`,
  records, logs or ``repr``.
* Images are sent as base64 data URLs (PNG by default, or JPEG), downscaled so that their longer
  side is at most ``max_image_side`` (never upscaled).
* Every reply is structured: ``response_format`` is a JSON schema where the server supports it
  (``json_mode="auto"`` falls back to ``json_object`` and then to plain text on a 400), the first
  JSON object of the reply is extracted and validated against the pydantic schema of
  :mod:`repainter.schemas`; an invalid reply is re-asked up to ``reask`` times with the
  validation error.
* Rate limits (429), server errors (5xx), connection errors and timeouts are retried with
  exponential backoff and jitter (tenacity), honouring ``Retry-After``; after ``max_retries``
  retries an :class:`MLLMCallError` says what failed. A 200 reply that is not a chat completion
  (an HTML page from a proxy, a body that is not JSON) is retried the same way.
* Replies are bounded: content over ``max_reply_chars`` characters, an empty ``choices`` list or a
  refusal counts as an invalid reply (re-asked, then :class:`MLLMReplyError`), and JSON
  extraction is bounded in work and nesting depth.
* Error messages never hold the API key, even where a server echoes it back.
* Each call's tokens, latency and cost (with ``prices``: USD per 1M input / output tokens) are
  recorded; :meth:`usage` sums them. At most ``concurrency`` requests run at once (the sync methods
  may be called from several threads); ``a<method>`` coroutines run them from asyncio code.

All prompt texts are the templates ``prompts/*.j2``.
"""

from __future__ import annotations

import asyncio
import base64
import io
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

from repainter.backends.base import MLLMBackend
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

M = TypeVar("M", bound=BaseModel)

JSON_MODES = ("auto", "json_schema", "json_object", "none")
IUT_MODES = ("single", "multi")


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


def _is_retryable(exc: BaseException) -> bool:
    import openai

    if isinstance(exc, (openai.APITimeoutError, openai.APIConnectionError, NotAChatCompletion)):
        return True
    status = _status(exc)
    return status is not None and (status in (408, 409, 429) or status >= 500)


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

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        api_key_env: str = "OPENAI_API_KEY",
        max_image_side: int = 768,
        image_format: str = "png",
        temperature: float = 0.0,
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
    ):
        import openai

        if json_mode not in JSON_MODES:
            raise ValueError(f"openai: json_mode must be one of {JSON_MODES}, not {json_mode!r}")
        if iut_mode not in IUT_MODES:
            raise ValueError(f"openai: iut_mode must be one of {IUT_MODES}, not {iut_mode!r}")
        if max_image_side < 16:
            raise ValueError("openai: max_image_side must be at least 16")
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
        self.temperature = float(temperature)
        self.max_tokens = max_tokens
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
        self._client = openai.OpenAI(api_key=key, base_url=base_url, timeout=self.timeout,
                                     max_retries=0)
        del key
        self._mode = "json_schema" if json_mode == "auto" else json_mode
        self._slots = threading.BoundedSemaphore(self.concurrency)
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._totals = {"calls": 0, "requests": 0, "retries": 0, "reasks": 0, "errors": 0,
                        "prompt_tokens": 0, "completion_tokens": 0, "latency_s": 0.0,
                        "cost_usd": 0.0}

    def __repr__(self) -> str:
        return f"OpenAIMLLM(model={self.model!r}, base_url={self.base_url!r})"

    # -- identity / usage -----------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        return {
            "backend": self.kind,
            "model": self.model,
            "base_url": self.base_url,
            "temperature": self.temperature,
            "max_image_side": self.max_image_side,
            "image_format": self.image_format,
            "iut_mode": self.iut_mode,
            "json_mode": self.json_mode,
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
        if self.prices is not None:
            usage["cost_usd"] = sum(r.get("cost_usd", 0.0) for r in mine)
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
                 seed: int | None, stats: dict[str, Any]):
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages,
                                  "temperature": self.temperature}
        if self.max_tokens:
            kwargs["max_tokens"] = self.max_tokens
        if response_format is not None:
            kwargs["response_format"] = response_format
        if seed is not None:
            kwargs["seed"] = seed
        if self.extra_body:
            kwargs["extra_body"] = self.extra_body

        def attempt():
            stats["requests"] += 1
            with self._slots:
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
                f"{stats['requests']} attempt(s): {type(exc).__name__}: {exc}")
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

    def _response_format(self, schema: type[BaseModel]) -> dict | None:
        if self._mode == "json_schema":
            return {"type": "json_schema", "json_schema": {
                "name": _schema_name(schema), "schema": schema.model_json_schema(),
                "strict": False}}
        if self._mode == "json_object":
            return {"type": "json_object"}
        return None

    def _downgrade(self, exc: BaseException) -> bool:
        """After a 400 about response_format in auto mode, try the next weaker mode."""
        if self.json_mode != "auto" or _status(exc) not in (400, 422):
            return False
        if self._mode == "json_schema":
            self._mode = "json_object"
            return True
        if self._mode == "json_object":
            self._mode = "none"
            return True
        return False

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
                                 "downgrades": 0}
        start = time.perf_counter()
        reasks = 0
        try:
            while True:
                try:
                    response = self._request(messages, self._response_format(schema), seed, stats)
                except openai.APIStatusError as exc:
                    if self._downgrade(exc):
                        stats["downgrades"] += 1
                        continue
                    raise MLLMCallError(self._redact(
                        f"{self.model}: {task} request rejected ({exc.status_code}): {exc}"
                    )) from (None if self._holds_key(str(exc)) else exc)
                usage = getattr(response, "usage", None)
                if usage is not None:
                    stats["prompt_tokens"] += int(getattr(usage, "prompt_tokens", 0) or 0)
                    stats["completion_tokens"] += int(getattr(usage, "completion_tokens", 0) or 0)
                content = ""
                try:
                    content = _reply_text(response)
                    if len(content) > self.max_reply_chars:
                        raise ValueError(
                            f"the reply is {len(content)} characters long, over the limit of "
                            f"{self.max_reply_chars}; reply with a much shorter JSON object")
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

    def _record(self, task: str, stats: dict[str, Any], start: float, reasks: int, ok: bool):
        latency = time.perf_counter() - start
        record = {"task": task, "ok": ok, "attempts": stats["requests"], "reasks": reasks,
                  "prompt_tokens": stats["prompt_tokens"],
                  "completion_tokens": stats["completion_tokens"], "latency_s": latency,
                  "case": CURRENT_CASE.get()}
        if self.prices is not None:
            record["cost_usd"] = (
                stats["prompt_tokens"] * float(self.prices.get("input", 0.0))
                + stats["completion_tokens"] * float(self.prices.get("output", 0.0))
            ) / 1e6
        with self._lock:
            self._records.append(record)
            t = self._totals
            t["calls"] += 1
            t["requests"] += stats["requests"]
            t["retries"] += max(0, stats["requests"] - 1 - reasks - stats["downgrades"])
            t["reasks"] += reasks
            t["errors"] += 0 if ok else 1
            t["prompt_tokens"] += stats["prompt_tokens"]
            t["completion_tokens"] += stats["completion_tokens"]
            t["latency_s"] += latency
            t["cost_usd"] += record.get("cost_usd", 0.0)

    # -- message parts --------------------------------------------------------------------------

    def _image_part(self, image: Image.Image) -> dict[str, Any]:
        return {"type": "image_url", "image_url": {
            "url": encode_image(image, self.max_image_side, self.image_format)}}

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
        text = render_prompt("rewrite_prompt", draft=draft, iut=iut.model_dump_json())
        return self._structured("rewrite_prompt", [self._text_part(text)], RevisedPrompt).prompt.strip()

    def refine_dialogue(self, caption: str, dialog: Sequence[tuple[str, str]]) -> str:
        text = render_prompt("refine_dialogue", caption=caption,
                             dialog=[{"question": q, "answer": a} for q, a in dialog])
        return self._structured("refine_dialogue", [self._text_part(text)],
                                RevisedPrompt).prompt.strip()

    def write_variants(self, prompt: str, n: int, iut: ImageUnderstandingTree,
                       critique: Critique | None, seed: int) -> list[str]:
        if n < 1:
            return []
        text = render_prompt(
            "write_variants", prompt=prompt, n=n, iut=iut.model_dump_json(),
            critique=critique.model_dump_json() if critique is not None else "",
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
        parts = [self._text_part("Image 1 (reference):"), self._image_part(reference),
                 self._text_part("Image 2 (candidate):"), self._image_part(candidate),
                 self._text_part(text)]
        return self._structured("critique", parts, Critique)

    def revise(self, prompt: str, critique: Critique, iut: ImageUnderstandingTree) -> str:
        text = render_prompt("revise_prompt", prompt=prompt, critique=critique.model_dump_json(),
                             iut=iut.model_dump_json())
        return self._structured("revise", [self._text_part(text)], RevisedPrompt).prompt.strip()

    def judge(self, reference: Image.Image, candidate: Image.Image) -> Judgement:
        text = render_prompt("judge")
        parts = [self._text_part("Image 1 (reference):"), self._image_part(reference),
                 self._text_part("Image 2 (candidate):"), self._image_part(candidate),
                 self._text_part(text)]
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
