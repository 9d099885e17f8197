"""Caches: never pay twice for a call; concurrency: same results as a sequential run."""

from collections import Counter

import pytest

from repainter.bench.world.procedural import ProceduralT2I
from repainter.bench.world.scene_analyst import SceneAnalyst
from repainter.cache import ResponseCache, request_key
from repainter.runner import run
from repainter.spec import build_spec

ROLES = ("describe", "rewrite_prompt", "write_variants", "critique", "revise", "judge")


@pytest.fixture
def calls(monkeypatch):
    """Counts calls that reach the real backends (behind any cache)."""
    counted: Counter = Counter()

    def count(cls, method, key):
        original = getattr(cls, method)

        def wrapper(self, *args, **kwargs):
            counted[key(self) if callable(key) else key] += 1
            return original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, wrapper)

    for role in ROLES:
        count(SceneAnalyst, role, f"mllm.{role}")
    count(ProceduralT2I, "generate", lambda self: "t2i." + ("+".join(self.ignore) or "full"))
    return counted


def _spec(tmp_path, folder="run", **extra):
    data = {"preset": "world", "output_dir": str(tmp_path / folder), "dataset": {"limit": 4},
            "loop": {"rounds": 2, "variants": 2}, **extra}
    return build_spec(data)


def _comparable(records):
    """Records without wall-clock timings, keyed by (model, case)."""
    return {(r.model, r.case_id): r.comparable() for r in records}


def test_response_cache_round_trip_and_counts(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    key = request_key("mllm", {"role": "judge", "b": 1, "a": [1, 2]})
    assert key == request_key("mllm", {"a": [1, 2], "role": "judge", "b": 1})  # canonical JSON
    assert cache.get("mllm", key) is None
    cache.put("mllm", key, {"x": 1}, b"blob")
    assert cache.get("mllm", key) == ({"x": 1}, b"blob")
    assert cache.stats() == {"mllm": {"hits": 1, "misses": 1}}
    with pytest.raises(ValueError):
        cache.put("metric", "k", float("nan"))


@pytest.mark.slow
def test_a_rerun_from_a_shared_cache_makes_no_backend_calls(tmp_path, calls):
    shared = {"runtime": {"cache_dir": str(tmp_path / "shared")}}
    first = run(_spec(tmp_path, "first", **shared))
    assert calls["t2i.full"] > 0 and calls["mllm.describe"] == 4
    calls.clear()
    second = run(_spec(tmp_path, "second", **shared))
    assert sum(calls.values()) == 0, calls
    assert _comparable(second.records) == _comparable(first.records)
    stats = second.info.cache
    assert stats["mllm"]["misses"] == 0 and stats["t2i"]["misses"] == 0
    assert stats["metric"]["misses"] == 0 and stats["metric"]["hits"] > 0


@pytest.mark.slow
def test_a_finished_run_started_again_redoes_nothing(tmp_path, calls):
    spec = _spec(tmp_path)
    run(spec)
    calls.clear()
    again = run(spec)
    assert sum(calls.values()) == 0 and again.info.cases.reused == 4


@pytest.mark.slow
def test_adding_a_model_to_a_finished_comparison_calls_only_for_it(tmp_path, calls):
    full = {"name": "procedural"}
    blind = {"name": "procedural", "label": "colourblind", "params": {"ignore": ["color"]}}
    first = run(_spec(tmp_path, t2i=[full]))
    calls.clear()
    grown = run(_spec(tmp_path, t2i=[full, blind]))
    assert calls["t2i.full"] == 0 and calls["t2i.color"] > 0
    assert calls["mllm.describe"] == 0 and calls["mllm.rewrite_prompt"] == 0
    assert grown.info.cases.reused == 4 and grown.info.cases.done == 4
    kept = {k: v for k, v in _comparable(grown.records).items() if k[0] == "procedural"}
    assert kept == _comparable(first.records)
    assert {r.model for r in grown.records} == {"procedural", "colourblind"}


@pytest.mark.slow
def test_concurrent_and_sequential_runs_give_identical_results(tmp_path):
    common = {"dataset": {"limit": 6}, "t2i": [
        {"name": "procedural"},
        {"name": "procedural", "label": "blind", "params": {"ignore": ["color"]}}]}
    sequential = run(_spec(tmp_path, "seq", runtime={"cache": False, "concurrency": 1}, **common))
    concurrent = run(_spec(tmp_path, "conc", runtime={"cache": False, "concurrency": 4}, **common))
    assert _comparable(concurrent.records) == _comparable(sequential.records)
    assert concurrent.leaderboard[0].selection.mean == sequential.leaderboard[0].selection.mean
