"""What the OpenAI-compatible MLLM asks and how it reads the answer: the chat messages of a
structured request (a system prompt holding the schema, the user's text and image parts), the
image budget (``max_images``: context images dropped, a critique / judge pair combined side by
side), the re-ask after an invalid reply, and the checks of a reply before it is parsed.

All prompt texts are the templates ``prompts/*.j2``.

>>> count_images([{"role": "user", "content": [{"type": "image_url"}, {"type": "text"}]}])
1
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from typing import Any

from PIL import Image
from pydantic import BaseModel, Field

from repainter.backends.mllm.adaptations import AdaptationLog
from repainter.backends.mllm.openai_config import OpenAIConfig
from repainter.backends.mllm.openai_usage import CallStats
from repainter.backends.mllm.rejections import MLLMReplyError
from repainter.backends.mllm.wire import encode_image, fitted_size, reply_text, side_by_side
from repainter.prompts import render_prompt
from repainter.schemas import (
    Critique,
    GlobalFeatures,
    ImageUnderstandingTree,
    Judgement,
    ObjectAttributes,
    PromptVariants,
    Relationship,
    RevisedPrompt,
)

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


# -- measures of a request ------------------------------------------------------------------------


def count_images(messages: list[dict[str, Any]]) -> int:
    return sum(1 for m in messages if isinstance(m.get("content"), list)
               for p in m["content"] if isinstance(p, dict) and p.get("type") == "image_url")


def text_chars(messages: list[dict[str, Any]]) -> int:
    total = 0
    for m in messages:
        content = m.get("content")
        if isinstance(content, str):
            total += len(content)
        elif isinstance(content, list):
            total += sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    return total


def fingerprint(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@functools.cache
def schemas_digest() -> str:
    """Hash of the JSON schemas this backend asks for (computed once per process)."""
    return fingerprint([m.model_json_schema() for m in SCHEMAS])


def schema_name(schema: type[BaseModel]) -> str:
    return schema.__name__[:64]


def _schema_json(schema: type[BaseModel]) -> str:
    return json.dumps(schema.model_json_schema(), separators=(",", ":"))


def text_part(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


class MessageBuilder:
    """Builds one backend's requests and checks its replies."""

    def __init__(self, config: OpenAIConfig, log: AdaptationLog):
        self.config = config
        self.log = log

    # -- request parts --------------------------------------------------------------------------

    def image_part(self, image: Image.Image) -> dict[str, Any]:
        """An ``image_url`` part; ``_sizes`` (original, sent) is read and removed before sending."""
        side = self.config.max_image_side
        url: dict[str, Any] = {"url": encode_image(image, side, self.config.image_format)}
        if self.config.image_detail:
            url["detail"] = self.config.image_detail
        return {"type": "image_url", "image_url": url,
                "_sizes": (image.size, fitted_size(image.size, side))}

    def context_parts(self, context: Sequence[dict[str, Any]]) -> tuple[list[dict], list[str]]:
        """The image parts and the texts of a story's earlier steps."""
        parts, texts = [], []
        for item in context:
            if isinstance(item.get("image"), Image.Image):
                parts.append(self.image_part(item["image"]))
            if item.get("text"):
                texts.append(str(item["text"]))
        return parts, texts

    def fit_context_images(self, ctx_images: list[dict], own: int,
                           notes: list[dict[str, Any]]) -> list[dict]:
        """The most recent context images that fit ``max_images`` beside the call's own ones."""
        max_images = self.config.max_images
        if max_images is None:
            return ctx_images
        room = max(0, max_images - own)
        kept = ctx_images[len(ctx_images) - room:] if room else []
        if len(kept) < len(ctx_images):
            self.log.note(notes, "context_images_dropped", f"{len(ctx_images)} context images",
                          f"{len(kept)} kept", n=len(ctx_images) - len(kept),
                          detail=f"max_images: {max_images}")
        return kept

    def pair_parts(self, reference: Image.Image, candidate: Image.Image,
                   notes: list[dict[str, Any]]) -> list[dict]:
        """Reference and candidate as two images, or side by side in one where ``max_images``
        is 1 (vLLM's default limit; Ollama models that see only the last image)."""
        max_images = self.config.max_images
        if max_images is None or max_images >= 2:
            return [text_part("Image 1 (reference):"), self.image_part(reference),
                    text_part("Image 2 (candidate):"), self.image_part(candidate)]
        self.log.note(notes, "images_combined", "2 images", "1 side-by-side image",
                      detail="max_images: 1")
        return [text_part("One picture, two images side by side: Image 1 (reference) on "
                          "the left half, Image 2 (candidate) on the right half."),
                self.image_part(side_by_side(reference, candidate))]

    def messages(self, user_content: list[dict[str, Any]], schema: type[BaseModel],
                 stats: CallStats) -> list[dict[str, Any]]:
        """The system prompt (holding ``schema``) and the user's parts as sent."""
        system = render_prompt("system", schema=_schema_json(schema))
        return [{"role": "system", "content": system},
                {"role": "user", "content": self._wire_parts(user_content, stats)}]

    def _wire_parts(self, parts: list[dict[str, Any]], stats: CallStats) -> list[dict]:
        """``parts`` as sent; the images' sent sizes go to ``stats``, downscales to its notes."""
        wire = []
        for part in parts:
            sizes = part.get("_sizes")
            if sizes is not None:
                (original, sent) = sizes
                stats.image_sizes.append(sent)
                if tuple(original) != tuple(sent):
                    self.log.note(stats.adaptations, "image_downscaled",
                                  "x".join(map(str, original)), "x".join(map(str, sent)),
                                  detail=f"max_image_side: {self.config.max_image_side}")
            wire.append({k: v for k, v in part.items() if k != "_sizes"})
        return wire

    def reask_messages(self, content: str, exc: BaseException,
                       schema: type[BaseModel]) -> list[dict[str, Any]]:
        """The invalid reply and the request to answer again, naming what was wrong."""
        if len(content) > self.config.max_reply_chars:  # never send a huge reply back
            content = content[:1000] + f" [... {len(content) - 1000} characters cut]"
        return [{"role": "assistant", "content": content},
                {"role": "user", "content": render_prompt(
                    "reask", error=str(exc)[:2000], schema=_schema_json(schema))}]

    # -- replies --------------------------------------------------------------------------------

    def checked_reply(self, task: str, response: Any, token_param: str) -> str:
        """The reply's text; a cut or filtered reply is an error (a re-ask would not help)."""
        model = self.config.model
        choices = getattr(response, "choices", None) or []
        finish = getattr(choices[0], "finish_reason", None) if choices else None
        if finish == "content_filter":
            raise MLLMReplyError(f"{model}: the {task} reply was stopped by the provider's "
                                 "content filter (finish_reason content_filter)",
                                 reason_key="content_filter")
        content = reply_text(response)
        if finish == "length":
            raise MLLMReplyError(
                f"{model}: the {task} reply was cut at the token limit (finish_reason "
                f"length, {token_param}={self.config.max_tokens}); raise max_tokens - reasoning "
                "models spend part of it on hidden reasoning", reason_key="reply_cut")
        if len(content) > self.config.max_reply_chars:
            raise ValueError(
                f"the reply is {len(content)} characters long, over the limit of "
                f"{self.config.max_reply_chars}; reply with a much shorter JSON object")
        return content


__all__ = ["GlobalDescription", "MessageBuilder", "ObjectList", "ObjectName",
           "RelationshipList", "SCHEMAS", "count_images", "fingerprint", "schema_name",
           "schemas_digest", "text_chars", "text_part"]
