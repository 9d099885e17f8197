"""leaderboard.json as a typed, versioned record: migration from today's flat rows, label
collisions, a newer schema, round trips; the text outputs stay the ones version 0 produced."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from repainter.records.base import RecordVersionError, dump_record, load_record
from repainter.records.case import CaseRecord
from repainter.records.leaderboard import Leaderboard, LeaderboardRow
from repainter.report.grid import grid_markdown
from repainter.report.latex import leaderboard_latex
from repainter.report.leaderboard import (
    _columns,
    build_leaderboard,
    leaderboard_markdown,
    read_leaderboard,
    write_leaderboard,
)
from repainter.store import RunStore

FIXTURES = Path(__file__).parents[1] / "fixtures"
RUN_V0 = FIXTURES / "run_v0"
VARIANTS = FIXTURES / "leaderboard_v0"  # written by commit b660596 (see fixtures/README.md)


def _v0(path: Path) -> dict:
    return json.loads(path.read_text())


def _markdown(board: Leaderboard) -> str:
    return leaderboard_markdown(board.models, board.comparisons.get("selection"),
                                board.categories, board.comparisons)


def _csv(rows: list[LeaderboardRow]) -> str:
    flat = [row.flat() for row in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(flat), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(flat)
    return buffer.getvalue()


def test_fixture_leaderboard_migrates_to_nested_rows():
    board = load_record(Leaderboard, _v0(RUN_V0 / "leaderboard.json"))
    old = _v0(RUN_V0 / "leaderboard.json")["models"]
    assert board.schema_version == 1 and [r.model for r in board.models] == ["sim-b", "sim-a"]
    top = board.models[0]
    assert (top.rank, top.strategy, top.cases, top.done, top.failed) == (1, "best_of_n", 3, 3, 0)
    assert top.selection.mean == old[0]["selection_final"]
    assert top.selection.round1 == old[0]["selection_round1"]
    assert top.selection.steerability == old[0]["steerability"]
    assert (top.selection.ci_low, top.selection.ci_high) == (
        old[0]["selection_final_ci_low"], old[0]["selection_final_ci_high"])
    assert set(top.metrics) == {"color_histogram", "judge_aesthetic", "judge_semantic",
                                "lab_layout", "scene_truth", "ssim"}
    ssim = top.metrics["ssim"]
    assert (ssim.mean, ssim.ci_low, ssim.round1, ssim.judge) == (
        old[0]["ssim"], old[0]["ssim_ci_low"], old[0]["ssim_round1"], False)
    judge = top.metrics["judge_semantic"]
    assert judge.judge and judge.round1 is None and judge.mean == old[0]["judge_semantic"]
    assert board.models[1].strategy is None  # sim-a named none (refine)
    # one family per metric, each naming its correction; selection's were `comparisons` before
    assert set(board.comparisons) == {"selection", "color_histogram", "judge_aesthetic",
                                      "judge_semantic", "lab_layout", "scene_truth", "ssim"}
    selection = board.comparisons["selection"]
    assert selection.correction == "none" and len(selection.tests) == 1
    assert selection.tests[0].model_a == "sim-b" and selection.tests[0].p_adjusted == 1.0
    assert [(c.model, c.category, c.done) for c in board.categories] == [
        ("sim-a", "single", 3), ("sim-b", "single", 3)]


def test_flat_view_of_a_migrated_row_is_the_version_0_row():
    data = _v0(RUN_V0 / "leaderboard.json")
    board = load_record(Leaderboard, data)
    assert [row.flat() for row in board.models] == data["models"]
    assert board.comparisons["ssim"].flat() == data["metric_comparisons"]["ssim"]


def test_fixture_text_outputs_are_rebuilt_byte_for_byte(tmp_path):
    """The same run gives the same Markdown, CSV and LaTeX as version 0 wrote: from its case
    records (a fresh leaderboard), and from the migrated leaderboard.json."""
    records = RunStore(RUN_V0).records()
    rows = build_leaderboard(records, ["sim-a", "sim-b"])
    write_leaderboard(rows, tmp_path, records, correction="holm")
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.tex"):
        assert (tmp_path / name).read_text() == (RUN_V0 / name).read_text(), name
    migrated = load_record(Leaderboard, _v0(RUN_V0 / "leaderboard.json"))
    assert migrated == read_leaderboard(tmp_path)
    assert _markdown(migrated) == (RUN_V0 / "leaderboard.md").read_text()
    assert leaderboard_latex(migrated.models) == (RUN_V0 / "leaderboard.tex").read_text()


@pytest.mark.parametrize("kind", ["grid", "seeds", "adaptive"])
def test_variant_written_by_version_0_migrates_and_renders_the_same(kind):
    data = _v0(VARIANTS / kind / "leaderboard.json")
    board = load_record(Leaderboard, data)
    assert [row.flat() for row in board.models] == data["models"]
    assert _csv(board.models) == (VARIANTS / kind / "leaderboard.csv").read_bytes().decode()
    markdown = (VARIANTS / kind / "leaderboard.md").read_text()
    assert markdown.startswith(_markdown(board).rstrip("\n"))
    if kind == "grid":
        assert board.grid is not None and set(board.grid.mllm_by_t2i) == {"good", "bad"}
        ranking = board.grid.mllm_by_t2i["good"]
        assert [r.rank for r in ranking.ranking] == [1, 2] and {r.mllm for r in ranking.ranking} == {
            "sharp", "blurry"}
        assert ranking.comparisons.tests[0].n == 2
        assert board.grid.mllm_usage == data["mllm_usage"]
        assert markdown.endswith(grid_markdown(board.models, board.grid))
    if kind == "seeds":
        row = board.models[0]
        assert row.seeds == 2
        assert row.selection.seed_sd == data["models"][0]["selection_final_seed_sd"]
        assert row.metrics["scene_truth"].seed_sd_over_se == data["models"][0][
            "scene_truth_seed_sd_over_se"]
    if kind == "adaptive":
        from repainter.report.adaptive import adaptive_markdown

        assert board.adaptive.model_dump(exclude={"order"}) == data["adaptive"]
        assert markdown.endswith(adaptive_markdown(board.adaptive))


def _collision_records() -> list[CaseRecord]:
    def record(model, case, final, done_metric, steer_metric):
        return CaseRecord(model=model, case_id=case, status="done", rounds=[{}],
                          round1_best={"selection": final - 0.25, "scores": {"done": 0.0}},
                          final_scores={"selection": final, "done": done_metric,
                                        "steerability": steer_metric})

    return [record("a", "k1", 0.9, 0.11, 0.71), record("a", "k2", 0.8, 0.13, 0.73),
            record("b", "k1", 0.5, 0.21, 0.81), record("b", "k2", 0.4, 0.23, 0.83),
            CaseRecord(model="b", case_id="k3", status="failed", error="x", final_scores={})]


def test_metrics_labelled_like_built_in_columns_keep_both(tmp_path):
    """A metric labelled ``done`` or ``steerability`` once overwrote those columns."""
    records = _collision_records()
    rows = {row.model: row for row in build_leaderboard(records)}
    b = rows["b"]
    assert (b.cases, b.done, b.failed) == (3, 2, 1)
    assert b.metrics["done"].mean == pytest.approx(0.22)
    assert b.metrics["done"].round1 == 0.0
    assert b.selection.steerability == pytest.approx(0.25)
    assert b.metrics["steerability"].mean == pytest.approx(0.82)

    write_leaderboard(list(rows.values()), tmp_path, records, correction="holm")
    again = {row.model: row for row in read_leaderboard(tmp_path).models}
    assert again["b"].done == 2 and again["b"].metrics["done"].mean == pytest.approx(0.22)
    assert again["b"].selection.steerability == pytest.approx(0.25)
    assert set(read_leaderboard(tmp_path).comparisons) == {"selection", "done", "steerability"}
    header, _, first, second = (tmp_path / "leaderboard.md").read_text().splitlines()[2:6]
    columns = [c.strip() for c in header.strip("|").split("|")]
    cells = [c.strip() for c in second.strip("|").split("|")]  # b ranks second
    assert columns.count("done") == 2 and columns.count("steerability") == 2
    by_position = dict(zip(range(len(columns)), cells))
    assert by_position[columns.index("done")] == "2"  # the built-in column: cases done
    assert by_position[columns.index("steerability")] == "0.2500"
    metric_done = len(columns) - 1 - columns[::-1].index("done")
    assert by_position[metric_done].startswith("0.2200")
    table = list(csv.DictReader((tmp_path / "leaderboard.csv").open()))
    assert table[1]["done"] == "2" and float(table[1]["metric:done"]) == pytest.approx(0.22)
    assert float(table[1]["steerability"]) == pytest.approx(0.25)
    assert float(table[1]["metric:steerability"]) == pytest.approx(0.82)


def test_round_trip_keeps_every_field(tmp_path):
    records = _collision_records()
    rows = build_leaderboard(records)
    write_leaderboard(rows, tmp_path, records, correction="holm")
    board = read_leaderboard(tmp_path)
    assert board.models == rows
    assert load_record(Leaderboard, json.loads(json.dumps(dump_record(board)))) == board
    assert dump_record(board)["schema_version"] == 1


def test_nan_statistic_is_written_as_null():
    row = LeaderboardRow(model="m", mean_rounds=float("nan"),
                         selection={"mean": float("nan"), "ci_low": float("inf")})
    assert row.mean_rounds is None and row.selection.mean is None and row.selection.ci_low is None
    row.selection.seed_sd = float("nan")  # set later (seed_runs.py): validated as well
    row.mllm_cost_usd = 0.5
    assert row.selection.seed_sd is None and row.mllm_cost_usd == 0.5


def test_leaderboard_from_a_newer_repainter_is_refused_clearly(tmp_path):
    shutil.copy(RUN_V0 / "leaderboard.json", tmp_path / "leaderboard.json")
    data = dump_record(read_leaderboard(tmp_path))
    (tmp_path / "leaderboard.json").write_text(json.dumps({**data, "schema_version": 2}))
    with pytest.raises(RecordVersionError, match="leaderboard has schema_version 2 but this "
                                                 "repainter reads up to 1"):
        read_leaderboard(tmp_path)
