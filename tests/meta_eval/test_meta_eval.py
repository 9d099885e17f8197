"""meta-eval end to end on a tiny configuration; degradations on a real photo; ranking maths."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import repainter
from repainter.cli import app
from repainter.meta_eval.degradations import (
    DEGRADATIONS,
    degradation_validity,
    degrade,
    kendall_tau,
    skimage_references,
)
from repainter.meta_eval.ladders import Ladder, default_ladders, procedural_ladders
from repainter.meta_eval.ranking import adjacent_separation, bootstrap_tau, true_order_tau
from repainter.registry import METRICS

LADDER = {"tiny": {"description": "ignore colour, then shape", "nested": True, "models": [
    {"name": "procedural"}, {"name": "procedural", "params": {"ignore": ["color"]}},
    {"name": "procedural", "params": {"ignore": ["color", "shape"]}}]}}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """2 scenes x 2 seeds x 1 round x 2 variants, one 3-rung ladder, two degradations."""
    out = tmp_path_factory.mktemp("meta")
    run_dir = out / "a-run"
    repainter.run(repainter.build_spec({"output_dir": str(run_dir), "dataset": {"limit": 2},
                                        "loop": {"rounds": 1, "variants": 1}, "judge": False}))
    outcome = CliRunner().invoke(app, [
        "meta-eval", "-o", str(out / "work"), "--validity", str(out / "VALIDITY.md"),
        "--scenes", "2", "--seeds", "0,1", "--rounds", "1", "--variants", "2",
        "--run", str(run_dir), "--config", str(_config(out))])
    assert outcome.exit_code == 0, outcome.output
    return out, run_dir, json.loads((out / "validity.json").read_text())


def _config(out):
    path = out / "meta.yaml"
    # the built-in world's describer and metrics, whatever the default bench is
    path.write_text(json.dumps({"ladders": LADDER, "mllm": {"name": "scene-analyst"},
                                "metrics": ["ssim", "color_histogram", "object_f1"],
                                "selection": {"ssim": 0.5, "color_histogram": 0.5},
                                "degradation_images": ["chelsea"],
                                "degradation_size": 32, "degradation_kinds": ["blur", "noise"],
                                "bootstrap_resamples": 200}))
    return path


@pytest.mark.slow
def test_validity_files_hold_every_part(tiny):
    out, _, data = tiny
    ladder = data["ladders"]["tiny"]
    assert ladder["models"] == ["r0-procedural", "r1-procedural", "r2-procedural"]
    for metric in ("selection", "ssim", "color_histogram", "object_f1"):
        result = ladder["metrics"][metric]
        assert -1.0 <= result["tau"] <= 1.0 and len(result["tau_per_seed"]) == 2
        assert len(result["adjacent"]) == 2 and 0.0 <= result["adjacent_separated"] <= 1.0
    assert set(ladder["seed_sensitivity"]) >= {"selection", "ssim"}
    base = data["baselines"]
    assert set(base["means"]) == {"refine", "best_of_n", "one_shot", "oracle"}
    assert base["budget_renders"] == 2 and base["oracle"] is True
    pairs = {(c["model_a"], c["model_b"]) for c in base["tests"]["object_f1"]}
    assert pairs == {("refine", "best_of_n"), ("refine", "one_shot"), ("refine", "oracle")}
    assert set(data["degradations"]["metrics"]["ssim"]["kinds"]) == {"blur", "noise"}
    markdown = (out / "VALIDITY.md").read_text()
    for heading in ("(a) Ranking validity", "Adjacent rungs", "(b) Controlled degradations",
                    "(c) The loop against baselines", "(d) Seed sensitivity", "repainter meta-eval"):
        assert heading in markdown, heading


@pytest.mark.slow
def test_oracle_prompt_is_the_ground_truth_scene(tiny):
    # the oracle renders exactly the scene, so its truth score is the best of the strategies
    means = tiny[2]["baselines"]["means"]
    assert means["oracle"]["object_f1"] >= max(means[s]["object_f1"] for s in ("refine", "one_shot"))


@pytest.mark.slow
def test_run_report_shows_the_validity_section(tiny):
    _, run_dir, _ = tiny
    assert (run_dir / "validity.json").is_file()
    html = (run_dir / "report" / "index.html").read_text()
    assert "Which metrics the bench found trustworthy" in html and "degradation: blur" in html


def test_ssim_ranks_graded_degradations_of_a_real_photo():
    (reference,) = skimage_references(["astronaut"], size=64)
    result = degradation_validity({"ssim": METRICS.create("ssim", size=64)}, [reference])["ssim"]
    for kind in ("blur", "noise", "jpeg", "patch_shuffle", "object_removal"):
        similarity = result["kinds"][kind]["similarity"]
        assert all(a > b for a, b in zip(similarity, similarity[1:])), (kind, similarity)
        assert result["kinds"][kind]["tau"] == 1.0


def test_every_degradation_changes_the_image_and_zero_keeps_it():
    (reference,) = skimage_references(["coffee"], size=32)
    original = np.asarray(reference.image)
    for kind in DEGRADATIONS:
        assert np.array_equal(np.asarray(degrade(reference.image, kind, 0.0)), original)
        assert not np.array_equal(np.asarray(degrade(reference.image, kind, 0.6)), original), kind
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade(reference.image, "melt", 0.5)


def test_ranking_maths_by_hand():
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    perfect = np.array([[0.9, 0.5, 0.1]] * 6) + np.arange(6)[:, None] * 0.001
    assert true_order_tau(perfect) == 1.0 and bootstrap_tau(perfect, resamples=100) == (1.0, 1.0)
    rows = adjacent_separation(perfect, ["a", "b", "c"])
    # six positive differences: exact p = 2/64 < 0.05
    assert [r["separated"] for r in rows] == [True, True] and rows[0]["p_value"] == 2 / 64
    flat = np.ones((6, 3))
    assert true_order_tau(flat) == 0.0 and not any(r["separated"] for r in adjacent_separation(flat, "abc"))


def test_ladders_load_from_data_and_fall_back():
    ladders, bench = default_ladders()
    assert bench in ("sim", "procedural") and len(ladders) >= 3
    assert sum(ladder.nested for ladder in ladders.values()) >= 2
    assert any(not ladder.nested for ladder in ladders.values())
    assert len(procedural_ladders()["nested-background-first"].models) == 6
    with pytest.raises(ValueError, match="at least two"):
        Ladder.from_data("x", {"models": [{"name": "procedural"}]})
