"""Whole runs against the loopback server answering as vLLM's V0 engine does (one image per
request by default): without ``max_images`` every case fails at its first two-image call with the
server's words and the flag to set, nothing retried; with ``max_images: 1`` (pairs side by side)
every case is scored."""

from __future__ import annotations

import json

import repainter

from .conftest import run_to_the_end


def test_vllm_one_image_limit_is_named_then_fitted(tmp_path, serve, fault_spec, audit, secret):
    server = serve(profile="vllm-v0")
    refused = tmp_path / "refused"
    result = run_to_the_end(fault_spec(refused, server.url, limit=2, rounds=1))
    found = audit(refused, 2)
    assert found["done"] == 0 and result.info.cases.failed == 2
    for record in found["failed"]:
        assert "At most 1 image(s) may be provided in one request." in record["error"]
        assert "--limit-mm-per-prompt" in record["error"]
    usage = json.loads((refused / "run.json").read_text())["mllm_usage"]
    assert usage["retries"] == 0 and usage["requests"] == server.stats()["requests"]

    fitted = tmp_path / "fitted"
    result = repainter.run(fault_spec(fitted, server.url, limit=2, rounds=1, max_images=1))
    assert audit(fitted, 2)["done"] == 2 and result.info.cases.failed == 0
