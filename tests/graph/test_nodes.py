"""Each node of the loop, driven by the built-in backends on a bundled world scene."""

import pytest

from repainter.executors.prepare import prepare_context
from repainter.graph import nodes
from repainter.schemas import Critique, ImageUnderstandingTree
from repainter.spec import build_spec
from repainter.store import RunStore


@pytest.fixture
def ctx(tmp_path):
    spec = build_spec({"preset": "world", "output_dir": str(tmp_path / "run"), "dataset": {"limit": 2},
                       "loop": {"rounds": 2, "variants": 3}})
    store = RunStore(spec.run_dir)
    store.init(spec)
    context, items, _ = prepare_context(spec, store)
    context.case_id = items[0].id
    return context


def _state(ctx, **extra):
    return {"case_id": ctx.case_id, "model": "procedural", **extra}


def _through(ctx, *steps, **state):
    state = _state(ctx, **state)
    for step in steps:
        state = {**state, **step(state, ctx)}
    return state


def test_describe_writes_a_valid_iut_once(ctx):
    update = nodes.describe(_state(ctx), ctx)
    iut = ImageUnderstandingTree.model_validate(update["iut"])
    assert iut.global_description and 1 <= len(iut.objects) <= 5
    assert ctx.store.load_description(ctx.case_id) == update["iut"]
    ctx.mllm.describe = lambda *a, **k: pytest.fail("described twice")
    assert nodes.describe(_state(ctx), ctx) == update


def test_compose_prompt_starts_the_loop(ctx):
    state = _through(ctx, nodes.describe, nodes.compose_prompt)
    assert state["prompt"] == state["initial_prompt"] and "," in state["prompt"]
    assert state["draft_prompt"] and state["round"] == 0 and state["best"] is None


def test_variants_get_distinct_fixed_seeds(ctx):
    state = _through(ctx, nodes.describe, nodes.compose_prompt, nodes.write_variants)
    pending = state["pending"]
    assert len(pending) == 3 and pending[0]["round"] == 1
    assert len({c["seed"] for c in pending}) == 3
    again = nodes.write_variants(state, ctx)["pending"]
    assert [c["seed"] for c in again] == [c["seed"] for c in pending]
    assert [c["prompt"] for c in again] == [c["prompt"] for c in pending]


def test_generate_stores_one_image_per_variant(ctx):
    state = _through(ctx, nodes.describe, nodes.compose_prompt, nodes.write_variants, nodes.generate)
    for candidate in state["pending"]:
        assert (ctx.store.root / candidate["image"]).is_file()
        assert candidate["flagged"] is None


def test_score_fills_every_metric_and_the_weighted_selection(ctx):
    state = _through(ctx, nodes.describe, nodes.compose_prompt, nodes.write_variants,
                     nodes.generate, nodes.score)
    for candidate in state["pending"]:
        scores = candidate["scores"]
        assert set(scores) == {"ssim", "color_histogram", "object_f1"}
        expected = 0.5 * scores["ssim"] + 0.5 * scores["color_histogram"]
        assert candidate["selection"] == pytest.approx(expected)


def test_score_marks_flagged_candidates_unselectable(ctx):
    state = _through(ctx, nodes.describe, nodes.compose_prompt, nodes.write_variants, nodes.generate)
    state["pending"][0] = {**state["pending"][0], "flagged": "safety_checker_blanked"}
    scored = nodes.score(state, ctx)["pending"]
    assert scored[0]["selection"] is None and "flagged" in scored[0]["invalid_reason"]
    assert all(c["selection"] is not None for c in scored[1:])


def test_select_keeps_the_best_ever_and_stops_at_the_round_limit(ctx):
    state = _through(ctx, nodes.describe, nodes.compose_prompt, nodes.write_variants,
                     nodes.generate, nodes.score, nodes.select)
    best = state["best"]
    assert best["selection"] == max(c["selection"] for c in state["rounds"][0]["candidates"])
    assert "stop_reason" not in state and nodes.after_select(state) == "critique"
    worse = [{**c, "round": 2, "selection": c["selection"] - 1.0}
             for c in state["rounds"][0]["candidates"]]
    final = {**state, **nodes.select({**state, "pending": worse}, ctx)}
    assert final["best"] == best, "a worse round replaced the best-ever candidate"
    assert final["stop_reason"] == "round_limit" and nodes.after_select(final) == "judge"


def test_critique_and_revise_change_the_prompt(ctx):
    state = _through(ctx, nodes.describe, nodes.compose_prompt, nodes.write_variants,
                     nodes.generate, nodes.score, nodes.select, nodes.critique, nodes.revise)
    critique = Critique.model_validate(state["rounds"][-1]["critique"])
    assert isinstance(critique.differences, list)
    assert state["rounds"][-1]["revised_prompt"] == state["prompt"]
    if critique.differences:
        assert state["prompt"] != state["best"]["prompt"]


def test_judge_and_finalize_write_the_record(ctx):
    state = _through(ctx, nodes.describe, nodes.compose_prompt, nodes.write_variants,
                     nodes.generate, nodes.score, nodes.select, nodes.judge, nodes.finalize)
    assert 1 <= state["judgement"]["aesthetic"] <= 5 and 1 <= state["judgement"]["semantic"] <= 5
    record = ctx.store.read_case_record("procedural", ctx.case_id)
    assert record["status"] == "done"
    assert record["final_scores"]["selection"] == state["best"]["selection"]
    assert record["ground_truth"]["objects"]
    assert record["round1_best"] == state["best"]


def test_judge_without_any_scorable_candidate_fails_the_case(ctx):
    with pytest.raises(nodes.CaseFailure, match="no round produced"):
        nodes.judge(_state(ctx, best=None), ctx)
