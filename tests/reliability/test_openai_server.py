"""The loopback OpenAI-compatible server itself: canned replies, counters, latency, fault plans."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request

import pytest

from repainter.backends.mllm.openai_compat import GlobalDescription, ObjectList, RelationshipList
from repainter.schemas import (
    Critique,
    GlobalFeatures,
    ImageUnderstandingTree,
    Judgement,
    ObjectAttributes,
    PromptVariants,
    RevisedPrompt,
)
from repainter.testing import ALL_KINDS, KINDS, FaultPlan, OpenAICompatServer, canned_reply
from repainter.testing.openai_server import SCHEMA_VIOLATIONS, requested_n, schema_title

SCHEMAS = [ImageUnderstandingTree, GlobalDescription, GlobalFeatures, ObjectList, ObjectAttributes,
           RelationshipList, RevisedPrompt, PromptVariants, Critique, Judgement]


def _body(schema, text="hello", mode="json_schema"):
    system = "You are ...\nIt must match this JSON schema:\n" + json.dumps(
        schema.model_json_schema(), separators=(",", ":"))
    body = {"model": "fake", "messages": [{"role": "system", "content": system},
                                          {"role": "user", "content": [
                                              {"type": "text", "text": text}]}]}
    if mode == "json_schema":
        body["response_format"] = {"type": "json_schema", "json_schema": {
            "name": schema.__name__, "schema": schema.model_json_schema()}}
    elif mode == "json_object":
        body["response_format"] = {"type": "json_object"}
    return body


def _post(url, body, timeout=5.0):
    request = urllib.request.Request(url + "/chat/completions", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json",
                                              "authorization": "Bearer sk-x"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), json.loads(exc.read())


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.__name__)
def test_canned_replies_validate_and_violations_do_not(schema):
    schema.model_validate(canned_reply(schema.__name__, _body(schema)))
    with pytest.raises(ValueError):
        schema.model_validate(SCHEMA_VIOLATIONS[schema.__name__])


@pytest.mark.parametrize("mode", ["json_schema", "json_object", "none"])
def test_schema_is_found_in_every_json_mode(mode):
    assert schema_title(_body(Judgement, mode=mode)) == "Judgement"
    with OpenAICompatServer() as server:
        status, _, reply = _post(server.url, _body(Critique, mode=mode))
        assert status == 200
        Critique.model_validate_json(reply["choices"][0]["message"]["content"])
        assert server.stats()["calls"] == {"Critique": 1}


def test_prompt_variants_count_follows_the_request():
    assert requested_n(_body(PromptVariants, "Write 5 variants of ... with exactly 5 prompts.")) == 5
    assert requested_n(_body(PromptVariants, "no number here")) == 8
    prompts = canned_reply("PromptVariants", _body(PromptVariants, "with exactly 12 prompts"))
    assert len(prompts["prompts"]) == 12 and len(set(prompts["prompts"])) == 12


def test_unknown_schema_and_route_are_client_errors():
    with OpenAICompatServer() as server:
        body = _body(Judgement)
        body["response_format"]["json_schema"]["name"] = "NoSuchSchema"
        assert _post(server.url, body)[0] == 400
        request = urllib.request.Request(server.url + "/embeddings", data=b"{}")
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(request, timeout=5)
        assert info.value.code == 404


def test_fault_plan_is_deterministic_and_validated():
    draws = [FaultPlan(rate=0.3, kinds=KINDS, seed=5) for _ in range(2)]
    first, second = ([plan.draw() for _ in range(300)] for plan in draws)
    assert first == second
    hits = [k for k in first if k]
    assert 60 <= len(hits) <= 120 and set(hits) == set(KINDS)
    assert [FaultPlan(rate=0.0).draw() for _ in range(50)] == [None] * 50
    assert {FaultPlan(rate=1.0, kinds=["drop"]).draw() for _ in range(20)} == {"drop"}
    with pytest.raises(ValueError, match="unknown fault kinds"):
        FaultPlan(rate=0.1, kinds=["meteor"])
    with pytest.raises(ValueError, match="rate"):
        FaultPlan(rate=1.5)


@pytest.mark.parametrize("kind", ["429", "500", "503", "truncated_json", "schema_violation",
                                  "empty_choices", "refusal", "overlong", "echo_key"])
def test_each_answering_fault_looks_as_documented(kind):
    with OpenAICompatServer(faults=FaultPlan(rate=1.0, kinds=[kind],
                                             overlong_chars=50_000)) as server:
        status, headers, reply = _post(server.url, _body(Judgement))
        assert server.stats()["faults"] == {kind: 1}
    if kind in ("429", "500", "503"):
        assert status == int(kind) and "error" in reply
        if kind == "429":
            assert headers.get("Retry-After") == "0"
        return
    if kind == "echo_key":
        assert status == 500 and "Bearer sk-x" in reply["error"]["message"]
        return
    assert status == 200
    if kind == "empty_choices":
        assert reply["choices"] == []
        return
    message = reply["choices"][0]["message"]
    if kind == "refusal":
        assert message["content"] is None and message["refusal"]
        return
    content = message["content"]
    if kind == "truncated_json":
        with pytest.raises(ValueError):
            json.loads(content)
    elif kind == "schema_violation":
        assert json.loads(content)["aesthetic"] == 9
    elif kind == "overlong":
        assert len(content) > 50_000 and Judgement.model_validate_json(content)


def test_drop_and_hang_send_no_response_and_close_releases_hangs():
    with OpenAICompatServer(faults=FaultPlan(rate=1.0, kinds=["drop"])) as server:
        with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
            _post(server.url, _body(Judgement))
    server = OpenAICompatServer(faults=FaultPlan(rate=1.0, kinds=["hang"], hang_s=30)).start()
    with pytest.raises((TimeoutError, urllib.error.URLError, OSError)):
        _post(server.url, _body(Judgement), timeout=0.2)
    start = time.monotonic()
    server.close()  # the hanging handler wakes up and the server stops at once
    assert time.monotonic() - start < 30  # i.e. before the 30 s hang ended


def test_latency_and_peak_in_flight():
    with OpenAICompatServer(latency=0.2) as server:
        threads = [threading.Thread(target=_post, args=(server.url, _body(Judgement)))
                   for _ in range(4)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        stats = server.stats()
    assert elapsed >= 0.2  # the latency was applied; peak_in_flight shows they overlapped
    assert stats["requests"] == 4 and stats["peak_in_flight"] == 4
    server.reset_stats()
    assert server.stats()["requests"] == 0 and server.stats()["peak_in_flight"] == 0


def test_all_kinds_listed():
    assert set(KINDS) <= set(ALL_KINDS) and len(set(ALL_KINDS)) == len(ALL_KINDS) == 12
