"""The OpenAI-compatible MLLM's settings: one validated pydantic model of the backend's
constructor parameters, their defaults and their bounds (the backend's ``__init__`` names them,
so a spec's unknown key is found from its signature; this model checks the values).

>>> OpenAIConfig.checked({"model": "m", "max_retries": -3, "prices": {}}).max_retries
0
>>> OpenAIConfig.checked({"model": "m", "json_mode": "xml"})
Traceback (most recent call last):
...
ValueError: openai: json_mode must be one of ('auto', 'json_schema', 'json_object', 'none'), not 'xml'
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)

JSON_MODES = ("auto", "json_schema", "json_object", "none")
IUT_MODES = ("single", "multi")
TOKEN_PARAMS = ("auto", "max_tokens", "max_completion_tokens")
IMAGE_DETAILS = ("auto", "low", "high")


#: ``concurrency: auto``: requests in flight to a server on this machine or a private network
#: (vLLM, Ollama, LM Studio: they batch or queue requests; the run's pacing holds back once
#: the server slows under load) and to a hosted API (a rate-limited service; 429s are retried).
SELF_HOSTED_CONCURRENCY = 64
HOSTED_CONCURRENCY = 16


def default_concurrency(base_url: str | None) -> int:
    """What ``concurrency: auto`` resolves to for ``base_url`` (no DNS lookup: a host name other
    than ``localhost`` counts as hosted).

    >>> default_concurrency(None), default_concurrency("http://127.0.0.1:8000/v1")
    (16, 64)
    >>> default_concurrency("http://10.0.0.7:11434/v1"), default_concurrency("https://api.x.ai/v1")
    (64, 16)
    """
    host = (urlsplit(base_url).hostname or "") if base_url else ""
    if host == "localhost" or host.endswith(".localhost"):
        return SELF_HOSTED_CONCURRENCY
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return HOSTED_CONCURRENCY
    private = address.is_loopback or address.is_private or address.is_link_local
    return SELF_HOSTED_CONCURRENCY if private else HOSTED_CONCURRENCY


#: The settings that take one of a few words, and those words.
_CHOICES = {"json_mode": JSON_MODES, "iut_mode": IUT_MODES, "token_param": TOKEN_PARAMS}


class OpenAIConfig(BaseModel):
    """What :class:`~repainter.backends.mllm.openai_compat.OpenAIMLLM` is built with (its
    docstring and the module's say what each setting does). Counts are clamped to their floor
    (``max_retries`` and ``reask`` >= 0, ``concurrency`` and ``max_reply_chars`` >= 1), as the
    backend always did; other bad values are a ``ValueError`` naming the setting.
    ``concurrency: auto`` (the default) is resolved here, so the backend holds the int it runs
    with (run.json's ``pacing`` records it as the MLLM's limit)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    max_image_side: int = 768
    image_format: str = "png"
    temperature: float | None = None
    max_tokens: int | None = None
    max_retries: int = 5
    timeout: float = 60.0
    reask: int = 2
    json_mode: str = "auto"
    iut_mode: str = "single"
    #: Requests in flight at once; ``auto``: :func:`default_concurrency` of ``base_url``.
    concurrency: int = Field(default="auto", validate_default=True)  # an int once checked
    #: USD per 1M tokens: ``input``, ``output`` and optionally ``cached_input``.
    prices: dict[str, float] | None = None
    retry_initial_wait: float = 1.0
    retry_max_wait: float = 60.0
    extra_body: dict[str, Any] = Field(default_factory=dict)
    max_reply_chars: int = 200_000
    token_param: str = "auto"
    max_images: int | None = None
    image_detail: str | None = None
    context_tokens: int | None = None
    image_tokens: int = 768
    #: Sent with every request; their values may hold secrets (never shown, never in identity).
    default_headers: dict[str, str] | None = Field(default=None, repr=False)
    default_query: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def checked(cls, params: dict[str, Any]) -> OpenAIConfig:
        """The config of ``params``; a bad value raises the ``ValueError`` that names it (the
        backend's own message, not pydantic's report of it)."""
        try:
            return cls(**params)
        except ValidationError as exc:
            first = exc.errors()[0]
            own = first.get("ctx", {}).get("error")
            if isinstance(own, ValueError):
                raise own from None
            where = ".".join(str(part) for part in first["loc"])
            raise ValueError(f"openai: {where}: {first['msg']}") from None

    @field_validator("json_mode", "iut_mode", "token_param")
    @classmethod
    def _known_choice(cls, value: str, info: ValidationInfo) -> str:
        allowed = _CHOICES[info.field_name]
        if value not in allowed:
            raise ValueError(f"openai: {info.field_name} must be one of {allowed}, not {value!r}")
        return value

    @field_validator("max_image_side")
    @classmethod
    def _image_side(cls, value: int) -> int:
        if value < 16:
            raise ValueError("openai: max_image_side must be at least 16")
        return value

    @field_validator("image_detail")
    @classmethod
    def _image_detail(cls, value: str | None) -> str | None:
        if value is not None and value not in IMAGE_DETAILS:
            raise ValueError(f"openai: image_detail must be one of {IMAGE_DETAILS} or null")
        return value

    @field_validator("max_images")
    @classmethod
    def _max_images(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise ValueError("openai: max_images must be at least 1")
        return value

    @field_validator("max_retries", "reask")
    @classmethod
    def _at_least_zero(cls, value: int) -> int:
        return max(0, value)

    @field_validator("max_reply_chars")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        return max(1, value)

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any, info: ValidationInfo) -> Any:
        if value == "auto":
            return default_concurrency(info.data.get("base_url"))
        return max(1, value) if isinstance(value, int) and not isinstance(value, bool) else value

    @field_validator("prices")
    @classmethod
    def _no_empty_prices(cls, value: dict[str, float] | None) -> dict[str, float] | None:
        return value or None  # {} prices nothing: no cost is reported, as with none

    @field_validator("extra_body", "default_query", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @property
    def endpoint(self) -> str:
        """The server, as messages name it."""
        return self.base_url or "api.openai.com"


__all__ = ["HOSTED_CONCURRENCY", "IMAGE_DETAILS", "IUT_MODES", "JSON_MODES", "OpenAIConfig",
           "SELF_HOSTED_CONCURRENCY", "TOKEN_PARAMS", "default_concurrency"]
