"""The ``adaptive`` strategy: memory of the best prompt, no wording rendered twice, and a revision
only for the differences that recur across renders of the best prompt (luck is re-sampled)."""

import pytest

from repainter.graph.strategy import (
    base_renders,
    best_prompt,
    best_render,
    plan_round,
    recurring_differences,
    scores_by_prompt,
)
from repainter.runner import run
from repainter.schemas import Critique, Difference
from repainter.spec import build_spec


def _round(*pairs):
    return {"candidates": [{"prompt": p, "selection": s, "variant": i}
                           for i, (p, s) in enumerate(pairs)]}


def _diff(target, change, description="what differs"):
    return Difference(aspect="content", target=target, change=change, description=description)


def test_one_lucky_render_does_not_crown_a_wording():
    # "lucky" scored once, high; "steady" three times, a bit lower on average but surely good
    rounds = [_round(("steady", 0.80), ("steady", 0.82), ("steady", 0.81)),
              _round(("lucky", 0.83), ("poor", 0.40), ("poor", 0.42))]
    assert best_prompt(scores_by_prompt(rounds)) == "steady"
    # the critiques look at the best prompt's renders, best first, not at the lucky render
    assert [c["selection"] for c in base_renders(rounds, 2)] == [0.82, 0.81]
    assert best_render(rounds)["selection"] == 0.82


def test_unscorable_renders_are_left_out():
    rounds = [{"candidates": [{"prompt": "a", "selection": None}, {"prompt": "b", "selection": 0.5}]}]
    assert scores_by_prompt(rounds) == {"b": [0.5]}


def test_only_differences_found_in_two_renders_are_revised():
    missing = _diff("clause:2", "op=missing; shape=star")
    luck = _diff("clause:0", "op=attribute; kind=x; want=left; drawn=center")
    other_luck = _diff("clause:1", "op=attribute; kind=color; want=red; drawn=blue")
    found, basis = recurring_differences([Critique(differences=[luck, missing]),
                                          Critique(differences=[missing, other_luck]),
                                          Critique(differences=[])])
    assert found.differences == [missing]
    assert basis == "1 of 3 differences recur in at least 2 of 3 renders of the best prompt"
    # nothing recurs: the failures were luck, and the merged critique is empty
    found, _ = recurring_differences([Critique(differences=[luck]), Critique(differences=[other_luck])])
    assert found.differences == []


def test_free_text_critiques_fall_back_to_the_best_render():
    best = Critique(differences=[Difference(description="the dog should be brown")])
    found, basis = recurring_differences([best, Critique(differences=[
        Difference(description="the dog is black, not brown")])])
    assert found == best and "free-text" in basis
    # one render of the best prompt: its critique as it is
    assert recurring_differences([best]) == (best, "the best prompt's only render")


def test_plan_renders_the_revision_with_every_seed_or_resamples_the_base():
    rounds = [_round(("base", 0.8), ("base", 0.7), ("base", 0.75))]
    assert plan_round([], "init", None, 3) == ["init", "init", "init"]
    assert plan_round(rounds, "base", "revised", 3) == ["revised"] * 3
    # a wording already rendered, or no revision (nothing recurred): re-sample the base
    assert plan_round(rounds, "base", "base", 3) == ["base"] * 3
    later = [*rounds, _round(("revised", 0.5), ("revised", 0.4), ("revised", 0.45))]
    assert plan_round(later, "base", None, 3) == ["base"] * 3  # the worse revision is forgotten


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
        first = record.rounds[0]
        assert {c.prompt for c in first.candidates} == {record.initial_prompt}
        assert first.critique is not None and "renders of the best prompt" in first.critique_basis
        for number, round_ in enumerate(record.rounds[1:], start=1):
            earlier = [r.model_dump() for r in record.rounds[:number]]
            tried = {c["prompt"] for r in earlier for c in r["candidates"]}
            revised = record.rounds[number - 1].revised_prompt
            expected = revised if revised and revised not in tried else best_prompt(
                scores_by_prompt(earlier))
            assert {c.prompt for c in round_.candidates} == {expected}


def test_critique_renders_is_a_loop_setting_written_only_when_set():
    spec = build_spec({"loop": {"strategy": "adaptive", "critique_renders": 5}})
    assert spec.loop.critique_renders == 5
    assert spec.model_dump()["loop"]["critique_renders"] == 5
    # the default stays out of spec.yaml, so older specs keep their text and fingerprint
    assert "critique_renders" not in build_spec({}).model_dump()["loop"]
    with pytest.raises(ValueError):
        build_spec({"loop": {"critique_renders": 0}})
