"""The ``adaptive`` strategy: memory of the best prompt, no wording rendered twice, and a split of
each round between new wordings and re-samples decided by the observed score spreads."""

import pytest

from repainter.graph.strategy import (
    best_prompt,
    best_render,
    plan_round,
    resample_count,
    scores_by_prompt,
    spreads,
)
from repainter.runner import run
from repainter.spec import build_spec


def _round(*pairs):
    return {"candidates": [{"prompt": p, "selection": s, "variant": i}
                           for i, (p, s) in enumerate(pairs)]}


def test_one_lucky_render_does_not_crown_a_wording():
    # "lucky" scored once, high; "steady" three times, a bit lower on average but surely good
    rounds = [_round(("steady", 0.80), ("steady", 0.82), ("steady", 0.81)),
              _round(("lucky", 0.83), ("poor", 0.40), ("poor", 0.42))]
    assert best_prompt(scores_by_prompt(rounds)) == "steady"
    # the critique looks at the best render of the best prompt, not at the lucky render
    assert best_render(rounds, "steady")["selection"] == 0.82


def test_unscorable_renders_are_left_out():
    rounds = [{"candidates": [{"prompt": "a", "selection": None}, {"prompt": "b", "selection": 0.5}]}]
    assert scores_by_prompt(rounds) == {"b": [0.5]}


def test_the_split_follows_seed_spread_vs_wording_spread():
    seed_noise = {"a": [0.2, 0.9, 0.5], "b": [0.6, 0.3, 0.7]}  # same means, wide seed spread
    wording = {"a": [0.50, 0.51, 0.50], "b": [0.90, 0.91, 0.90]}  # wordings differ, seeds don't
    within, between = spreads(seed_noise)
    assert between == 0.0 and within > 0
    assert resample_count(seed_noise, 3) == 2  # luck: spend renders on seeds (one still explores)
    assert resample_count(wording, 3) == 0  # wording: spend renders on new wordings
    assert resample_count({"a": [0.5], "b": [0.7]}, 3) == 0  # seed spread unknown: explore
    assert resample_count(seed_noise, 1) == 0  # one variant: it explores


def test_plan_never_repeats_a_wording_and_fills_with_the_best_prompt():
    rounds = [_round(("base", 0.8), ("old", 0.5), ("other", 0.4))]

    def rewordings(prompt, n):  # an MLLM that mostly writes what was already tried
        return [prompt, "old", "new one"][:n]

    planned = plan_round(rounds, "base", "revised", 3, rewordings)
    assert planned == ["revised", "new one", "base"]  # "old" was rendered: a re-sample instead
    # round 1: the initial prompt and rewordings of it
    assert plan_round([], "init", None, 3, lambda p, n: [p, "w1", "w2"][:n]) == ["init", "w1", "w2"]


@pytest.fixture(scope="module")
def adaptive_run(tmp_path_factory):
    """The bench's default model and describer, 2 scenes, 3 rounds x 3 variants, adaptive."""
    out = tmp_path_factory.mktemp("adaptive") / "run"
    return run(build_spec({"output_dir": str(out), "dataset": {"limit": 2}, "judge": False,
                           "loop": {"rounds": 3, "variants": 3, "strategy": "adaptive"}}))


@pytest.mark.slow
def test_adaptive_run_revises_the_best_prompt_at_the_same_budget(adaptive_run):
    for record in adaptive_run.records:
        assert record.status == "done" and record.strategy == "adaptive"
        renders = [c for r in record.rounds for c in r.candidates]
        assert len(renders) == 9 and len({c.seed for c in renders}) == 9
        assert record.rounds[0].critique is not None and record.rounds[0].revised_prompt
        for number, round_ in enumerate(record.rounds[1:], start=1):
            earlier = {c.prompt for r in record.rounds[:number] for c in r.candidates}
            base = best_prompt(scores_by_prompt([r.model_dump() for r in record.rounds[:number]]))
            # a wording seen before comes back only as a re-sample of the best prompt
            assert all(c.prompt == base for c in round_.candidates if c.prompt in earlier)
            revised = record.rounds[number - 1].revised_prompt
            if revised not in earlier:  # a new revision is rendered first
                assert round_.candidates[0].prompt == revised
