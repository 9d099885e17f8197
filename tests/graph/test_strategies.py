"""Loop strategies: the reference method's loop (refine), the default (adaptive) and the
baselines at equal render budget."""

import json

import pytest

from repainter.runner import run
from repainter.spec import build_spec


@pytest.fixture(scope="module")
def strategies_run(tmp_path_factory):
    """One T2I model three times, labelled by strategy: 3 references x 2 rounds x 2 variants."""
    out = tmp_path_factory.mktemp("strategies") / "run"
    return run(build_spec({
        "preset": "world", "output_dir": str(out), "dataset": {"limit": 3}, "loop": {"rounds": 2, "variants": 2},
        "t2i": [{"name": "procedural", "label": "refine", "strategy": "refine"},
                {"name": "procedural", "label": "best-of-n", "strategy": "best_of_n"},
                {"name": "procedural", "label": "one-shot", "strategy": "one_shot"}],
    }))


def _records(result, label):
    return [r for r in result.records if r.model == label]


def _renders(record):
    return [c for r in record.rounds for c in r.candidates]


def test_best_of_n_has_the_refine_render_budget_with_distinct_seeds(strategies_run):
    for refine, best in zip(_records(strategies_run, "refine"), _records(strategies_run, "best-of-n"),
                            strict=True):
        assert len(_renders(best)) == len(_renders(refine)) == 4
        seeds = [c.seed for c in _renders(best)]
        assert len(set(seeds)) == len(seeds)
        # the same seeds as the method: a paired comparison of prompts, not of luck
        assert seeds == [c.seed for c in _renders(refine)]
        assert {c.prompt for c in _renders(best)} == {best.initial_prompt}
        assert best.strategy == "best_of_n" and refine.strategy is None


def test_baselines_make_no_critique_or_revision(strategies_run):
    for label in ("best-of-n", "one-shot"):
        for record in _records(strategies_run, label):
            assert all(r.critique is None and r.revised_prompt is None for r in record.rounds)
    # every critique / revise / variant-writing call the MLLM made is the method's own:
    # 3 cases x 1 critique and revision (2 rounds), 3 cases x 2 rounds of variants
    calls = strategies_run.info.mllm_usage
    assert calls["calls_critique"] == calls["calls_revise"] == 3
    assert calls["calls_write_variants"] == 6


def test_one_shot_renders_the_initial_prompt_once(strategies_run):
    for record in _records(strategies_run, "one-shot"):
        (only,) = _renders(record)
        assert only.prompt == record.initial_prompt
        assert record.stop_reason == "round_limit"


def test_refine_still_critiques_and_the_leaderboard_tests_the_gain(strategies_run):
    for record in _records(strategies_run, "refine"):
        assert record.rounds[0].critique is not None
    board = json.loads((strategies_run.run_dir / "leaderboard.json").read_text())
    assert board["correction"] == "holm"
    pairs = {(c["model_a"], c["model_b"]) for c in board["comparisons"]["selection"]["tests"]}
    assert {("refine", "best-of-n"), ("best-of-n", "refine")} & pairs
    assert set(board["comparisons"]) >= {"selection", "ssim", "object_f1"}
    assert "strategy: best_of_n" in (strategies_run.run_dir / "spec.yaml").read_text()


def test_the_default_strategy_is_adaptive_and_every_spec_says_which_ran(tmp_path):
    spec = build_spec({})
    assert spec.strategy_of("procedural") == "adaptive"
    assert "strategy: adaptive" in spec.to_yaml() and "seeds" not in spec.to_yaml()
    assert build_spec({"loop": {"strategy": "adaptive"}}).fingerprint() == spec.fingerprint()
    # the reference method's preset keeps its own loop
    assert build_spec({"preset": "paper"}).loop.strategy == "refine"
    # a run folder's spec.yaml from before 0.3.0 left the default (refine) out: it still
    # means refine, so that run is never resumed with another loop
    from repainter.spec import load_run_spec, load_spec

    old = tmp_path / "run" / "spec.yaml"
    old.parent.mkdir()
    old.write_text(build_spec({"loop": {"strategy": "refine"}}).to_yaml().replace(
        "  strategy: refine\n", ""))
    assert "strategy" not in old.read_text()
    assert load_run_spec(old).loop.strategy == "refine"
    assert load_spec(old).loop.strategy == "adaptive"  # no run.json: the user's own file
    (old.parent / "run.json").write_text("{}")
    assert load_spec(old).loop.strategy == "refine"  # --spec RUN/spec.yaml: what that run ran


def test_explicit_adaptive_runs_exactly_the_default_loop(tmp_path):
    def records(folder, extra):
        spec = build_spec({"preset": "world", "output_dir": str(tmp_path / folder), "dataset": {"limit": 1},
                           "loop": {"rounds": 2, "variants": 2, **extra}})
        return [r.comparable() for r in run(spec).records]

    assert records("default", {}) == records("explicit", {"strategy": "adaptive"})


def test_cli_strategy_flag_is_recorded_in_the_spec(tmp_path):
    from typer.testing import CliRunner

    from repainter.cli import app

    out = tmp_path / "r"
    outcome = CliRunner().invoke(app, ["run", "--strategy", "one_shot", "--limit", "1", "-q",
                                       "--json", "-o", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert "strategy: one_shot" in (out / "spec.yaml").read_text()
    from repainter.result import RunResult

    (record,) = RunResult.load(out).records
    assert record.strategy == "one_shot" and len(record.rounds) == 1
    bad = CliRunner().invoke(app, ["run", "--strategy", "twice", "-o", str(tmp_path / "x")])
    assert bad.exit_code == 2


def test_an_old_refine_run_is_not_resumed_with_the_new_default(tmp_path):
    from repainter.store import RunFolderError, RunStore

    folder = tmp_path / "run"
    old = build_spec({"output_dir": str(folder), "dataset": {"limit": 1},
                      "loop": {"rounds": 1, "variants": 1, "strategy": "refine"}})
    run(old)
    text = (folder / "spec.yaml").read_text()
    (folder / "spec.yaml").write_text(text.replace("  strategy: refine\n", ""))  # as before 0.3.0
    fresh = build_spec({"output_dir": str(folder), "dataset": {"limit": 1},
                        "loop": {"rounds": 1, "variants": 1}})
    with pytest.raises(RunFolderError, match="loop.strategy=refine resumes it"):
        RunStore(folder).init(fresh)
    assert RunStore(folder).init(old) is True  # the same run, resumed
