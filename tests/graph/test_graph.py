"""The whole loop through the compiled graph, on the built-in world."""

from statistics import fmean

import pytest

from repainter.graph.build import NODES
from repainter.runner import run
from repainter.spec import build_spec


@pytest.fixture(scope="module")
def world_run(tmp_path_factory):
    """The default spec (every bundled scene, 3 rounds x 3 variants) in a temp folder."""
    out = tmp_path_factory.mktemp("world") / "run"
    return run(build_spec({"preset": "world", "output_dir": str(out)}))


@pytest.mark.slow
def test_every_case_is_scored_and_laid_out(world_run):
    root = world_run.run_dir
    assert len(world_run.records) >= 24
    assert all(r.done for r in world_run.records)
    for name in ("spec.yaml", "run.json", "results.jsonl", "leaderboard.json", "leaderboard.csv",
                 "leaderboard.md", "checkpoints.sqlite"):
        assert (root / name).is_file(), name
    record = world_run.records[0]
    assert (root / record.reference).is_file()
    assert (root / record.best.image).is_file()
    assert len(record.rounds) == 3 and all(len(r.candidates) == 3 for r in record.rounds)
    assert record.iut.global_description and record.ground_truth
    lines = (root / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(world_run.records)


@pytest.mark.slow
def test_best_ever_score_never_decreases(world_run):
    for record in world_run.records:
        curve = record.best_ever_by_round
        assert all(b >= a for a, b in zip(curve, curve[1:])), record.case_id
        assert curve[-1] == record.final_scores["selection"]
        round_bests = [r.round_best_selection for r in record.rounds]
        assert curve[-1] == max(round_bests)


@pytest.mark.slow
def test_loop_improves_selection_and_ground_truth_fidelity(world_run):
    done = world_run.records
    r1 = fmean(r.round1_best.selection for r in done)
    final = fmean(r.final_scores["selection"] for r in done)
    f1_r1 = fmean(r.round1_best.scores["object_f1"] for r in done)
    f1_final = fmean(r.final_scores["object_f1"] for r in done)
    assert final > r1 + 0.02, (r1, final)
    assert f1_final > f1_r1, (f1_r1, f1_final)


@pytest.mark.slow
def test_every_node_ran(world_run):
    record = world_run.records[0]
    assert record.draft_prompt and record.initial_prompt  # describe, compose_prompt
    assert record.rounds[0].critique is not None  # critique
    assert record.rounds[0].revised_prompt  # revise
    assert record.judgement  # judge
    assert len(NODES) == 11


@pytest.mark.slow
def test_a_rerun_of_a_finished_run_redoes_nothing(world_run):
    again = run(world_run.spec)
    assert again.info.cases.reused == len(world_run.records)
    assert again.info.cases.done == 0
    assert again.leaderboard == world_run.leaderboard


def test_early_stop_on_target_ends_cases_sooner(tmp_path):
    spec = build_spec({"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 3},
                       "loop": {"rounds": 4, "early_stop": {"target": 0.0}}})
    result = run(spec)
    assert all(len(r.rounds) == 1 and r.stop_reason == "target_reached" for r in result.records)


@pytest.mark.slow
def test_retrieve_or_generate_decision_is_recorded_and_checked_against_ground_truth(tmp_path):
    spec = build_spec({"preset": "world",
        "output_dir": str(tmp_path / "run"), "dataset": {"limit": 6},
        "loop": {"rounds": 2, "variants": 2},
        "t2i": ["procedural",
                {"name": "procedural", "label": "colourblind", "params": {"ignore": ["color"]}},
                {"name": "retrieval", "params": {"gallery": {"name": "world"}, "method": "scene",
                                                 "cache_dir": False}}],
        "decision": {"retriever": "retrieval", "rule": "metric", "metric": "selection"},
    })
    result = run(spec)
    rows = {row.model: row for row in result.leaderboard}
    assert rows["retrieval"].decision is None  # the retriever decides nothing for itself
    for model in ("procedural", "colourblind"):
        assert rows[model].decision.cases == 6
        for record in (r for r in result.records if r.model == model):
            decision = record.decision
            assert decision.choice in ("generated", "retrieved")
            assert (result.run_dir / decision.retrieved.image).is_file()
            expected = ("retrieved" if decision.retrieved_value > decision.generated_value
                        else "generated")
            assert decision.choice == expected
    # the faithful generator beats retrieval from other scenes, and the ground truth agrees
    assert rows["procedural"].decision.retrieved_share == 0.0
    assert rows["procedural"].decision.accuracy == 1.0


def test_decision_by_the_mllm_judge_with_a_margin(tmp_path):
    spec = build_spec({"preset": "world",
        "output_dir": str(tmp_path / "run"), "dataset": {"limit": 3},
        "loop": {"rounds": 1, "variants": 2},
        "t2i": ["procedural", {"name": "retrieval", "params": {"gallery": {"name": "world"},
                                                               "method": "scene", "cache_dir": False}}],
        "decision": {"retriever": "retrieval", "rule": "mllm", "margin": 1.0},
    })
    result = run(spec)
    for record in (r for r in result.records if r.model == "procedural"):
        decision = record.decision
        assert decision.rule == "mllm"
        # judge scores: aesthetic + semantic, each 1-5
        assert 2 <= decision.generated_value <= 10 and 2 <= decision.retrieved_value <= 10
        wins = decision.retrieved_value > decision.generated_value + 1.0
        assert decision.choice == ("retrieved" if wins else "generated")


def test_decision_spec_is_validated():
    from repainter.spec import SpecError

    with pytest.raises(SpecError, match="not a T2I label"):
        build_spec({"preset": "world", "decision": {"retriever": "nope"}})
