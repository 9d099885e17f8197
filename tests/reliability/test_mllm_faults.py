"""The whole runner over the built-in world, with a faulty OpenAI-compatible MLLM on loopback.

At a 30% fault rate of any kind every case must still be scored; at 100% every case must fail
with a reason that names the fault, in bounded time and with a bounded number of requests; and the
API key must never reach the run folder or the logs, even where the server echoes it back.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

import repainter
from repainter.testing import ALL_KINDS, FaultPlan

from .conftest import run_to_the_end

pytestmark = pytest.mark.slow

#: Retries and re-asks where every request fails (fewer than at 30%, to keep the hang case short).
DOWN_RETRIES = DOWN_REASK = 3


def _reasons(retries: int, reask: int) -> dict[str, list[str]]:
    """What the recorded error of a case says when every request fails with this kind of fault."""
    attempts = f"after {retries + 1} attempt(s)"
    reasked = f"after {reask} re-ask(s)"
    return {
        "429": ["RateLimitError", "429", attempts],
        "500": ["InternalServerError", "500", attempts],
        "503": ["503", attempts],
        "hang": ["APITimeoutError", attempts],
        "drop": ["APIConnectionError", attempts],
        "truncated_json": ["did not validate", reasked, "JSON object"],
        "schema_violation": ["did not validate", reasked, "validation error"],
        "empty_choices": ["did not validate", reasked, "the reply has no choices"],
        "refusal": ["did not validate", reasked],
        "overlong": ["did not validate", reasked, "over the limit"],
        "bad_body": ["NotAChatCompletion", attempts],
        "echo_key": ["InternalServerError", "500", "***", attempts],
    }


RETRY_KINDS = {"429", "500", "503", "hang", "drop", "bad_body", "echo_key"}


def _usage(run_dir) -> dict:
    return json.loads((run_dir / "run.json").read_text())["mllm_usage"]


@pytest.mark.parametrize("kind", ALL_KINDS)
def test_each_fault_kind_at_30_percent_scores_every_case(kind, tmp_path, serve, fault_spec,
                                                          audit, secret):
    server = serve(FaultPlan(rate=0.3, kinds=[kind], seed=1, hang_s=1.0))
    limit = 2 if kind == "hang" else 3  # a hang costs a whole client timeout
    run_dir = tmp_path / f"kind-{kind}"
    timeout = 0.4 if kind == "hang" else 1.0
    result = repainter.run(fault_spec(run_dir, server.url, limit=limit, timeout=timeout))
    found = audit(run_dir, limit)
    assert found["done"] == limit, [r["error"] for r in found["failed"]]
    assert result.info.cases.done == limit and result.info.cases.failed == 0

    stats, usage = server.stats(), _usage(run_dir)
    assert stats["faults"].get(kind, 0) >= 1 and stats["faults_total"] == stats["faults"][kind]
    assert usage["requests"] == stats["requests"]  # every attempt reached the server
    assert usage["errors"] == 0
    recovered = usage["retries"] if kind in RETRY_KINDS else usage["reasks"]
    assert recovered == stats["faults_total"]  # each fault cost exactly one more request


def test_all_kinds_mixed_at_30_percent(tmp_path, serve, fault_spec, audit, secret):
    server = serve(FaultPlan(rate=0.3, kinds=ALL_KINDS, seed=7, hang_s=1.0))
    run_dir = tmp_path / "mixed"
    result = repainter.run(fault_spec(run_dir, server.url, limit=6, timeout=0.5))
    found = audit(run_dir, 6)
    assert found["done"] == 6, [r["error"] for r in found["failed"]]

    stats, usage = server.stats(), _usage(run_dir)
    assert usage == result.info.mllm_usage
    assert stats["faults_total"] >= 10 and len(stats["faults"]) >= 6
    assert usage["requests"] == stats["requests"]
    assert usage["retries"] + usage["reasks"] == stats["faults_total"]
    assert usage["retries"] > 0 and usage["reasks"] > 0 and usage["errors"] == 0
    # every schema of the default loop was asked for (adaptive asks for no rewordings)
    assert {"ImageUnderstandingTree", "RevisedPrompt", "Critique", "Judgement"} <= set(stats["calls"])
    # the server's critiques are free text: the default loop cannot match them across renders,
    # revises from the best render's critique, and each round says so
    record = json.loads(next((run_dir / "cases").rglob("*.json")).read_text())
    assert "free-text differences are not matched" in record["rounds"][0]["critique_basis"]
    # an overlong reply never made it into a record
    assert max(p.stat().st_size for p in run_dir.rglob("*.json")) < 200_000


def test_concurrent_cases_under_mixed_faults(tmp_path, serve, fault_spec, audit, secret):
    server = serve(FaultPlan(rate=0.3, kinds=ALL_KINDS, seed=5, hang_s=1.0), latency=0.02)
    run_dir = tmp_path / "concurrent"
    repainter.run(fault_spec(run_dir, server.url, limit=6, timeout=0.5,
                             runtime={"concurrency": 3}))
    found = audit(run_dir, 6)
    assert found["done"] == 6, [r["error"] for r in found["failed"]]
    stats, usage = server.stats(), _usage(run_dir)
    assert stats["peak_in_flight"] >= 2  # cases really overlapped
    assert usage["requests"] == stats["requests"] and usage["errors"] == 0
    assert usage["retries"] + usage["reasks"] == stats["faults_total"] > 0


def test_cases_failed_in_an_outage_are_redone_by_the_next_run(tmp_path, serve, fault_spec,
                                                                audit, secret):
    server = serve(FaultPlan(rate=1.0, kinds=["503"]))
    run_dir = tmp_path / "outage"
    spec = fault_spec(run_dir, server.url, limit=3, max_retries=2)
    first = run_to_the_end(spec)
    assert first.info.cases.failed == 3
    server.faults = FaultPlan(rate=0.0)  # the server is back
    second = repainter.run(spec)
    assert second.info.cases.done == 3 and second.info.cases.failed == 0
    assert audit(run_dir, 3)["done"] == 3  # nothing of the outage was cached or kept


@pytest.mark.parametrize("kind", [*ALL_KINDS, "mixed"])
def test_always_failing_server_fails_every_case_clearly_and_quickly(kind, tmp_path, serve,
                                                                     fault_spec, audit, secret):
    cases = 3
    kinds = ALL_KINDS if kind == "mixed" else [kind]
    server = serve(FaultPlan(rate=1.0, kinds=kinds, seed=3, hang_s=1.0))
    run_dir = tmp_path / f"down-{kind}"
    timeout = 0.25 if kind in ("hang", "mixed") else 1.0
    start = time.monotonic()
    result = run_to_the_end(fault_spec(run_dir, server.url, limit=cases, timeout=timeout,
                                       max_retries=DOWN_RETRIES, reask=DOWN_REASK))
    elapsed = time.monotonic() - start
    found = audit(run_dir, cases)

    assert found["done"] == 0 and result.info.cases.failed == cases
    for record in found["failed"]:
        assert record["status"] == "failed"
        error = record["error"]
        assert error.startswith("loop: MLLM"), error
        if kind != "mixed":
            for part in _reasons(DOWN_RETRIES, DOWN_REASK)[kind]:
                assert part in error, f"{part!r} not in {error!r}"
    # bounded: each case dies on its first call, which may retry and re-ask but no more
    per_call = (DOWN_RETRIES + 1) * (DOWN_REASK + 1)
    assert server.stats()["requests"] <= cases * per_call
    if kind != "mixed":
        single = DOWN_RETRIES + 1 if kind in RETRY_KINDS else DOWN_REASK + 1
        assert server.stats()["requests"] == cases * single
    assert elapsed < 60
    usage = _usage(run_dir)
    assert usage["errors"] == usage["calls"] == cases
    assert not (run_dir / "descriptions").exists() or not any((run_dir / "descriptions").iterdir())


def test_api_key_never_reaches_the_run_folder_or_logs(tmp_path, serve, fault_spec, secret,
                                                     caplog, capfd):
    caplog.set_level(logging.DEBUG)  # openai / httpx / httpcore debug logs included
    # the server echoes the Authorization header in error messages: first now and then (run
    # finishes), then always (the error that fails each case would hold the key if not redacted)
    mixed = serve(FaultPlan(rate=0.3, kinds=ALL_KINDS, seed=11, hang_s=1.0))
    echo = serve(FaultPlan(rate=1.0, kinds=["echo_key"]), record_bodies=True)
    runs = [tmp_path / "key-mixed", tmp_path / "key-echo"]
    first = repainter.run(fault_spec(runs[0], mixed.url, limit=3))
    second = run_to_the_end(fault_spec(runs[1], echo.url, limit=2))
    assert first.info.cases.done == 3 and second.info.cases.failed == 2
    assert "***" in second.records[0].error

    needle = secret.encode()
    files = [p for run in runs for p in run.rglob("*") if p.is_file()]
    assert any(p.name == "checkpoints.sqlite" for p in files)
    for path in files:
        data = path.read_bytes()
        assert needle not in data, f"the API key is in {path}"
        assert secret.encode("utf-16-le") not in data, f"the API key is in {path} (UTF-16)"
    captured = capfd.readouterr()
    assert secret not in captured.out and secret not in captured.err
    assert secret not in caplog.text
    assert all(secret not in repr(r.args) for r in caplog.records)
    # ... while the key did reach the server, so the echo really was there to leak
    assert echo.stats()["faults"]["echo_key"] >= 2
