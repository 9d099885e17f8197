"""OpenAIMLLM's bounds on what it accepts, call by call, against the faulty loopback server."""

from __future__ import annotations

import json
import threading
import time
import traceback

import pytest
from PIL import Image

from repainter.backends.mllm.openai_compat import (
    MLLMCallError,
    MLLMReplyError,
    OpenAIMLLM,
    extract_json,
)
from repainter.schemas import Critique
from repainter.testing import FaultPlan

from .conftest import KEY_ENV


def _image():
    return Image.new("RGB", (48, 48), (200, 30, 30))


@pytest.fixture
def make(secret):
    def build(server, **params):
        defaults = {"model": "fake", "base_url": server.url, "api_key_env": KEY_ENV,
                    "timeout": 0.5, "retry_initial_wait": 0.001, "retry_max_wait": 0.01,
                    "max_retries": 2, "reask": 1}
        return OpenAIMLLM(**{**defaults, **params})

    return build


def test_truncated_reply_is_never_read_as_one_of_its_inner_objects(serve, make):
    # {"differences": [{...complete...}], "summ  <- its inner object is a valid (empty) Critique
    cut = '{"differences": [{"aspect": "color", "description": "x"}], "summ'
    assert Critique.model_validate(extract_json(cut[cut.index("[") + 1:]))  # the trap
    with pytest.raises(ValueError, match="no complete JSON object"):
        extract_json(cut)
    server = serve(FaultPlan(rate=1.0, kinds=["truncated_json"]))
    mllm = make(server)
    with pytest.raises(MLLMReplyError, match="did not validate against Critique after 1 re-ask"):
        mllm.critique(_image(), _image(), "a red circle")
    assert server.stats()["requests"] == 2


def test_extract_json_is_bounded_on_hostile_text():
    start = time.monotonic()
    for text in ["[" * 200_000, '{"a":' * 100_000, "{" * 200_000, '{"a": "' * 50_000,
                 "x{" * 100_000]:
        with pytest.raises(ValueError):
            extract_json(text)
    assert time.monotonic() - start < 5
    assert extract_json('prose {"a": "}{"} tail {"b": 1}') == {"a": "}{"}
    assert extract_json('```json\n{"a": 1}\n```') == {"a": 1}


def test_overlong_reply_is_refused_and_not_sent_back(serve, make):
    server = serve(FaultPlan(rate=1.0, kinds=["overlong"], overlong_chars=500_000),
                   record_bodies=True)
    mllm = make(server, max_reply_chars=100_000)
    with pytest.raises(MLLMReplyError, match="over the limit of 100000"):
        mllm.judge(_image(), _image())
    first, second = (len(json.dumps(b)) for b in server.bodies)
    assert second - first < 10_000  # the re-ask quotes a cut reply, not 500 kB of it
    # under the cap a long reply is fine
    ok = serve(FaultPlan(rate=1.0, kinds=["overlong"], overlong_chars=20_000))
    assert make(ok).judge(_image(), _image()).aesthetic == 4


@pytest.mark.parametrize("kind, reason", [("empty_choices", "the reply has no choices"),
                                          ("refusal", "the model refused")])
def test_empty_and_refused_replies_say_so(serve, make, kind, reason):
    server = serve(FaultPlan(rate=1.0, kinds=[kind]))
    with pytest.raises(MLLMReplyError, match=reason):
        make(server, reask=0).judge(_image(), _image())


def test_non_completion_bodies_are_retried_then_reported(serve, make):
    server = serve(FaultPlan(rate=1.0, kinds=["bad_body"]))
    mllm = make(server, max_retries=3)
    with pytest.raises(MLLMCallError, match="after 4 attempt") as info:
        mllm.judge(_image(), _image())
    assert "NotAChatCompletion" in str(info.value)
    assert mllm.usage()["errors"] == 1 and mllm.usage()["retries"] == 3
    # recovers when the proxy recovers
    flaky = serve(FaultPlan(rate=0.5, kinds=["bad_body"], seed=2))
    assert make(flaky, max_retries=8).judge(_image(), _image()).semantic == 4


def test_echoed_key_is_redacted_from_errors_and_tracebacks(serve, make, secret):
    server = serve(FaultPlan(rate=1.0, kinds=["echo_key"]))
    mllm = make(server)
    with pytest.raises(MLLMCallError) as info:
        mllm.judge(_image(), _image())
    text = "".join(traceback.format_exception(info.value))
    assert "Bearer ***" in str(info.value)
    assert secret not in text and secret not in json.dumps(mllm.records())


def test_hangs_cost_one_timeout_each_and_concurrency_is_capped(serve, make):
    server = serve(FaultPlan(rate=1.0, kinds=["hang"], hang_s=5))
    mllm = make(server, timeout=0.2, max_retries=2)
    start = time.monotonic()
    with pytest.raises(MLLMCallError, match="APITimeoutError"):
        mllm.judge(_image(), _image())
    # 3 timeouts of 0.2 s end before one 5 s hang would have (no timing limit beyond that)
    assert time.monotonic() - start < 5
    slow = serve(latency=0.1)
    capped = make(slow, concurrency=2)
    threads = [threading.Thread(target=capped.judge, args=(_image(), _image())) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert slow.stats()["peak_in_flight"] == 2 and capped.usage()["calls"] == 6
