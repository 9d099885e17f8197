"""Issue 28 item 5 (5,000 references x 4 models, bench/large_real.py): the end of a run holds its
records slim (first build under 1 GB) with results, leaderboard and report as from whole records;
the report holds light records and draws 20,000 cards cheaply (under 5 CPU s, 400 MB)."""

from __future__ import annotations

from repainter import runner
from repainter.backends.metric_identity import identities_of_records
from repainter.record_index import (
    LazyRecords,
    RecordSummary,
    Slimmer,
    SlimRecord,
    slim_records,
)
from repainter.records import ResultLine
from repainter.records.render_flags import render_flags_by_model
from repainter.report import cards
from repainter.report.assets import ReportImages
from repainter.report.html import template_environment
from repainter.report.leaderboard import build_leaderboard
from repainter.store import RunStore


def test_a_slim_record_answers_what_results_and_leaderboard_read(small_spec):
    result = runner.run(small_spec)
    full = list(result.records)
    slim = Slimmer()
    slimmed = [slim(r) for r in full]
    assert all(isinstance(r, SlimRecord) for r in slimmed)
    assert all(r.ground_truth is None and r.draft_prompt is None for r in slimmed)
    assert all(c.prompt is None and not c.metadata for r in slimmed for c in r.candidates())
    assert [ResultLine.of(r) for r in slimmed] == [ResultLine.of(r) for r in full]
    assert render_flags_by_model(slimmed) == render_flags_by_model(full)
    assert identities_of_records(slimmed) == identities_of_records(full)
    assert build_leaderboard(slimmed) == build_leaderboard(full)
    # equal identities and rounds of the same shape are one object, not one per record
    assert len({id(r.metrics) for r in slimmed}) == 1
    assert slimmed[0].rounds[0] is slimmed[1].rounds[0]
    assert slim(slimmed[0]) is slimmed[0]


def test_the_end_of_a_run_keeps_no_record_whole(small_spec, monkeypatch):
    seen = []
    real = runner._report_and_track
    monkeypatch.setattr(runner, "_report_and_track",
                        lambda plan, records, board: seen.extend(records) or real(plan, records,
                                                                                  board))
    result = runner.run(small_spec)
    assert seen and all(isinstance(r, SlimRecord) for r in seen)
    # the result's records are whole: read from their files when asked for
    assert isinstance(result.records, LazyRecords)
    store = RunStore(small_spec.run_dir)
    assert list(result.records) == store.records()
    assert all(r.rounds[0].candidates[0].prompt for r in result.records)


def test_slim_records_reads_summaries_one_at_a_time(small_spec):
    runner.run(small_spec)
    store = RunStore(small_spec.run_dir)
    summaries = [RecordSummary.of(r) for r in store.records()]
    slimmed = slim_records(store, summaries)
    assert [(r.model, r.case_id) for r in slimmed] == [(s.model, s.case_id) for s in summaries]
    assert all(isinstance(r, SlimRecord) for r in slimmed)


def test_an_overview_card_computes_only_what_it_shows(small_spec):
    result = runner.run(small_spec)
    record = next(r for r in result.records if r.done)
    images = ReportImages(small_spec.run_dir, small_spec.run_dir / "report")
    order = [m.display_name for m in small_spec.metrics]
    overview = cards._model_case_view(record, images, "#000", order, detailed=False)
    detailed = cards._model_case_view(record, images, "#000", order, detailed=True)
    assert len(overview["final_scores"]) == cards.OVERVIEW_SCORES
    assert overview["final_scores"] == detailed["final_scores"][:cards.OVERVIEW_SCORES]
    assert "round1_image" not in overview and detailed["rounds"]
    assert {k: detailed[k] for k in overview if k not in ("final_scores", "rounds")} == \
        {k: v for k, v in overview.items() if k not in ("final_scores", "rounds")}


def test_the_report_template_is_compiled_once_per_process():
    assert template_environment() is template_environment()


def test_a_sparkline_holds_numbers_and_a_hex_colour_only():
    from repainter.report.plots import sparkline_points, sparkline_svg

    points = sparkline_points([0.5, 0.7, 0.75])
    svg = sparkline_svg(points, "#0072B2")
    assert svg.startswith('<svg width="96" height="28"') and f'points="{points["points"]}"' in svg
    hostile = sparkline_svg(points, '"><script>alert(1)</script>')
    assert "<script" not in hostile and 'stroke="#888"' in hostile
    assert sparkline_svg(None, "#000") == ""


def test_the_collector_is_paused_for_bulk_work_only():
    import gc

    from repainter.record_index import collector_paused

    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_the_report_holds_light_records_without_what_only_detailed_cards_show(small_spec):
    from repainter.report.card_index import read_card_index
    from repainter.spec import load_spec

    runner.run(small_spec)
    light = read_card_index(small_spec.run_dir, load_spec(small_spec.run_dir / "spec.yaml"))
    assert light and all(r.timings == {} and r.judgement is None for r in light)
    assert all(not r.best.metadata for r in light if r.best is not None)


def test_a_small_png_is_sized_from_its_header_without_a_decoder(tmp_path, monkeypatch):
    from PIL import Image

    from repainter.report import assets

    Image.new("RGB", (64, 32)).save(tmp_path / "small.png")
    Image.new("RGB", (800, 600)).save(tmp_path / "large.png")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert assets._png_size(str(tmp_path / "small.png")) == (64, 32)
    opened, real = [], Image.open
    monkeypatch.setattr(assets.Image, "open", lambda *a, **k: opened.append(a) or real(*a, **k))
    images = assets.ReportImages(tmp_path, tmp_path / "report")
    assert images("small.png") == {"src": "../small.png", "href": "../small.png", "missing": None}
    assert opened == []
    assert images("large.png")["src"] == "thumbs/large.jpg" and len(opened) == 1
    assert images("broken.png") == {"src": None, "href": "../broken.png", "missing": "broken.png"}
    assert images("gone.png") == {"src": None, "href": None, "missing": "gone.png"}
    assert images("../outside.png") is None
