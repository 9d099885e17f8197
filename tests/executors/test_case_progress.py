"""The local executor saves an unfinished case's state node by node in one row of
checkpoints.sqlite (issue 28: no LangGraph checkpoint per step), resumes from it, and still
resumes the LangGraph checkpoints an earlier version left."""

import sqlite3

import pytest

import repainter.executors.local as local_executor
import repainter.executors.prepare as prepare_module
from repainter.executors.worker import CaseWorker
from repainter.runner import run
from repainter.testing.t2i_faults import CrashOnce


@pytest.fixture
def crash_first_case(monkeypatch):
    original = prepare_module.prepare_context

    def prepare(spec, store):  # the second render call is round 2 of the first case
        ctx, items, components = original(spec, store)
        ctx.t2i = {label: CrashOnce(backend, crash_on_call=2) for label, backend in ctx.t2i.items()}
        return ctx, items, components

    monkeypatch.setattr(prepare_module, "prepare_context", prepare)
    return lambda: monkeypatch.setattr(prepare_module, "prepare_context", original)


def _rows(run_dir, table: str) -> list[tuple]:
    with sqlite3.connect(run_dir / "checkpoints.sqlite") as conn:
        known = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if table not in known:
            return []
        column = "thread_id, node" if table == "case_progress" else "thread_id"
        return conn.execute(f"SELECT {column} FROM {table}").fetchall()


def _round1_stamps(spec, case_id):
    return {p: p.stat().st_mtime_ns for p in (spec.run_dir / "images").glob(f"*/{case_id}/r1_*.png")}


def test_an_interrupted_case_leaves_one_row_at_its_last_node_and_resumes_from_it(
        small_spec, crash_first_case):
    failed = [r for r in run(small_spec).records if r.status == "failed"]
    assert len(failed) == 1
    thread = f"{failed[0].model}::{failed[0].case_id}"
    # round 2's variants were written, its render failed: the row is the state after them
    assert _rows(small_spec.run_dir, "case_progress") == [(thread, "write_variants")]
    assert _rows(small_spec.run_dir, "checkpoints") == []  # no LangGraph checkpoint per step
    stamps = _round1_stamps(small_spec, failed[0].case_id)
    assert stamps

    crash_first_case()  # the next run renders without crashing
    again = run(small_spec)
    record = next(r for r in again.records if r.case_id == failed[0].case_id)
    assert record.done and len(record.rounds) == 2
    assert _round1_stamps(small_spec, failed[0].case_id) == stamps, "round 1 was rendered again"
    assert _rows(small_spec.run_dir, "case_progress") == []
    assert _rows(small_spec.run_dir, "checkpoints") == []  # the resumed case's are pruned too


class _CheckpointingWorker(CaseWorker):
    """The worker as an earlier version ran it: LangGraph checkpoints after every step."""

    def __init__(self, ctx, components, checkpointer=None, progress=None):
        super().__init__(ctx, components, checkpointer)


def test_langgraph_checkpoints_of_an_earlier_version_still_resume(
        small_spec, crash_first_case, monkeypatch):
    monkeypatch.setattr(local_executor, "CaseWorker", _CheckpointingWorker)
    failed = [r for r in run(small_spec).records if r.status == "failed"]
    assert len(failed) == 1 and _rows(small_spec.run_dir, "checkpoints")
    stamps = _round1_stamps(small_spec, failed[0].case_id)

    crash_first_case()
    monkeypatch.setattr(local_executor, "CaseWorker", CaseWorker)
    record = next(r for r in run(small_spec).records if r.case_id == failed[0].case_id)
    assert record.done and len(record.rounds) == 2
    assert _round1_stamps(small_spec, failed[0].case_id) == stamps, "round 1 was rendered again"
    assert _rows(small_spec.run_dir, "checkpoints") == []
