"""Fixtures of the reliability tests: a loopback OpenAI-compatible server and run specs for it."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

pytest.importorskip("openai")

from repainter.spec import RunSpec, build_spec  # noqa: E402
from repainter.store import slug  # noqa: E402
from repainter.testing import FaultPlan, OpenAICompatServer  # noqa: E402

KEY_ENV = "REPAINTER_RELIABILITY_TEST_KEY"
#: Per call: transport retries and re-asks. At a 30% fault rate a call fails only after 7 faults
#: in a row (0.3**7 = 2e-4), so a run of a few dozen calls scores every case.
MAX_RETRIES = 6
REASK = 6
#: Client timeout: only ``hang`` faults wait for it; generous, so a busy machine never trips it.
TIMEOUT = 1.0


@pytest.fixture
def secret(monkeypatch) -> str:
    """A unique API key, exported where the backend reads it."""
    key = f"sk-reliability-{uuid.uuid4().hex}"
    monkeypatch.setenv(KEY_ENV, key)
    return key


@pytest.fixture
def serve():
    """``serve(FaultPlan(...), **kw)`` starts a server that is closed after the test."""
    servers: list[OpenAICompatServer] = []

    def start(plan: FaultPlan | None = None, **kwargs) -> OpenAICompatServer:
        server = OpenAICompatServer(faults=plan, **kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.close()


def _fault_spec(run_dir: Path, url: str, *, limit: int = 6, rounds: int = 2, variants: int = 2,
                runtime: dict | None = None, **mllm) -> RunSpec:
    """The built-in world through the OpenAI-compatible backend at ``url``."""
    params = {"model": "fake", "base_url": url, "api_key_env": KEY_ENV, "timeout": TIMEOUT,
              "retry_initial_wait": 0.001, "retry_max_wait": 0.01, "max_retries": MAX_RETRIES,
              "reask": REASK, **mllm}
    extra = {"runtime": runtime} if runtime else {}
    return build_spec({
        **extra,
        "name": run_dir.name, "output_dir": str(run_dir),
        "dataset": {"name": "world", "limit": limit},
        "t2i": [{"name": "procedural"}],
        "mllm": {"name": "openai", "params": params},
        "metrics": ["ssim", "color_histogram"],
        "selection": {"ssim": 0.5, "color_histogram": 0.5},
        "loop": {"rounds": rounds, "variants": variants},
        "judge": True,
    })


def _audit(run_dir: Path, expected_cases: int) -> dict:
    """Check that nothing was lost: a parseable record per case, every done case's files exist."""
    records = [json.loads(p.read_text()) for p in sorted((run_dir / "cases").glob("*/*.json"))]
    assert len(records) == expected_cases, f"{len(records)} records for {expected_cases} cases"
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert len(lines) == expected_cases and all(json.loads(line) for line in lines)
    for record in records:
        if record["status"] != "done":
            continue
        assert (run_dir / record["reference"]).is_file()
        json.loads((run_dir / "descriptions" / f"{slug(record['case_id'])}.json").read_text())
        for round_ in record["rounds"]:
            for candidate in round_["candidates"]:
                assert (run_dir / candidate["image"]).is_file(), candidate["image"]
        assert record["final_scores"]["selection"] is not None
        assert record["judgement"] is not None
    return {
        "done": sum(r["status"] == "done" for r in records),
        "failed": [r for r in records if r["status"] != "done"],
    }


@pytest.fixture
def fault_spec():
    return _fault_spec


def run_to_the_end(spec: RunSpec):
    """``repainter.run(spec)`` for a run whose every case fails: such a run is ``failed`` and
    raises :class:`~repainter.failures.RunFailedError`, whose ``result`` holds what it wrote."""
    import repainter
    from repainter.failures import RunFailedError

    with pytest.raises(RunFailedError, match="no case finished") as failed:
        repainter.run(spec)
    result = failed.value.result
    assert result is not None and result.info.status == "failed"
    return result


@pytest.fixture
def audit():
    return _audit
