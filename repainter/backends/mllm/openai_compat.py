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
  ``concurrency`` requests run at once (the methods may be called from several threads).

The parts: the settings (:mod:`.openai_config`), the transport (:mod:`.openai_transport`:
client, retries, deadlines, adaptations), the accounting (:mod:`.openai_usage`), the requests
and replies (:mod:`.openai_messages`, :mod:`.wire`) and the errors (:mod:`.rejections`); this
module asks each role's question and validates the answer. All prompt texts are the templates
``prompts/*.j2``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from PIL import Image
from pydantic import BaseModel, ValidationError

from repainter.backends.base import MLLMBackend, current_prompt_budget
from repainter.backends.mllm.adaptations import AdaptationLog
from repainter.backends.mllm.openai_config import OpenAIConfig
from repainter.backends.mllm.openai_messages import (  # the IUT parts are this module's API too
    GlobalDescription,
    MessageBuilder,
    ObjectList,
    RelationshipList,
    schemas_digest,
    text_part,
)
from repainter.backends.mllm.openai_transport import ChatTransport, response_format
from repainter.backends.mllm.openai_usage import CallStats, UsageLedger
from repainter.backends.mllm.rejections import (  # the errors are part of this module's API
    MLLMCallError,
    MLLMError,
    MLLMReplyError,
    classify_rejection,
)
from repainter.backends.mllm.wire import encode_image, extract_json  # part of this API, too
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
        concurrency: int | str = "auto",
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
        # the signature names every setting (the preflight reads a spec's keys against it);
        # the config model checks their values
        settings = dict(locals())
        del settings["self"]
        self.config = config = OpenAIConfig.checked(settings)
        self.model, self.base_url = config.model, config.base_url
        log = AdaptationLog(f"{config.model} at {config.endpoint}")
        self._transport = ChatTransport(config, log)
        self._messages = MessageBuilder(config, log)
        self._ledger = UsageLedger(config.prices)

    def __repr__(self) -> str:
        return f"OpenAIMLLM(model={self.model!r}, base_url={self.base_url!r})"

    # -- identity / usage -----------------------------------------------------------------------

    def identity(self) -> dict[str, Any]:
        """Everything that shapes a request (the cache key): settings, the response format and
        token parameter in use, hashes of the prompt templates and schemas, the project version.
        """
        from repainter.prompts import templates_digest

        config = self.config
        mode, token_param = self._transport.modes()
        return {
            "backend": self.kind,
            "model": config.model,
            "base_url": config.base_url,
            "temperature": config.temperature,
            "max_tokens": config.max_tokens,
            "token_param": token_param,
            "max_image_side": config.max_image_side,
            "image_format": config.image_format,
            "image_detail": config.image_detail,
            "max_images": config.max_images,
            "iut_mode": config.iut_mode,
            "json_mode": config.json_mode,
            "json_mode_in_use": mode,
            "extra_body": config.extra_body,
            "default_query": config.default_query,
            # names only: values may hold secrets
            "default_headers": sorted(config.default_headers or {}),
            "templates": templates_digest(),
            "schemas": schemas_digest(),
            "repainter": __version__,
        }

    def usage(self) -> dict[str, float]:
        return self._ledger.usage()

    def case_usage(self, model: str, case_id: str) -> dict[str, float]:
        """Calls, tokens and cost of the calls made while the runner worked on this case."""
        return self._ledger.case_usage(model, case_id)

    def records(self) -> list[dict[str, Any]]:
        """Per-call records: task, tokens, latency, attempts, re-asks, cost, adaptations."""
        return self._ledger.records()

    def adaptations(self) -> list[dict[str, Any]]:
        """Every adaptation of every call so far, summed per kind and change (run.json)."""
        return self._ledger.adaptations()

    def case_adaptations(self, model: str, case_id: str) -> list[dict[str, Any]]:
        """The adaptations of the calls made (or answered from the cache) for one case."""
        return self._ledger.case_adaptations(model, case_id)

    def note_cache_hit(self, task: str) -> None:
        """A reply the cache answered was made in the response format and token parameter in
        use now (they are in the cache key): record them for the case where they are adapted."""
        notes = self._transport.cache_hit_notes()
        if notes:
            self._ledger.record_cache_hit(task, notes)

    def close(self) -> None:
        self._transport.close()

    # -- one structured call --------------------------------------------------------------------

    def _structured(self, task: str, user_content: list[dict[str, Any]], schema: type[M],
                    check: Callable[[M], None] | None = None, seed: int | None = None,
                    notes: Sequence[dict[str, Any]] = ()) -> M:
        """The reply to one question as ``schema``, re-asked while it does not validate (or
        ``check`` rejects it); every call is recorded, whatever it raised."""
        stats = CallStats.with_notes(notes)
        messages = self._messages.messages(user_content, schema, stats)
        start = time.perf_counter()
        reasks = 0
        try:
            self._transport.check_context(task, messages, stats)
            while True:
                response = self._answered(task, messages, schema, seed, stats)
                if response is None:
                    continue  # the server asked for another mode: the request goes again
                content = ""
                try:
                    content = self._messages.checked_reply(task, response,
                                                           self._transport.modes()[1])
                    value = schema.model_validate(extract_json(content))
                    if check is not None:
                        check(value)
                    self._ledger.record(task, stats, time.perf_counter() - start, reasks, ok=True)
                    return value
                except (ValueError, ValidationError) as exc:
                    if reasks >= self.config.reask:
                        raise MLLMReplyError(
                            f"{self.model}: the {task} reply did not validate against "
                            f"{schema.__name__} after {reasks} re-ask(s): "
                            f"{self._transport.redact(str(exc))[:2000]}") from exc
                    reasks += 1
                    messages = messages + self._messages.reask_messages(content, exc, schema)
        except Exception:
            self._ledger.record(task, stats, time.perf_counter() - start, reasks, ok=False)
            raise

    def _answered(self, task: str, messages: list[dict[str, Any]], schema: type[BaseModel],
                  seed: int | None, stats: CallStats) -> Any | None:
        """The server's reply to ``messages`` (its usage counted and checked), or None where it
        rejected the response format or token parameter and the request can go again."""
        import openai

        sent_mode = self._transport.modes()[0]
        sent = self._transport.payload(messages, response_format(schema, sent_mode), seed)
        try:
            response = self._transport.send(sent, stats)
        except openai.APIStatusError as exc:
            if self._transport.recover(exc, sent_mode, sent, stats):
                return None
            raise self._transport.rejected(task, exc, len(stats.image_sizes)) from (
                None if self._transport.holds_key(str(exc)) else exc)
        self._transport.note_modes(stats, sent_mode, sent)
        prompt_tokens = stats.count_usage(response)
        if prompt_tokens is not None:
            self._transport.check_read_tokens(task, prompt_tokens, stats, messages)
        return response

    # -- roles ----------------------------------------------------------------------------------

    def describe(self, image: Image.Image, context: Sequence[dict[str, Any]] = ()) -> ImageUnderstandingTree:
        ctx_images, ctx_texts = self._messages.context_parts(context)
        notes: list[dict[str, Any]] = []
        ctx_images = self._messages.fit_context_images(ctx_images, own=1, notes=notes)
        if self.config.iut_mode == "single":
            text = render_prompt("describe_iut", context=ctx_texts, max_objects=MAX_OBJECTS,
                                 n_context_images=len(ctx_images))
            return self._structured("describe", ctx_images + [self._messages.image_part(image),
                                                              text_part(text)],
                                    ImageUnderstandingTree, notes=notes)
        return self._describe_multi(image, ctx_images, ctx_texts, notes)

    def _describe_multi(self, image, ctx_images, ctx_texts, notes) -> ImageUnderstandingTree:
        img = self._messages.image_part(image)

        def ask(task: str, template: str, schema, **variables):
            text = render_prompt(template, **variables)
            first = task == "describe_global"  # the one call that sees the context
            parts = (ctx_images if first else []) + [img, text_part(text)]
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
        return self._structured("rewrite_prompt", [text_part(text)], RevisedPrompt).prompt.strip()

    def refine_dialogue(self, caption: str, dialog: Sequence[tuple[str, str]]) -> str:
        text = render_prompt("refine_dialogue", caption=caption,
                             dialog=[{"question": q, "answer": a} for q, a in dialog],
                             budget=current_prompt_budget())
        return self._structured("refine_dialogue", [text_part(text)],
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

        value = self._structured("write_variants", [text_part(text)], PromptVariants,
                                 check=enough, seed=seed)
        return [p.strip() for p in value.prompts if p.strip()][:n]

    def critique(self, reference: Image.Image, candidate: Image.Image, prompt: str) -> Critique:
        text = render_prompt("critique", prompt=prompt)
        notes: list[dict[str, Any]] = []
        parts = self._messages.pair_parts(reference, candidate, notes) + [text_part(text)]
        return self._structured("critique", parts, Critique, notes=notes)

    def revise(self, prompt: str, critique: Critique, iut: ImageUnderstandingTree) -> str:
        text = render_prompt("revise_prompt", prompt=prompt, critique=critique.model_dump_json(),
                             iut=iut.model_dump_json(), budget=current_prompt_budget())
        return self._structured("revise", [text_part(text)], RevisedPrompt).prompt.strip()

    def judge(self, reference: Image.Image, candidate: Image.Image) -> Judgement:
        text = render_prompt("judge")
        notes: list[dict[str, Any]] = []
        parts = self._messages.pair_parts(reference, candidate, notes) + [text_part(text)]
        return self._structured("judge", parts, Judgement, notes=notes)


__all__ = ["GlobalDescription", "MLLMCallError", "MLLMError", "MLLMReplyError", "ObjectList",
           "OpenAIMLLM", "RelationshipList", "classify_rejection", "encode_image",
           "extract_json"]
