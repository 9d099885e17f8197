"""OpenAIMLLM through the real ``openai`` client against an OpenAI-compatible server on loopback."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

pytest.importorskip("openai")

from repainter.backends.mllm.openai_compat import (  # noqa: E402
    MLLMCallError,
    MLLMError,
    MLLMReplyError,
    OpenAIMLLM,
    encode_image,
    extract_json,
)
from repainter.schemas import (  # noqa: E402
    Critique,
    Difference,
    ImageUnderstandingTree,
    Judgement,
    ObjectAttributes,
    SceneObject,
)

SECRET = "sk-test-SECRET-never-logged-123"

IUT = {
    "global_description": "A red cat on a blue sofa.",
    "global_features": {"style": "photo", "lighting": "soft", "color_palette": "red, blue",
                        "composition": "centered"},
    "objects": [{"name": "cat", "type": "animal", "attributes": {"color": "red"}},
                {"name": "sofa", "type": "object", "attributes": {"color": "blue"}}],
    "relationships": [{"subject": "cat", "relation": "sits on", "object": "sofa"}],
}
DEFAULT_REPLIES = {
    "ImageUnderstandingTree": IUT,
    "GlobalDescription": {"global_description": "A red cat on a blue sofa."},
    "GlobalFeatures": IUT["global_features"],
    "ObjectList": {"objects": [{"name": "cat", "type": "animal"}, {"name": "sofa"}]},
    "ObjectAttributes": {"color": "red", "position": "center"},
    "RelationshipList": {"relationships": IUT["relationships"]},
    "RevisedPrompt": {"prompt": "red cat, blue sofa, photo"},
    "PromptVariants": {"prompts": ["v1", "v2", "v3"]},
    "Critique": {"differences": [{"aspect": "color", "description": "cat is orange, not red"}],
                 "summary": "colour off"},
    "Judgement": {"aesthetic": 4, "semantic": 5, "rationale": "close"},
}


def _schema_title(body: dict) -> str:
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        return fmt["json_schema"]["name"]
    system = body["messages"][0]["content"]
    schema = json.loads(system.strip().splitlines()[-1])
    return schema["title"]


def completion(content: str, prompt_tokens: int = 100, completion_tokens: int = 20) -> dict:
    return {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "fake-model",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }


class FakeServer:
    """Scripted replies first (status, headers, body-or-text, delay), then schema defaults."""

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.script: list[tuple] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                length = int(self.headers.get("content-length", 0))
                body = json.loads(self.rfile.read(length))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(dict(self.headers))
                    step = server.script.pop(0) if server.script else None
                if step is None:
                    step = (200, {}, completion(json.dumps(DEFAULT_REPLIES[_schema_title(body)])), 0)
                status, headers, payload, delay = step
                if callable(payload):
                    payload = payload(body)
                if delay:
                    time.sleep(delay)
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FakeServer()
    yield srv
    srv.close()


@pytest.fixture
def make(server, monkeypatch):
    monkeypatch.setenv("TEST_MLLM_KEY", SECRET)

    def build(**params):
        defaults = {"model": "fake-model", "base_url": server.url, "api_key_env": "TEST_MLLM_KEY",
                    "retry_initial_wait": 0.001, "retry_max_wait": 0.05, "timeout": 5.0}
        defaults.update(params)
        return OpenAIMLLM(**defaults)

    return build


def _image(size=(1024, 512), color=(200, 30, 30)):
    return Image.new("RGB", size, color)


def _data_urls(body) -> list[str]:
    urls = []
    for message in body["messages"]:
        if isinstance(message["content"], list):
            urls += [p["image_url"]["url"] for p in message["content"] if p["type"] == "image_url"]
    return urls


def _decode(url: str) -> Image.Image:
    header, data = url.split(",", 1)
    return Image.open(io.BytesIO(base64.b64decode(data)))


def test_describe_sends_downscaled_data_url_and_parses_iut(make, server):
    mllm = make(max_image_side=256)
    iut = mllm.describe(_image())
    assert isinstance(iut, ImageUnderstandingTree) and iut.objects[0].name == "cat"
    body = server.requests[-1]
    # no temperature unless one is set: reasoning models reject any but their default
    assert body["model"] == "fake-model" and "temperature" not in body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["name"] == "ImageUnderstandingTree"
    [url] = _data_urls(body)
    assert url.startswith("data:image/png;base64,")
    img = _decode(url)
    assert img.format == "PNG" and img.size == (256, 128)  # longer side capped, aspect kept
    assert {k.lower(): v for k, v in server.headers[-1].items()}.get("authorization") == f"Bearer {SECRET}"  # key does reach server
    # small images are not upscaled; JPEG on request
    jpeg = make(max_image_side=256, image_format="jpeg")
    jpeg.judge(_image((64, 32)), _image((64, 32), (0, 0, 0)))
    urls = _data_urls(server.requests[-1])
    assert len(urls) == 2 and all(u.startswith("data:image/jpeg;base64,") for u in urls)
    assert _decode(urls[0]).size == (64, 32)


def test_all_roles_parse_into_schemas(make, server):
    mllm = make()
    iut = ImageUnderstandingTree.model_validate(IUT)
    assert mllm.rewrite_prompt("A red cat.", iut) == "red cat, blue sofa, photo"
    assert mllm.write_variants("p", 3, iut, None, seed=7) == ["v1", "v2", "v3"]
    assert server.requests[-1]["seed"] == 7
    assert mllm.write_variants("p", 2, iut, None, seed=7) == ["v1", "v2"]
    crit = mllm.critique(_image(), _image(), "red cat")
    assert isinstance(crit, Critique) and crit.differences[0].aspect == "color"
    assert len(_data_urls(server.requests[-1])) == 2
    revised = mllm.revise("p", Critique(differences=[Difference(description="x")]), iut)
    assert revised == "red cat, blue sofa, photo"
    assert '"description":"x"' in json.dumps(server.requests[-1]["messages"])  or \
        '\\"description\\":\\"x\\"' in json.dumps(server.requests[-1]["messages"])
    judgement = mllm.judge(_image(), _image())
    assert judgement == Judgement(aesthetic=4, semantic=5, rationale="close")
    usage = mllm.usage()
    assert usage["calls"] == 6 and usage["prompt_tokens"] == 600
    assert usage["completion_tokens"] == 120 and usage["total_tokens"] == 720
    assert "cost_usd" not in usage and usage["latency_s"] > 0


def test_multi_call_iut_sequence(make, server):
    mllm = make(iut_mode="multi")
    iut = mllm.describe(_image())
    names = [_schema_title(b) for b in server.requests]
    assert names == ["GlobalDescription", "GlobalFeatures", "ObjectList", "ObjectAttributes",
                     "ObjectAttributes", "RelationshipList"]
    assert [o.name for o in iut.objects] == ["cat", "sofa"] and iut.objects[0].type == "animal"
    assert iut.objects[0].attributes == ObjectAttributes(color="red", position="center")
    assert iut.relationships[0].relation == "sits on"
    # only the image is sent with each step, plus the object name where it matters
    assert all(len(_data_urls(b)) == 1 for b in server.requests)
    assert "cat" in json.dumps(server.requests[3]["messages"][-1])
    # one object -> no relationships call
    server.requests.clear()
    server.script = [(200, {}, completion(json.dumps({"global_description": "a cat"})), 0),
                     (200, {}, completion(json.dumps({"style": "photo"})), 0),
                     (200, {}, completion(json.dumps({"objects": [{"name": "cat"}]})), 0)]
    single = mllm.describe(_image())
    assert len(server.requests) == 4 and single.relationships == []
    assert single.objects == [SceneObject(name="cat", attributes=ObjectAttributes(
        color="red", position="center"))]


def test_429_with_retry_after_then_success(make, server):
    server.script = [(429, {"Retry-After": "0"}, {"error": {"message": "slow down"}}, 0)]
    mllm = make()
    start = time.monotonic()
    assert mllm.judge(_image(), _image()).semantic == 5
    assert time.monotonic() - start < 2
    assert len(server.requests) == 2
    assert mllm.usage()["retries"] == 1 and mllm.records()[-1]["attempts"] == 2


def test_500_then_success(make, server):
    server.script = [(500, {}, {"error": {"message": "boom"}}, 0),
                     (503, {}, {"error": {"message": "busy"}}, 0)]
    mllm = make()
    assert mllm.rewrite_prompt("draft", ImageUnderstandingTree.model_validate(IUT))
    assert len(server.requests) == 3


def test_retries_exhausted_is_a_clear_error(make, server):
    server.script = [(500, {}, {"error": {"message": "boom"}}, 0)] * 3
    mllm = make(max_retries=2)
    with pytest.raises(MLLMCallError, match="failed after 3 attempt"):
        mllm.judge(_image(), _image())
    assert mllm.usage()["errors"] == 1


def test_malformed_reply_is_repaired_by_reask(make, server):
    server.script = [
        (200, {}, completion("Sure! here it is: {\"aesthetic\": 9, \"semantic\": 2}"), 0),
        (200, {}, completion("```json\n{\"aesthetic\": 3, \"semantic\": 2}\n```"), 0),
    ]
    mllm = make()
    judgement = mllm.judge(_image(), _image())
    assert (judgement.aesthetic, judgement.semantic) == (3, 2)
    second = server.requests[1]["messages"]
    assert second[-2]["role"] == "assistant" and "aesthetic\": 9" in second[-2]["content"]
    assert second[-1]["role"] == "user" and "less than or equal to 5" in second[-1]["content"]
    assert mllm.usage()["reasks"] == 1


def test_reask_limit_gives_reply_error(make, server):
    server.script = [(200, {}, completion("no json here"), 0)] * 3
    mllm = make(reask=2)
    with pytest.raises(MLLMReplyError, match="after 2 re-ask"):
        mllm.judge(_image(), _image())
    assert len(server.requests) == 3


def test_too_few_variants_are_reasked(make, server):
    server.script = [(200, {}, completion(json.dumps({"prompts": ["only one"]})), 0)]
    mllm = make()
    out = mllm.write_variants("p", 3, ImageUnderstandingTree.model_validate(IUT), None, seed=0)
    assert out == ["v1", "v2", "v3"] and len(server.requests) == 2


def test_timeout_retries_then_clear_error(make, server):
    server.script = [(200, {}, completion("{}"), 1.0)] * 3
    mllm = make(timeout=0.2, max_retries=2)
    start = time.monotonic()
    with pytest.raises(MLLMCallError) as info:
        mllm.judge(_image(), _image())
    assert time.monotonic() - start < 3
    assert "3 attempt" in str(info.value) and "Timeout" in str(info.value)
    assert len(server.requests) == 3


def test_json_schema_unsupported_falls_back(make, server):
    def reject_schema(body):
        return {"error": {"message": "response_format json_schema not supported"}}

    server.script = [(400, {}, reject_schema, 0), (400, {}, reject_schema, 0)]
    mllm = make()
    assert mllm.judge(_image(), _image()).aesthetic == 4
    formats = [b.get("response_format", {}).get("type") for b in server.requests]
    assert formats == ["json_schema", "json_object", None]
    # the weaker mode is remembered
    mllm.judge(_image(), _image())
    assert "response_format" not in server.requests[-1]
    # a fixed mode does not fall back
    server.script = [(400, {}, reject_schema, 0)]
    with pytest.raises(MLLMCallError, match="rejected \\(400, response_format\\)"):
        make(json_mode="json_schema").judge(_image(), _image())


def test_key_never_exposed_and_prices(make, server, capsys):
    mllm = make(prices={"input": 2.0, "output": 10.0})
    mllm.judge(_image(), _image())
    exposed = json.dumps([mllm.identity(), mllm.usage(), mllm.records()]) + repr(mllm) + str(mllm)
    assert SECRET not in exposed and SECRET not in capsys.readouterr().out
    assert SECRET not in json.dumps(vars(mllm), default=repr)
    assert mllm.usage()["cost_usd"] == pytest.approx((100 * 2.0 + 20 * 10.0) / 1e6)
    assert mllm.identity()["base_url"] == server.url


def test_missing_key_and_bad_params(monkeypatch):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    with pytest.raises(MLLMError, match="export NO_SUCH_KEY_VAR"):
        OpenAIMLLM(model="gpt-4o", api_key_env="NO_SUCH_KEY_VAR")
    with pytest.raises(ValueError):
        OpenAIMLLM(model="m", base_url="http://127.0.0.1:1/v1", json_mode="xml")


def test_concurrency_limit(make, server):
    server.script = [(200, {}, completion(json.dumps(DEFAULT_REPLIES["Judgement"])), 0.2)] * 4
    mllm = make(concurrency=2)
    start = time.monotonic()
    threads = [threading.Thread(target=mllm.judge, args=(_image((32, 32)), _image((32, 32))))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    assert mllm.usage()["calls"] == 4
    assert elapsed >= 0.38  # 4 calls of 0.2 s, 2 at a time


def test_helpers():
    assert extract_json('noise {"a": {"b": 1}} tail {"c": 2}') == {"a": {"b": 1}}
    assert extract_json('[1, 2]') == [1, 2]
    with pytest.raises(ValueError):
        extract_json("nothing")
    url = encode_image(Image.new("L", (10, 2000)), max_side=100)
    assert _decode(url).size == (1, 100) and _decode(url).mode == "RGB"
