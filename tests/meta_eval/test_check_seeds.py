"""``repainter meta-eval --seeds auto``: held-out check seeds drawn by rule, and VALIDITY.md's
table of which seeds tuned what."""

from __future__ import annotations

import pytest

from repainter.bench.meta_eval import MetaEvalConfig
from repainter.bench.meta_eval import check_seeds as rule


def test_the_rule_is_reproducible_fresh_per_source_and_avoids_used_seeds():
    first = rule.draw_check_seeds("commit-a")
    assert first == rule.draw_check_seeds("commit-a")
    assert first != rule.draw_check_seeds("commit-b")
    assert len(set(first)) == 3 and not set(first) & rule.USED_SEEDS
    assert all(rule.SEED_FLOOR <= s < rule.SEED_CEILING for s in first)
    assert {0, 1, 2, 9, 10, 11, 12, 13, 14} <= rule.USED_SEEDS
    assert len(rule.draw_check_seeds("commit-a", count=20)) == 20


def test_auto_seeds_hash_the_git_commit(monkeypatch):
    monkeypatch.setattr(rule, "git_commit", lambda folder=None: "abc123")
    config = MetaEvalConfig(seeds="auto")
    assert config.seeds == rule.draw_check_seeds("abc123")
    assert config.seeds_drawn_from == "git commit abc123"


def test_auto_seeds_outside_git_need_a_given_string(monkeypatch):
    monkeypatch.setattr(rule, "git_commit", lambda folder=None: None)
    with pytest.raises(ValueError, match="seed_rule"):
        MetaEvalConfig(seeds="auto")
    config = MetaEvalConfig(seeds="auto", seed_rule="release-1.0")
    assert config.seeds == rule.draw_check_seeds("release-1.0")
    assert config.seeds_drawn_from == "seed_rule 'release-1.0'"
    assert MetaEvalConfig(seeds=[4, 5]).seeds_drawn_from is None  # by hand: said so


def test_the_command_line_takes_auto(monkeypatch):
    from repainter.bench.cli import _config

    monkeypatch.setattr(rule, "git_commit", lambda folder=None: "def456")
    checked = _config({}, seeds="auto", parts=None, quick=True, config=None)
    assert checked.seeds == rule.draw_check_seeds("def456")


def test_validity_says_which_seeds_tuned_what():
    from repainter.bench.meta_eval.summary import validity_markdown

    config = MetaEvalConfig(seeds="auto", seed_rule="x")
    text = validity_markdown({"bench": "sim", "config": config.model_dump(mode="json")})
    assert "## Seeds: which tuned what" in text
    assert "| 0, 1, 2 | acceptance:" in text and "| 12, 13, 14 | held out" in text
    drawn = ", ".join(map(str, config.seeds))
    assert f"| {drawn} | this check, drawn by rule from seed_rule 'x'" in text
