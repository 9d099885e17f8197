"""OpenAIMLLM against the loopback server answering as real servers do (issue 16, items 1-5).

Each server behaviour is a :class:`repainter.testing.ServerProfile` whose status codes and error
bodies are the real ones: vLLM's ``At most 1 image(s) may be provided in one request.`` (V0
engine, ``--limit-mm-per-prompt``), OpenAI's reasoning-model ``param`` errors, llama-server's
500 ``image input is not supported`` without ``--mmproj``, Ollama's silent truncation, Azure's
``content_filter``, ``x-should-retry``, ``cached_tokens`` and replies without usage.
"""

from __future__ import annotations

import base64
import io
import threading

import pytest
from PIL import Image

pytest.importorskip("openai")

from repainter.backends.base import CURRENT_PROMPT_BUDGET, PromptBudget  # noqa: E402
from repainter.backends.mllm.openai_compat import (  # noqa: E402
    MLLMCallError,
    MLLMReplyError,
    OpenAIMLLM,
    classify_rejection,
)
from repainter.testing import OpenAICompatServer, ServerProfile  # noqa: E402

KEY_ENV = "REPAINTER_REAL_SERVER_TEST_KEY"


@pytest.fixture
def make(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-real-servers-test-key")
    servers: list[OpenAICompatServer] = []

    def build(profile, **params):
        server = OpenAICompatServer(profile=profile, record_bodies=True).start()
        servers.append(server)
        defaults = {"model": "fake", "base_url": server.url, "api_key_env": KEY_ENV,
                    "retry_initial_wait": 0.001, "retry_max_wait": 0.01, "timeout": 10.0}
        return OpenAIMLLM(**{**defaults, **params}), server

    yield build
    for server in servers:
        server.close()


def _img(color=(200, 30, 30)):
    return Image.new("RGB", (64, 48), color)


def _rejected_once(mllm, server, match: str, words: str) -> None:
    """The call fails at its first request, with ``words`` of the server's own message."""
    with pytest.raises(MLLMCallError, match=match) as info:
        mllm.judge(_img(), _img())
    assert words in str(info.value) and server.requests == 1


def _n_images(body) -> int:
    return sum(1 for m in body["messages"] if isinstance(m["content"], list)
               for p in m["content"] if p["type"] == "image_url")


# -- item 1: only response-format errors downgrade; the others are named -------------------------


def test_vllm_image_limit_is_named_sent_once_and_keeps_the_mode(make):
    mllm, server = make("vllm-v0", max_retries=3)
    with pytest.raises(MLLMCallError) as info:
        mllm.judge(_img(), _img((0, 0, 200)))
    message = str(info.value)
    assert "At most 1 image(s) may be provided in one request." in message  # the server's words
    assert "image_limit" in message and "--limit-mm-per-prompt" in message
    assert server.requests == 1  # not walked down the json_schema -> json_object -> text chain
    assert mllm.identity()["json_mode_in_use"] == "json_schema"


def test_max_images_fits_context_images_and_refuses_two_image_roles(make):
    mllm, server = make("vllm-v0", max_images=1)
    context = [{"image": _img((0, 200, 0)), "text": "first"},
               {"image": _img((0, 0, 200)), "text": "second"}]
    iut = mllm.describe(_img(), context)
    assert iut.global_description and _n_images(server.bodies[-1]) == 1
    # critique / judge: the pair goes side by side in one image the server accepts
    assert mllm.critique(_img(), _img((0, 0, 200)), "a prompt").differences
    assert _n_images(server.bodies[-1]) == 1 and server.requests == 2
    (url,) = [p["image_url"]["url"] for p in server.bodies[-1]["messages"][1]["content"]
              if p["type"] == "image_url"]
    pair = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert pair.size == (128, 48)
    assert pair.getpixel((10, 10))[0] > 150 and pair.getpixel((100, 10))[2] > 150
    detailed, server = make(ServerProfile(), image_detail="low")
    detailed.judge(_img(), _img())
    parts = [p for p in server.bodies[-1]["messages"][1]["content"] if p["type"] == "image_url"]
    assert [p["image_url"]["detail"] for p in parts] == ["low", "low"]


def test_response_format_rejections_downgrade_and_report_the_mode(make):
    mllm, server = make("no-structured-output")
    assert mllm.judge(_img(), _img()).aesthetic >= 1
    formats = [(b.get("response_format") or {}).get("type") for b in server.bodies]
    assert formats == ["json_schema", "json_object", None]
    assert mllm.identity()["json_mode_in_use"] == "none"


@pytest.mark.parametrize("profile,reason,words", [
    (ServerProfile(content_filter=True), "content_filter", "content management policy"),
    (ServerProfile(context_limit=100), "context_length", "maximum context length is 100"),
])
def test_other_400s_fail_with_the_servers_message(make, profile, reason, words):
    mllm, server = make(profile)
    with pytest.raises(MLLMCallError) as info:
        mllm.judge(_img(), _img())
    assert reason in str(info.value) and words in str(info.value)
    assert server.requests == 1 and mllm.identity()["json_mode_in_use"] == "json_schema"


def test_parallel_downgrades_stop_at_the_first_mode_that_works(make):
    # Four calls are rejected for json_schema at once: the mode must move one step only (to
    # json_object, which this server accepts), never past it to plain text.
    mllm, server = make(ServerProfile(response_formats=("json_object",)), concurrency=4)
    server.latency = 0.2  # all four json_schema requests are in flight together
    errors: list[BaseException] = []

    def call():
        try:
            mllm.judge(_img(), _img())
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert mllm.identity()["json_mode_in_use"] == "json_object"
    formats = [(b.get("response_format") or {}).get("type") for b in server.bodies]
    assert formats.count("json_schema") == 4 and formats.count("json_object") == 4
    assert None not in formats


def test_rejection_classes_follow_param_and_message():
    class Fake(Exception):
        def __init__(self, body, param=None, code=None):
            super().__init__("Error code: 400")
            self.body, self.param, self.code = body, param, code

    assert classify_rejection(Fake({"message": "x"}, param="response_format")) == "response_format"
    assert classify_rejection(Fake({"message": "Unsupported parameter: 'max_tokens' is not "
                                               "supported with this model. Use "
                                               "'max_completion_tokens' instead."},
                                   param="max_tokens")) == "max_tokens"
    assert classify_rejection(Fake({"message": "bad value for top_p"})) == "other"


# -- item 2: reasoning models ---------------------------------------------------------------------


def test_reasoning_model_temperature_and_max_completion_tokens(make):
    _rejected_once(*make("openai-reasoning", temperature=0.0), "temperature: null",
                   "Only the default (1) value is supported")

    mllm, server = make("openai-reasoning", temperature=None, max_tokens=4000)
    assert mllm.judge(_img(), _img()).semantic >= 1
    first, second = server.bodies
    assert "temperature" not in first and first["max_tokens"] == 4000
    assert "max_tokens" not in second and second["max_completion_tokens"] == 4000
    mllm.judge(_img(), _img())
    assert "max_completion_tokens" in server.bodies[-1] and len(server.bodies) == 3
    assert mllm.identity()["token_param"] == "max_completion_tokens"
    assert mllm.usage()["retries"] == 0  # a corrected parameter is no retry


@pytest.mark.parametrize("finish,words", [("length", "cut at the token limit"),
                                          ("content_filter", "content filter")])
def test_cut_or_filtered_replies_are_not_reasked(make, finish, words):
    mllm, server = make(ServerProfile(finish_reason=finish), reask=3)
    with pytest.raises(MLLMReplyError, match=words):
        mllm.judge(_img(), _img())
    assert server.requests == 1


# -- item 3: Ollama's silent truncation -----------------------------------------------------------


def test_ollama_context_overflow_is_refused_or_detected(make):
    context = [{"image": _img((0, 200, 0)), "text": "one"}, {"image": _img((0, 0, 200))}]
    # Without context_tokens the server silently drops the oldest parts and answers anyway,
    # reading exactly its default context: the call fails, naming the fix.
    blind, server = make("ollama")
    with pytest.raises(MLLMCallError, match="OLLAMA_CONTEXT_LENGTH") as info:
        blind.describe(_img(), context)
    assert info.value.reason_key == "context_truncated" and info.value.permanent
    assert _n_images(server.bodies[-1]) == 3  # sent 3; the server read fewer (see the profile)
    # With the server's context the request is refused before it is sent ...
    mllm, server = make("ollama", context_tokens=2048)
    with pytest.raises(MLLMCallError, match="OLLAMA_CONTEXT_LENGTH"):
        mllm.describe(_img(), context)
    assert server.requests == 0
    # ... and when the estimate is too low, the reply's prompt_tokens (the whole context) tell.
    low, server = make("ollama", context_tokens=2048, image_tokens=300)
    with pytest.warns(UserWarning, match="context tokens"), \
            pytest.raises(MLLMCallError, match="dropped part of the request"):
        low.describe(_img(), context)


def test_requests_near_the_context_warn(make):
    mllm, _ = make("ollama", context_tokens=2100)
    with pytest.warns(UserWarning, match="context tokens"):
        mllm.describe(_img())


# -- item 4: accounting and retries ---------------------------------------------------------------


def test_cached_tokens_priced_apart_and_fingerprint_recorded(make):
    prices = {"input": 2.0, "cached_input": 0.5, "output": 8.0}
    mllm, _ = make("openai-reasoning", temperature=None, prices=prices)
    mllm.judge(_img(), _img())
    (record,) = mllm.records()
    assert 0 < record["cached_tokens"] <= record["prompt_tokens"]
    expected = ((record["prompt_tokens"] - record["cached_tokens"]) * 2.0
                + record["cached_tokens"] * 0.5 + record["completion_tokens"] * 8.0) / 1e6
    assert record["cost_usd"] == pytest.approx(expected)
    assert record["served_by"] == "fake@fp_reasoning"
    assert mllm.usage()["cached_tokens"] == record["cached_tokens"]
    assert "cost_upper_bound" not in record
    unpriced, _ = make("openai-reasoning", temperature=None, prices={"input": 2.0, "output": 8.0})
    unpriced.judge(_img(), _img())
    assert unpriced.records()[0]["cost_upper_bound"] is True  # cached tokens at the input price


def test_reply_without_usage_is_flagged(make):
    mllm, _ = make(ServerProfile(usage=False))
    mllm.judge(_img(), _img())
    assert mllm.records()[0]["usage_missing"] is True
    assert mllm.usage()["calls_without_usage"] == 1


def test_llama_server_without_mmproj_is_not_retried(make):
    _rejected_once(*make("llama-server-no-mmproj", max_retries=5), "--mmproj",
                   "image input is not supported")


def test_x_should_retry_is_honoured(make):
    mllm, server = make(ServerProfile(error_status=500, should_retry="false"), max_retries=4)
    with pytest.raises(MLLMCallError):
        mllm.judge(_img(), _img())
    assert server.requests == 1
    mllm, server = make(ServerProfile(error_status=400, should_retry="true"), max_retries=2)
    with pytest.raises(MLLMCallError, match="3 attempt") as info:
        mllm.judge(_img(), _img())
    assert server.requests == 3
    # the server's own error body is in the message
    assert "The server had an error while processing your request." in str(info.value)
    assert '"type": "server_error"' in str(info.value)


def test_default_headers_and_query_reach_the_server(make):
    mllm, server = make(ServerProfile(), default_headers={"HTTP-Referer": "https://example.org"},
                        default_query={"api-version": "2024-10-21"})
    mllm.judge(_img(), _img())
    line = server.request_lines[-1]
    assert line["path"].endswith("?api-version=2024-10-21")
    assert line["headers"]["http-referer"] == "https://example.org"
    assert mllm.identity()["default_headers"] == ["HTTP-Referer"]  # names, never values


# -- item 5 / issue 12 item 5: the request identity and the prompt budget -------------------------


def test_identity_covers_the_request(make):
    base, _ = make(ServerProfile())
    other, _ = make(ServerProfile(), max_tokens=300, extra_body={"top_k": 5})
    a, b = base.identity(), other.identity()
    assert a["max_tokens"] is None and b["max_tokens"] == 300 and b["extra_body"] == {"top_k": 5}
    assert a["templates"] and a["schemas"] and a["repainter"]


def test_prompt_budget_reaches_the_templates(make):
    mllm, server = make(ServerProfile())
    token = CURRENT_PROMPT_BUDGET.set(PromptBudget(max_tokens=75, tokenizer="CLIPTokenizer"))
    try:
        mllm.revise("a red cat", _critique(), _iut())
    finally:
        CURRENT_PROMPT_BUDGET.reset(token)
    text = server.bodies[-1]["messages"][1]["content"][0]["text"]
    assert "at most 53 words (75 tokens of the text-to-image model's CLIPTokenizer" in text
    assert "70 words" not in text
    mllm.revise("a red cat", _critique(), _iut())  # no T2I budget known: the default
    assert "at most 70 words." in server.bodies[-1]["messages"][1]["content"][0]["text"]


def _critique():
    from repainter.schemas import Critique

    return Critique.model_validate({"differences": [{"aspect": "color", "description": "x"}],
                                    "summary": "x"})


def _iut():
    from repainter.schemas import ImageUnderstandingTree
    from repainter.testing.openai_server import IUT_REPLY

    return ImageUnderstandingTree.model_validate(IUT_REPLY)
