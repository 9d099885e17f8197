"""Issue 12 item 17 (MLLM half): a server that drips its reply one byte at a time cannot hold a
request past the client's ``timeout``, which is a total deadline per request."""

from __future__ import annotations

import pytest
from PIL import Image

pytest.importorskip("openai")

from repainter.backends.mllm.openai_compat import MLLMCallError, OpenAIMLLM  # noqa: E402
from repainter.deadline import remaining, total_deadline  # noqa: E402
from repainter.testing import OpenAICompatServer, ServerProfile  # noqa: E402


def test_dripping_server_hits_the_total_deadline(monkeypatch):
    monkeypatch.setenv("DRIP_TEST_KEY", "sk-drip-test")
    # each byte arrives well inside the 0.5 s read timeout; the whole reply would take minutes
    with OpenAICompatServer(profile=ServerProfile(drip_s=0.05)) as server:
        mllm = OpenAIMLLM(model="fake", base_url=server.url, api_key_env="DRIP_TEST_KEY",
                          timeout=0.5, max_retries=1, retry_initial_wait=0.001)
        with pytest.raises(MLLMCallError, match="2 attempt.*Timeout"):
            mllm.judge(Image.new("RGB", (8, 8)), Image.new("RGB", (8, 8)))
        assert server.requests == 2


def test_deadline_shortens_and_then_refuses_operations():
    assert remaining(3.0) == 3.0
    with total_deadline(0.0):
        with pytest.raises(TimeoutError):
            remaining(3.0)
    with total_deadline(100.0):
        assert remaining(3.0) == 3.0 and remaining(None) <= 100.0
