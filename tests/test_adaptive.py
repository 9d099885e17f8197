"""Adaptive (sequential) evaluation: the anytime-valid test and the adaptive budget (issue 17)."""

from __future__ import annotations

import json

import numpy as np

from repainter.adaptive import reference_order, sequential_decision
from repainter.runner import run
from repainter.spec import build_spec

FAITHFUL = {"name": "sim", "label": "faithful",
            "params": {"vocabulary": 1.0, "order_drop": 0.0, "binding_leak": 0.0,
                       "count_error": 0.0, "spatial_error": 0.0, "background_bias": 0.0,
                       "style_bias": 0.0}}
BROKEN = {"name": "sim", "label": "broken",
          "params": {"spatial_error": 0.9, "count_error": 0.6, "binding_leak": 0.6,
                     "vocabulary": 0.2}}


def adaptive_spec(tmp_path, t2i, *, max_cases=40, **budget):
    return build_spec({
        "name": "adaptive", "output_dir": str(tmp_path / "run"), "t2i": t2i,
        "metrics": ["scene_truth"], "selection": {"scene_truth": 1.0}, "judge": False,
        "loop": {"rounds": 1, "variants": 1}, "dataset": {"limit": 40},
        "budget": {"mode": "adaptive", "min_cases": 6, "batch": 6, "max_cases": max_cases,
                   "alpha": 0.05, **budget},
    })


def test_seeded_stream_decides_early_on_clear_differences_and_never_on_null():
    rng = np.random.default_rng(3)
    clear = rng.normal(0.25, 0.1, size=200)
    decided = sequential_decision("a", "b", clear, 0.05)
    assert decided.decision == "a>b" and decided.decided_after < 40
    flipped = sequential_decision("a", "b", -clear, 0.05)
    assert flipped.decision == "b>a"
    assert sequential_decision("a", "b", np.zeros(200), 0.05).decision is None


def test_type_one_error_on_null_streams_is_at_most_alpha():
    rng = np.random.default_rng(0)
    alpha, streams = 0.1, 400
    rejections = 0
    for _ in range(streams):  # symmetric differences: mean exactly 0, every look allowed
        diffs = rng.choice([-1.0, 1.0], size=150) * rng.beta(2, 5, size=150)
        rejections += sequential_decision("a", "b", diffs, alpha).decision is not None
    assert rejections / streams <= alpha


def test_reference_order_is_seeded_and_a_permutation():
    ids = [f"c{i}" for i in range(10)]
    assert sorted(reference_order(ids, 1)) == ids
    assert reference_order(ids, 1) == reference_order(ids, 1) != reference_order(ids, 2)


def test_adaptive_run_stops_early_on_clearly_different_models(tmp_path):
    result = run(adaptive_spec(tmp_path, [FAITHFUL, BROKEN]))
    summary = result.info.adaptive
    assert summary.all_pairs_decided and summary.stopped_early
    assert summary.references_used < 40 and summary.references_saved > 0
    assert summary.pairs[0].decision == "a>b"  # faithful above broken
    assert {r.case_id for r in result.records} == set(summary.order)
    run_json = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run_json["adaptive"]["references_used"] == summary.references_used
    assert "## Adaptive budget" in (tmp_path / "run" / "leaderboard.md").read_text()
    board = json.loads((tmp_path / "run" / "leaderboard.json").read_text())
    assert board["adaptive"]["references_used"] == summary.references_used
    assert board["adaptive"]["order"] is None  # the order stays in run.json
    assert "adaptive budget" in (tmp_path / "run" / "report" / "index.html").read_text()


def test_adaptive_run_uses_every_reference_on_identical_models(tmp_path):
    twin = {**FAITHFUL, "label": "twin"}
    result = run(adaptive_spec(tmp_path, [FAITHFUL, twin], max_cases=18))
    summary = result.info.adaptive
    assert summary.references_used == 18 and not summary.all_pairs_decided
    assert summary.pairs[0].decision is None


def test_growing_the_budget_continues_and_keeps_what_ran(tmp_path):
    twin = {**FAITHFUL, "label": "twin"}
    first = run(adaptive_spec(tmp_path, [FAITHFUL, twin], max_cases=12))
    before = {(r.model, r.case_id): r.final_scores for r in first.records}
    grown = run(adaptive_spec(tmp_path, [FAITHFUL, twin], max_cases=18))
    assert grown.info.adaptive.order[:12] == first.info.adaptive.order
    after = {(r.model, r.case_id): r.final_scores for r in grown.records}
    assert all(after[key] == value for key, value in before.items())
    assert grown.info.cases.reused == 24 and grown.info.cases.done == 12
