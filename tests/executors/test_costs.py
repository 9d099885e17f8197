"""Costs that stay linear: renders stored once, finished checkpoints pruned, cache commits
batched, framework time never negative, a light ``import repainter``."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from repainter import runner
from repainter.cache import ResponseCache
from repainter.spec import build_spec


def _spec(folder: Path, **runtime):
    return build_spec({"output_dir": str(folder), "dataset": {"limit": 3},
                       "loop": {"rounds": 2, "variants": 2}, "runtime": runtime})


def _rows(path: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.slow
def test_renders_are_stored_once_and_checkpoints_of_finished_cases_pruned(tmp_path):
    run_dir = tmp_path / "run"
    first = runner.run(_spec(run_dir))
    entries = _rows(run_dir / "cache.sqlite",
                    "SELECT value, blob FROM entries WHERE namespace = 't2i'")
    assert len(entries) == 3 * 2 * 2
    assert all(blob is None for _, blob in entries), "a render was copied into the cache"
    assert all(f'{run_dir.resolve()}/images/' in value for value, _ in entries)
    assert _rows(run_dir / "checkpoints.sqlite", "SELECT COUNT(*) FROM checkpoints") == [(0,)]

    # the records gone, the renders still there: every render is answered from its file
    shutil.rmtree(run_dir / "cases")
    again = runner.run(_spec(run_dir))
    assert again.info.cache["t2i"] == {"hits": 12, "misses": 0}
    assert [r.final_scores for r in again.records] == [r.final_scores for r in first.records]

    # a render whose file was deleted is a miss and renders again
    shutil.rmtree(run_dir / "cases")
    next(run_dir.glob("images/*/*/r1_v0.png")).unlink()
    third = runner.run(_spec(run_dir))
    assert third.info.cache["t2i"]["misses"] == 1


def test_cache_writes_wait_for_a_flush_or_a_full_batch(tmp_path):
    cache = ResponseCache(tmp_path / "cache.sqlite", batch_size=3)
    count = "SELECT COUNT(*) FROM entries"
    cache.put("mllm", "a", 1)
    cache.put("mllm", "b", 2)
    assert cache.get("mllm", "a") == (1, None)  # found while waiting
    assert _rows(tmp_path / "cache.sqlite", count) == [(0,)]
    cache.put("mllm", "c", 3)  # the batch is full: one commit
    assert _rows(tmp_path / "cache.sqlite", count) == [(3,)] and cache.commits == 1
    cache.put("mllm", "d", 4)
    cache.flush()
    assert _rows(tmp_path / "cache.sqlite", count) == [(4,)] and cache.commits == 2
    cache.close()


def test_framework_time_is_not_negative_under_concurrency(tmp_path):
    result = runner.run(_spec(tmp_path / "run", concurrency=3))
    info = result.info
    assert info.backend["total_seconds"] > 0
    assert 0 <= info.backend_busy_seconds <= info.loop_seconds
    assert 0 < info.setup_seconds < info.loop_seconds and 0 <= info.release_seconds
    # each figure is rounded to 0.1 ms on its own
    expected = (info.loop_seconds - info.setup_seconds - info.release_seconds
                - info.backend_busy_seconds)
    assert abs(info.framework_seconds - expected) < 5e-4


def test_setup_time_is_the_component_build_and_kept_out_of_framework_time(tmp_path, monkeypatch):
    import repainter.executors.prepare as preparing

    build = preparing.prepare_context

    def slow_build(*args, **kwargs):
        time.sleep(0.3)  # a slow model load: the loop's per-case time must not absorb it
        return build(*args, **kwargs)

    monkeypatch.setattr(preparing, "prepare_context", slow_build)
    info = runner.run(_spec(tmp_path / "run")).info
    assert info.setup_seconds >= 0.3
    assert info.framework_seconds <= info.loop_seconds - 0.3


def test_releasing_models_is_kept_out_of_framework_time(tmp_path, monkeypatch):
    from repainter.executors.worker import CaseWorker

    release = CaseWorker.release

    def slow_release(self, label):
        time.sleep(0.2)  # e.g. freeing a large model and its device memory
        return release(self, label)

    monkeypatch.setattr(CaseWorker, "release", slow_release)
    info = runner.run(_spec(tmp_path / "run")).info
    assert info.release_seconds >= 0.2
    assert info.framework_seconds <= info.loop_seconds - info.setup_seconds - 0.2


def test_import_repainter_loads_no_graph_library():
    code = ("import sys, repainter; "
            "print(any(m.split('.')[0] in ('langgraph', 'langchain_core', 'torch') "
            "for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_finished_rerun_recomputes_nothing_until_a_record_changes(tmp_path, monkeypatch):
    import repainter.report.html as html

    spec = _spec(tmp_path / "run")
    first = runner.run(spec)
    again = runner.run(spec)
    assert again.info.report == "current (no record changed)"
    assert again.leaderboard == first.leaderboard

    # `repainter report` reuses leaderboard.json's tables while the records are those it was
    # written from, and computes them again once one has changed
    calls = []
    monkeypatch.setattr(html, "build_metric_comparisons", lambda *a: calls.append(1) or {})
    html.write_report(spec.run_dir)
    assert calls == []
    record = next((spec.run_dir / "cases").glob("*/*.json"))
    record.write_text(record.read_text())  # rewritten: a new modification time
    html.write_report(spec.run_dir)
    assert calls == [1]
    assert runner.run(spec).info.report is None


def test_report_of_an_unchanged_run_reads_its_card_index_not_every_record(tmp_path, monkeypatch):
    import repainter.report.card_index as card_index
    import repainter.report.html as html
    from repainter.store import RunStore

    spec = _spec(tmp_path / "run")
    runner.run(spec)
    before = (spec.run_dir / "report" / "index.html").read_text()
    full_reads, detailed = [], []
    records, read_one = card_index.read_slim_records, RunStore.read_case_record
    counted = lambda store: full_reads.append(1) or records(store)  # noqa: E731
    monkeypatch.setattr(card_index, "read_slim_records", counted)
    monkeypatch.setattr(html, "read_slim_records", counted)
    monkeypatch.setattr(RunStore, "read_case_record",
                        lambda self, *key: detailed.append(key) or read_one(self, *key))
    html.write_report(spec.run_dir, max_detailed=1)
    assert full_reads == [] and len(detailed) == 1  # only the one detailed card's record
    html.write_report(spec.run_dir)
    assert full_reads == [] and (spec.run_dir / "report" / "index.html").read_text() == before

    record = next((spec.run_dir / "cases").glob("*/*.json"))
    record.write_text(record.read_text())
    html.write_report(spec.run_dir)
    assert full_reads == [1]


def test_a_report_from_the_card_index_with_a_stale_leaderboard_counts_the_rounds(tmp_path):
    # the card index leaves the rounds out; tables computed again must not read them from it
    import repainter.report.html as html

    spec = _spec(tmp_path / "run")
    result = runner.run(spec)
    (spec.run_dir / "leaderboard.json").unlink()  # stale / missing: tables are computed
    context = html.build_report_context(spec.run_dir)
    expected = {row.model: html.fmt(row.mean_rounds, 1) for row in result.leaderboard}
    assert all(float(v) > 0 for v in expected.values())
    assert {row["model"]: row["rounds"] for row in context["board"]} == expected
