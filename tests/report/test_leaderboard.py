import csv
import json

from repainter.records import CaseRecord, RoundRecord
from repainter.report.leaderboard import (
    build_category_table,
    build_comparisons,
    build_leaderboard,
    read_leaderboard,
    write_leaderboard,
)


def _record(model, case, r1, final, status="done", f1=(0.5, 1.0)):
    return CaseRecord(
        model=model, case_id=case, status=status, rounds=[{}, {}, {}],
        round1_best={"selection": r1, "scores": {"object_f1": f1[0]}},
        final_scores={"selection": final, "object_f1": f1[1], "judge_semantic": 4.0},
    )


RECORDS = [
    _record("weak", "a", 0.2, 0.3), _record("weak", "b", 0.4, 0.5),
    _record("strong", "a", 0.5, 0.9), _record("strong", "b", 0.6, 0.8),
    CaseRecord(model="strong", case_id="c", status="failed", error="broken image", final_scores={}),
]


def test_rows_are_ranked_and_means_computed_by_hand():
    rows = build_leaderboard(RECORDS)
    assert [r.model for r in rows] == ["strong", "weak"]
    strong = rows[0]
    assert strong.rank == 1 and strong.cases == 3 and strong.done == 2 and strong.failed == 1
    assert abs(strong.selection.round1 - 0.55) < 1e-12
    assert abs(strong.selection.mean - 0.85) < 1e-12
    assert abs(strong.selection.steerability - 0.30) < 1e-12
    assert strong.metrics["object_f1"].round1 == 0.5 and strong.metrics["object_f1"].mean == 1.0
    judge = strong.metrics["judge_semantic"]
    assert judge.judge and judge.round1 is None and "judge_semantic_round1" not in strong.flat()


def test_confidence_interval_brackets_the_mean():
    strong = build_leaderboard(RECORDS)[0]
    assert strong.selection.ci_low <= 0.85 <= strong.selection.ci_high
    assert 0.8 <= strong.selection.ci_low and strong.selection.ci_high <= 0.9


def test_paired_comparison_uses_shared_cases():
    rows = build_leaderboard(RECORDS)
    family = build_comparisons(RECORDS, rows)
    (comparison,) = family.tests
    assert family.metric == "selection" and family.correction == "none"  # a single pair
    assert (comparison.model_a, comparison.model_b, comparison.n) == ("strong", "weak", 2)
    assert abs(comparison.mean_difference - 0.45) < 1e-12
    # two paired cases: the smallest possible exact p-value is 2 / 4
    assert comparison.p_value == 0.5 and comparison.significant is False


def test_category_table():
    records = [r.model_copy(update={"category": "x"}) for r in RECORDS]
    table = build_category_table(records)
    assert {(r.model, r.category, r.done) for r in table} == {("strong", "x", 2), ("weak", "x", 2)}


def test_written_files_agree(tmp_path):
    rows = build_leaderboard(RECORDS)
    write_leaderboard(rows, tmp_path, RECORDS)
    written = json.loads((tmp_path / "leaderboard.json").read_text())
    assert written["schema_version"] == 1
    assert written["models"] == [row.model_dump(mode="json") for row in rows]
    assert read_leaderboard(tmp_path).models == rows
    assert len(written["comparisons"]["selection"]["tests"]) == 1
    with open(tmp_path / "leaderboard.csv") as handle:
        table = list(csv.DictReader(handle))
    assert [r["model"] for r in table] == ["strong", "weak"]
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert markdown.startswith("## Leaderboard")
    assert "| 1 | strong | 2 | 1 | 0.5500 | 0.8500 [" in markdown
    assert "Paired comparisons" in markdown


def test_model_with_only_failures_still_listed():
    rows = build_leaderboard([RECORDS[-1]], ["strong"])
    assert rows[0].done == 0 and rows[0].selection.mean is None


def _three_models():
    records = []
    for i in range(8):
        case = f"k{i}"
        records += [
            CaseRecord(model="top", case_id=case, status="done",
                       final_scores={"selection": 0.9 + 0.001 * i, "ssim": 0.8, "lpips": 0.1}),
            CaseRecord(model="mid", case_id=case, status="done",
                       final_scores={"selection": 0.7 + 0.002 * i, "ssim": 0.8, "lpips": 0.2}),
            CaseRecord(model="low", case_id=case, status="done",
                       final_scores={"selection": 0.5 + 0.001 * (i % 2), "ssim": 0.6, "lpips": 0.3}),
        ]
    return records


def test_every_metric_gets_corrected_paired_tests_named_everywhere(tmp_path):
    from repainter.report.leaderboard import build_metric_comparisons
    from repainter.report.stats import benjamini_hochberg, holm

    records = _three_models()
    rows = build_leaderboard(records)
    by_metric = build_metric_comparisons(records, rows)
    assert set(by_metric) == {"selection", "ssim", "lpips"}
    for family in by_metric.values():
        assert len(family.tests) == 3 and family.correction == "holm"
        assert [c.p_adjusted for c in family.tests] == holm([c.p_value for c in family.tests])
    ssim = {(c.model_a, c.model_b): c for c in by_metric["ssim"].tests}
    assert ssim[("top", "mid")].mean_difference == 0.0 and not ssim[("top", "mid")].significant
    assert ssim[("top", "low")].significant  # 8 positive differences: p = 2/256, x3 < 0.05
    bh = build_metric_comparisons(records, rows, "bh")["selection"]
    assert bh.correction == "bh"
    assert [c.p_adjusted for c in bh.tests] == benjamini_hochberg([c.p_value for c in bh.tests])

    write_leaderboard(rows, tmp_path, records)
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    assert board["correction"] == "holm" and set(board["comparisons"]) == set(by_metric)
    assert {f["correction"] for f in board["comparisons"].values()} == {"holm"}
    markdown = (tmp_path / "leaderboard.md").read_text()
    assert "Holm" in markdown and "### Paired comparisons on lpips" in markdown
    assert "p_adjusted" in markdown


def test_a_metric_only_one_model_has_gives_an_empty_comparison(tmp_path):
    records = [CaseRecord(model="a", case_id="k", status="done",
                          final_scores={"selection": 0.5, "scene_truth": 0.7}),
               CaseRecord(model="b", case_id="k", status="done", final_scores={"selection": 0.4})]
    rows = build_leaderboard(records)
    write_leaderboard(rows, tmp_path, records)  # no NaN reaches the JSON
    board = json.loads((tmp_path / "leaderboard.json").read_text())
    (pair,) = board["comparisons"]["scene_truth"]["tests"]
    assert pair["n"] == 0 and pair["mean_difference"] is None and not pair["significant"]


def test_flagged_renders_stand_beside_the_means(tmp_path):
    """A model whose safety checker blanked renders is scored on fewer images: the leaderboard
    says how many, and says nothing for a model with no flagged render."""
    flagged = _record("sd15", "a", 0.5, 0.6)
    flagged.rounds = [RoundRecord(candidates=[
        {"flagged": "safety_checker_blanked"}, {"flagged": None}, {"flagged": None},
        {"flagged": "nan_decode"}])]
    blanked = CaseRecord(model="sd15", case_id="b", status="failed", final_scores={},
                         rounds=[{"candidates": [{"flagged": "safety_checker_blanked"}]}])
    rows = {r.model: r for r in build_leaderboard(RECORDS + [flagged, blanked])}
    assert rows["sd15"].flagged_share == 3 / 5
    assert rows["sd15"].cases_all_flagged == 1
    assert rows["strong"].flagged_share is None and "flagged_share" not in rows["strong"].flat()
    write_leaderboard(list(rows.values()), tmp_path)
    assert "flagged renders" in (tmp_path / "leaderboard.md").read_text()
