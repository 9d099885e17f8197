"""``loop.baseline: best_of_n``: a best_of_n twin runs beside every revising model, and the
leaderboard (JSON, CSV, Markdown, TeX), the report and ``to_pandas()`` split the final score's
gain into what more samples buy and what revision buys, with a paired test."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from repainter.records.leaderboard import GainDecomposition, LeaderboardRow, SelectionSummary
from repainter.spec import RunSpec


def _spec(tmp_path, **loop) -> RunSpec:
    return RunSpec(name="gain", dataset={"name": "world", "limit": 3}, judge=False,
                   t2i=[{"name": "sim", "label": "sim-a"},
                        {"name": "sim", "label": "sim-b", "params": {"binding_leak": 0.6}}],
                   metrics=["lab_layout"], selection={"lab_layout": 1.0},
                   loop={"rounds": 2, "variants": 2, **loop}, output_dir=str(tmp_path / "run"))


def test_a_baseline_adds_one_best_of_n_twin_per_revising_entry(tmp_path):
    spec = _spec(tmp_path, baseline="best_of_n")
    labels = [t.display_name for t in spec.t2i]
    assert labels == ["sim-a", "sim-a~best_of_n", "sim-b", "sim-b~best_of_n"]
    twin = spec.t2i[3]
    assert (twin.name, twin.params, spec.strategy_of(twin.display_name)) == (
        "sim", {"binding_leak": 0.6}, "best_of_n")
    assert spec.strategy_of("sim-b") == "adaptive"  # the default loop


def test_twins_are_not_written_into_spec_yaml_and_read_back_once(tmp_path):
    spec = _spec(tmp_path, baseline="best_of_n")
    dumped = yaml.safe_load(spec.to_yaml())
    assert [t["label"] for t in dumped["t2i"]] == ["sim-a", "sim-b"]
    assert dumped["loop"]["baseline"] == "best_of_n"
    again = RunSpec.model_validate(dumped)
    assert [t.display_name for t in again.t2i] == [t.display_name for t in spec.t2i]
    assert again.fingerprint() == spec.fingerprint()


def test_unrevised_entries_get_no_twin_and_no_baseline_changes_nothing(tmp_path):
    spec = RunSpec(t2i=["sim", {"name": "sim", "label": "one", "strategy": "one_shot"},
                        {"name": "sim", "label": "bon", "strategy": "best_of_n"}],
                   loop={"baseline": "best_of_n"})
    assert [t.display_name for t in spec.t2i] == ["sim", "sim~best_of_n", "one", "bon"]
    plain = _spec(tmp_path)
    assert "baseline" not in yaml.safe_load(plain.to_yaml())["loop"]
    assert [t.display_name for t in plain.t2i] == ["sim-a", "sim-b"]
    with pytest.raises(ValueError, match="revision_gain"):  # a CSV column of the split
        RunSpec(metrics=[{"name": "ssim", "label": "revision_gain"}],
                selection={"revision_gain": 1.0})


def test_the_markdown_labels_steerability_only_where_it_can_be_split():
    from repainter.report.leaderboard import leaderboard_markdown

    row = LeaderboardRow(model="m", selection=SelectionSummary(mean=0.5, steerability=0.1))
    text = leaderboard_markdown([row])
    assert "more samples + revision" not in text and "Where the gain" not in text
    assert "decomposition" not in row.model_dump()  # leaderboard.json rows as before
    row.decomposition = GainDecomposition(baseline="m~best_of_n", round1=0.4,
                                          best_of_n_same_budget=0.45, revision_gain=0.05, n=3)
    text = leaderboard_markdown([row])
    assert "| steerability (more samples + revision) |" in text
    assert row.model_dump()["decomposition"]["revision_gain"] == 0.05


@pytest.fixture(scope="module")
def baseline_run(tmp_path_factory):
    from repainter.result import RunResult
    from repainter.runner import run

    tmp = tmp_path_factory.mktemp("gain")
    run(_spec(tmp, baseline="best_of_n"))
    return RunResult.load(tmp / "run")


@pytest.mark.slow
def test_twins_run_with_the_same_descriptions_and_seeds(baseline_run):
    records = {(r.model, r.case_id): r for r in baseline_run.records}
    assert {m for m, _ in records} == {"sim-a", "sim-a~best_of_n", "sim-b", "sim-b~best_of_n"}
    for (model, case), record in records.items():
        if model.endswith("~best_of_n"):
            own = records[(model.removesuffix("~best_of_n"), case)]
            assert record.strategy == "best_of_n" and record.iut == own.iut
            assert ([c.seed for rnd in record.rounds for c in rnd.candidates]
                    == [c.seed for rnd in own.rounds for c in rnd.candidates])


@pytest.mark.slow
def test_leaderboard_files_carry_the_decomposition(baseline_run):
    run_dir = baseline_run.run_dir
    board = json.loads((run_dir / "leaderboard.json").read_text())
    rows = {row["model"]: row for row in board["models"]}
    parts = rows["sim-b"]["decomposition"]
    twin_final = rows["sim-b~best_of_n"]["selection"]["mean"]
    assert parts["baseline"] == "sim-b~best_of_n"
    assert parts["best_of_n_same_budget"] == pytest.approx(twin_final)
    assert parts["round1"] == pytest.approx(rows["sim-b"]["selection"]["round1"])
    assert parts["n"] == 3 and 0.0 < parts["p_value"] <= 1.0
    # two revising models: their two revision tests form one Holm family
    assert parts["correction"] == "holm" and parts["p_adjusted"] >= parts["p_value"]
    finals = {(r.model, r.case_id): r.final_scores["selection"] for r in baseline_run.records}
    gains = [finals[("sim-b", c)] - finals[("sim-b~best_of_n", c)]
             for m, c in finals if m == "sim-b"]
    assert parts["revision_gain"] == pytest.approx(sum(gains) / len(gains))
    assert "decomposition" not in rows["sim-b~best_of_n"]  # the twin has no twin
    with open(run_dir / "leaderboard.csv", encoding="utf-8") as handle:
        csv_rows = {r["model"]: r for r in csv.DictReader(handle)}
    assert float(csv_rows["sim-b"]["revision_gain"]) == pytest.approx(parts["revision_gain"])
    assert float(csv_rows["sim-b"]["best_of_n_same_budget"]) == pytest.approx(twin_final)
    markdown = (run_dir / "leaderboard.md").read_text()
    assert "steerability (more samples + revision)" in markdown
    assert "## Where the gain comes from" in markdown and "| sim-b | " in markdown
    assert "Rev.\\ gain" in (run_dir / "leaderboard.tex").read_text()
    assert "Where the gain comes from" in (run_dir / "report" / "index.html").read_text()


@pytest.mark.slow
def test_to_pandas_carries_the_per_case_parts(baseline_run):
    frame = baseline_run.to_pandas()
    mine = frame[frame.model == "sim-a"]
    assert mine.revision_gain.notna().all()
    finals = {(r.model, r.case_id): r.final_scores["selection"] for r in baseline_run.records}
    first = mine.iloc[0]
    assert first.best_of_n_same_budget == pytest.approx(finals[("sim-a~best_of_n", first.case_id)])
    assert first.revision_gain == pytest.approx(
        finals[("sim-a", first.case_id)] - first.best_of_n_same_budget)
    assert frame[frame.model == "sim-a~best_of_n"].revision_gain.isna().all()


def test_component_flags_reach_the_twins_through_their_entries(tmp_path):
    from repainter.spec_flags import spec_from_flags

    path = tmp_path / "spec.yaml"
    path.write_text("loop: {baseline: best_of_n, rounds: 1, variants: 1}\n", encoding="utf-8")
    spec = spec_from_flags(path, model_args="foo=1")
    assert [(t.display_name, t.params) for t in spec.t2i] == [
        ("sim", {"foo": 1}), ("sim~best_of_n", {"foo": 1})]
    assert [t.display_name for t in spec.written_t2i()] == ["sim"]
