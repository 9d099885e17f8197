"""Issue 12 item 6 / issue 16 item 5: cache keys cover the whole request.

An OpenAIMLLM on the loopback server behind ``CachedMLLM``: a repeated request is answered from the
cache, and every part of the request that changes what the model is sent (a prompt template, the
T2I prompt budget, ``max_tokens``, ``extra_body``) makes a new key. Metric scores are keyed on
the metric's full identity (class and settings too).
"""

from __future__ import annotations

import shutil

import pytest
from PIL import Image

pytest.importorskip("openai")

import repainter.prompts as prompts_module  # noqa: E402
from repainter.backends.base import CURRENT_PROMPT_BUDGET, Metric, PromptBudget  # noqa: E402
from repainter.backends.mllm.openai_compat import OpenAIMLLM  # noqa: E402
from repainter.cache import CachedMLLM, ResponseCache, metric_identity  # noqa: E402
from repainter.resources import resource_dir  # noqa: E402
from repainter.schemas import Critique, ImageUnderstandingTree  # noqa: E402
from repainter.testing import OpenAICompatServer  # noqa: E402
from repainter.testing.openai_server import IUT_REPLY  # noqa: E402

CRITIQUE = Critique.model_validate({"differences": [{"aspect": "color", "description": "x"}],
                                    "summary": "x"})
IUT = ImageUnderstandingTree.model_validate(IUT_REPLY)


@pytest.fixture
def server():
    with OpenAICompatServer() as srv:
        yield srv


@pytest.fixture
def cached(server, tmp_path, monkeypatch):
    monkeypatch.setenv("CACHE_KEY_TEST_KEY", "sk-cache-key-test")
    cache = ResponseCache(tmp_path / "cache.sqlite")

    def build(**params):
        inner = OpenAIMLLM(model="fake", base_url=server.url, api_key_env="CACHE_KEY_TEST_KEY",
                           **params)
        return CachedMLLM(inner, cache)

    yield build
    cache.close()


def _use_templates(monkeypatch, folder):
    monkeypatch.setattr(prompts_module, "resource_dir", lambda name: folder)
    prompts_module._environment.cache_clear()
    prompts_module.templates_digest.cache_clear()


def test_an_edited_template_is_a_new_request(cached, server, tmp_path, monkeypatch):
    mllm = cached()
    image = Image.new("RGB", (16, 16), (10, 20, 30))
    mllm.judge(image, image)
    mllm.judge(image, image)
    assert server.requests == 1  # the repeat is a hit
    edited = tmp_path / "prompts"
    shutil.copytree(resource_dir("prompts"), edited)
    (edited / "judge.j2").write_text((edited / "judge.j2").read_text() + "\nBe strict.")
    try:
        _use_templates(monkeypatch, edited)
        mllm.judge(image, image)
        assert server.requests == 2  # stale replies to the old wording are not reused
    finally:
        monkeypatch.undo()
        prompts_module._environment.cache_clear()
        prompts_module.templates_digest.cache_clear()


def test_budget_max_tokens_and_extra_body_are_in_the_key(cached, server):
    cached().revise("a cat", CRITIQUE, IUT)
    token = CURRENT_PROMPT_BUDGET.set(PromptBudget(max_tokens=75, tokenizer="CLIPTokenizer"))
    try:
        cached().revise("a cat", CRITIQUE, IUT)
    finally:
        CURRENT_PROMPT_BUDGET.reset(token)
    assert server.requests == 2
    cached(max_tokens=300).revise("a cat", CRITIQUE, IUT)
    cached(extra_body={"top_k": 5}).revise("a cat", CRITIQUE, IUT)
    assert server.requests == 4
    cached(extra_body={"top_k": 5}).revise("a cat", CRITIQUE, IUT)
    assert server.requests == 4


class _Blur(Metric):
    """A metric whose identity() forgets one of its settings."""

    name = "blur"

    def __init__(self, radius: float):
        self.radius = radius

    def prepare(self, reference):
        return reference

    def score(self, prepared, candidates):
        return [0.0 for _ in candidates]


def test_metric_keys_cover_class_and_settings():
    a, b = metric_identity(_Blur(1.0)), metric_identity(_Blur(2.0))
    assert a["metric"] == b["metric"] == {"metric": "blur"}
    assert a != b and a["settings"] == {"radius": 1.0}
    assert a["class"].endswith("._Blur") and a["repainter"]
