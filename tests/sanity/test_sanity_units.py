"""The sanity ladders' parts, without models: statistics, the prompt ladder, the corruptions,
the verdict words and the leaderboard / report warning."""

from __future__ import annotations

import doctest
import importlib
import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from repainter.sanity.corruption import KINDS, corruption_ladder
from repainter.sanity.prompt_ladder import information_units, prompt_ladder
from repainter.sanity.statistics import (
    adjacent_tests,
    agreement_statistics,
    bootstrap_pooled_tau,
    holm,
    order_tau,
    pair_agreement,
)
from repainter.schemas import ImageUnderstandingTree


@pytest.mark.parametrize("name", ["sanity.statistics", "sanity.prompt_ladder",
                                  "sanity.corruption", "sanity.config", "report.sanity"])
def test_the_modules_examples_run(name):
    module = importlib.import_module(f"repainter.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_tau_counts_ties_as_zero_and_a_reversed_ladder_as_minus_one():
    assert order_tau(np.array([3.0, 2.0, 1.0])) == 1.0
    assert order_tau(np.array([1.0, 2.0, 3.0])) == -1.0
    assert order_tau(np.array([1.0, 1.0, 1.0])) == 0.0


def test_the_pooled_tau_interval_resamples_cases():
    rng = np.random.default_rng(0)
    clean = np.tile([0.9, 0.7, 0.5, 0.3], (30, 1)) + rng.normal(0, 0.01, (30, 4))
    assert bootstrap_pooled_tau(clean, 500, 0) == [1.0, 1.0]
    noisy = rng.normal(0, 1, (30, 4))
    low, high = bootstrap_pooled_tau(noisy, 500, 0)
    assert low < 0.5 < high or low < 0 < high


def test_adjacent_tests_separate_real_steps_and_not_flat_ones():
    rng = np.random.default_rng(1)
    scores = np.column_stack([np.full(20, 0.9), np.full(20, 0.5), np.full(20, 0.5)])
    scores = scores + rng.normal(0, 0.01, scores.shape)
    found = adjacent_tests(scores, alpha=0.05)
    assert [t["separated"] for t in found] == [True, False]
    assert found[0]["p_holm"] >= found[0]["p"]


def test_holm_is_monotone_and_capped():
    assert holm([0.5, 0.01]) == [0.5, 0.02]
    assert holm([0.9, 0.8]) == [1.0, 1.0]
    assert holm([0.04, 0.3]) == [0.08, 0.3]


def test_pair_agreement_leaves_ties_of_the_reference_score_out():
    judge = np.array([5.0, 5.0, 1.0])
    selection = np.array([0.9, 0.5, 0.1])
    agree, ordered, ties = pair_agreement(judge, selection)
    assert (agree, ordered, ties) == (2, 2, 1)
    stats = agreement_statistics([(2, 2, 1), (1, 2, 0)], resamples=200, seed=0)
    assert stats["rate"] == 0.75 and stats["pairs"] == 4 and stats["judge_ties"] == 1


def _tree() -> ImageUnderstandingTree:
    return ImageUnderstandingTree(
        global_description="a red cat on a blue sofa beside a lamp",
        global_features={"style": "photo", "lighting": "soft"},
        objects=[{"name": "cat", "attributes": {"color": "red", "size": "small"}},
                 {"name": "sofa", "attributes": {"color": "blue", "material": "velvet"}},
                 {"name": "lamp", "attributes": {"color": "brass"}}],
        relationships=[{"subject": "cat", "relation": "on", "object": "sofa"},
                       {"subject": "lamp", "relation": "beside", "object": "sofa"}])


def _said(tree: ImageUnderstandingTree) -> set[str]:
    """Everything a tree says, as strings."""
    said = {f"o:{o.name}" for o in tree.objects}
    said |= {f"a:{o.name}:{k}={v}" for o in tree.objects
             for k, v in o.attributes.model_dump().items() if v}
    said |= {f"r:{r.subject} {r.relation} {r.object}" for r in tree.relationships}
    return said | {f"g:{k}={v}" for k, v in tree.global_features.model_dump().items() if v}


def test_each_prompt_rung_says_strictly_less_than_the_one_above():
    trees = prompt_ladder(_tree(), rungs=5, seed=0, case_id="c1")
    said = [_said(t) for t in trees]
    for upper, lower in zip(said, said[1:], strict=False):
        assert lower < upper  # a strict subset: nested by construction
    assert trees[0].global_description and not any(t.global_description for t in trees[1:])
    names = {o.name for o in trees[-1].objects}
    assert all({r.subject, r.object} <= names for r in trees[-1].relationships)


def test_the_drops_depend_on_the_case_and_seed_not_on_anything_else():
    first = [t.model_dump() for t in prompt_ladder(_tree(), rungs=4, seed=3, case_id="c1")]
    again = [t.model_dump() for t in prompt_ladder(_tree(), rungs=4, seed=3, case_id="c1")]
    other = [t.model_dump() for t in prompt_ladder(_tree(), rungs=4, seed=4, case_id="c1")]
    assert first == again and first != other
    assert len(information_units(_tree())) == 12  # 3 objects, 5 attributes, 2 relations, 2 global


def _picture() -> Image.Image:
    image = Image.new("RGB", (64, 64), (235, 235, 220))
    draw = ImageDraw.Draw(image)
    draw.ellipse((14, 14, 44, 44), fill=(200, 30, 30))
    draw.rectangle((40, 44, 60, 60), fill=(30, 60, 200))
    return image


@pytest.mark.parametrize("kind", KINDS)
def test_every_corruption_moves_further_from_the_render_as_it_strengthens(kind):
    image = _picture()
    other = Image.new("RGB", (64, 64), (20, 160, 40))
    rungs = corruption_ladder(image, kind, rungs=5, seed=7, other=other)
    assert np.array_equal(np.asarray(rungs[0]), np.asarray(image))
    distance = [np.abs(np.asarray(r, float) - np.asarray(image, float)).mean() for r in rungs]
    assert all(b > a for a, b in zip(distance, distance[1:], strict=False)), distance
    again = corruption_ladder(image, kind, rungs=5, seed=7, other=other)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(rungs, again,
                                                                           strict=True))


def _sanity_data(tau: float, verdict: str) -> dict:
    stats = {"tau": tau, "tau_ci": [tau - 0.1, tau], "verdict": verdict,
             "adjacent": [{"separated": True}]}
    return {"kind": "repainter-sanity", "command": "repainter sanity", "cases": ["a", "b"],
            "spec": {"selection": {"clip_i": 0.5, "dinov2": 0.5}, "t2i": ["sd15", "flux"]},
            "ladders": {"prompt": {"title": "prompt-information ladder", "required": True,
                                   "models": {"sd15": {"cases": 2, "rungs": ["a", "b"],
                                                       "metrics": {"selection": stats}}}}},
            "selection_check": {"sd15": {"measured": ["prompt"],
                                         "failed": [] if verdict == "orders" else ["prompt"],
                                         "passes": verdict == "orders"}}}


def test_the_leaderboard_warns_about_a_model_the_selection_fails_on(tmp_path):
    from repainter.report.sanity import refresh_leaderboard_section, sanity_view

    (tmp_path / "leaderboard.md").write_text("## Leaderboard\n\n| model |\n\n## Next\n\nkept\n")
    (tmp_path / "sanity.json").write_text(json.dumps(_sanity_data(0.4, "fails")))
    refresh_leaderboard_section(tmp_path, ["sd15", "flux"])
    text = (tmp_path / "leaderboard.md").read_text()
    assert "**Warning**: selection (0.5 clip_i + 0.5 dinov2) fails its own sanity check on " \
           "**sd15** (prompt-information ladder at tau 0.40 [0.30, 0.40])" in text
    assert "Not checked: flux" in text and "kept" in text
    assert sanity_view(tmp_path)["warnings"] == [
        "selection (0.5 clip_i + 0.5 dinov2) fails its own sanity check on sd15 "
        "(prompt-information ladder at tau 0.40 [0.30, 0.40]): its ranking of sd15 is not to be "
        "trusted"]
    # run again after the check passes: the warning is replaced, not kept beside the new line
    (tmp_path / "sanity.json").write_text(json.dumps(_sanity_data(1.0, "orders")))
    refresh_leaderboard_section(tmp_path, ["sd15"])
    text = (tmp_path / "leaderboard.md").read_text()
    assert "Warning" not in text and text.count("## Metric sanity") == 1
    assert "orders every required sanity ladder for sd15" in text
    assert sanity_view(tmp_path)["warnings"] == []


def test_a_folder_without_sanity_json_gets_no_section(tmp_path):
    from repainter.report.sanity import refresh_leaderboard_section, sanity_view

    (tmp_path / "leaderboard.md").write_text("## Leaderboard\n")
    refresh_leaderboard_section(tmp_path, ["sd15"])
    assert (tmp_path / "leaderboard.md").read_text() == "## Leaderboard\n"
    assert sanity_view(tmp_path) is None
