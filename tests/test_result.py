"""RunResult for notebooks: to_pandas, cases_frame, _repr_html_ (escaped, thumbnails embedded)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from PIL import Image

import repainter
from repainter.records import CaseRecord
from repainter.report.leaderboard import build_leaderboard
from repainter.result import RunResult
from repainter.spec import build_spec


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> RunResult:
    out = tmp_path_factory.mktemp("result") / "run"
    spec = build_spec({"output_dir": str(out), "dataset": {"limit": 3},
                       "loop": {"rounds": 2, "variants": 2}})
    return repainter.run(spec)


def test_to_pandas_one_row_per_case_model_round(result):
    frame = result.to_pandas()
    for column in ("model", "case_id", "category", "status", "round", "prompt",
                   "round_best_variant", "round_best_prompt", "round_best_image",
                   "round_best_selection", "best_ever_selection", "best_ever_round",
                   "best_ever_image", "is_final_best", "score_ssim", "score_color_histogram",
                   "score_scene_truth", "mean_candidate_selection", "reference_image"):
        assert column in frame.columns, column
    assert len(frame) == 3 * 2
    assert sorted(frame["round"].unique()) == [1, 2]
    for _, case in frame.groupby(["model", "case_id"]):
        ever = case.sort_values("round")["best_ever_selection"].tolist()
        assert ever == sorted(ever)  # best-ever never drops
        assert case["is_final_best"].sum() == 1
        last = case.sort_values("round").iloc[-1]
        assert math.isclose(last["best_ever_selection"],
                            case["round_best_selection"].max(), rel_tol=1e-9)
    row = frame.iloc[0]
    assert Path(row["round_best_image"]).is_file() and Path(row["reference_image"]).is_file()
    assert row["round_best_prompt"] and row["prompt"]


def test_cases_frame_one_row_per_case_model(result):
    frame = result.cases_frame()
    assert len(frame) == 3
    for column in ("model", "case_id", "category", "status", "selection_round1",
                   "selection_final", "gain", "final_ssim", "final_scene_truth", "best_prompt",
                   "best_image", "reference_image", "license"):
        assert column in frame.columns, column
    assert (frame["selection_final"] >= frame["selection_round1"] - 1e-12).all()
    assert (frame["license"] == "CC0-1.0").all()


def test_repr_html_has_leaderboard_and_embedded_thumbnails(result):
    html = result._repr_html_()
    assert "<table" in html and "sim" in html and "selection final" in html
    thumbs = re.findall(r'src="data:image/png;base64,[A-Za-z0-9+/=]+"', html)
    assert len(thumbs) == 3 * 2  # reference + best per case
    assert str(result.run_dir) in html
    assert "file://" not in html and 'src="/' not in html


def _record(model: str, case_id: str, prompt: str, image: str | None) -> CaseRecord:
    best = {"round": 1, "variant": 0, "prompt": prompt, "seed": 1, "image": image,
            "scores": {"ssim": 0.5}, "selection": 0.5}
    return CaseRecord(
        model=model, case_id=case_id, category="<b>cat</b>", status="done",
        reference=image, license="<i>lic</i>",
        rounds=[{"round": 1, "prompt": prompt, "candidates": [best], "round_best": 0,
                 "round_best_selection": 0.5, "best_ever_selection": 0.5}],
        round1_best=best, best=best, final_scores={"ssim": 0.5, "selection": 0.5},
    )


def test_repr_html_escapes_labels_prompts_and_errors(tmp_path):
    Image.new("RGB", (8, 8), "red").save(tmp_path / "ref.png")
    evil = "<script>alert('x')</script>"
    records = [
        _record(evil, "case<1>", f"a prompt {evil} & more", "ref.png"),
        CaseRecord(model=evil, case_id="broken", category="x", status="failed",
                   error=f"boom {evil}", rounds=[], final_scores={}),
    ]
    result = RunResult(run_dir=tmp_path, spec=None, records=records,
                       leaderboard=build_leaderboard(records))
    html = result._repr_html_()
    assert "<script" not in html and "<b>cat" not in html and "<i>lic" not in html
    assert "&lt;script&gt;" in html and "case&lt;1&gt;" in html and "&amp; more" in html
    assert "boom &lt;script&gt;" in html
    frame = result.to_pandas()
    assert frame.loc[0, "round_best_prompt"] == f"a prompt {evil} & more"


def test_repr_html_survives_missing_images(tmp_path):
    records = [_record("m", "c", "p", "images/gone.png")]
    html = RunResult(run_dir=tmp_path, spec=None, records=records,
                     leaderboard=build_leaderboard(records))._repr_html_()
    assert "no image" in html and "data:image" not in html


def test_result_load_round_trips(result):
    again = RunResult.load(result.run_dir)
    assert len(again.to_pandas()) == len(result.to_pandas())
    assert again.cases_frame()["case_id"].tolist() == result.cases_frame()["case_id"].tolist()
