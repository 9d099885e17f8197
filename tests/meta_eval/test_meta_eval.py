"""meta-eval end to end on a tiny configuration; degradations on a real photo; ranking maths."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import repainter
from repainter.bench.meta_eval.degradations import (
    DEGRADATIONS,
    degradation_validity,
    degrade,
    kendall_tau,
    skimage_references,
)
from repainter.bench.meta_eval.ladders import Ladder, default_ladders, procedural_ladders
from repainter.bench.meta_eval.ranking import adjacent_separation, bootstrap_tau, true_order_tau
from repainter.cli import app
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


def _ladder_result(taus, separated, gaps, required=True, nested=True, truth_separated=None):
    """validity.json's entry for one ladder with two metrics (selection, truth)."""
    def metric(tau, seps):
        adjacent = [{"better": f"m{i}", "worse": f"m{i + 1}", "n": 8, "mean_difference": 0.05,
                     "p_value": 0.01 if s else 0.3, "separated": s} for i, s in enumerate(seps)]
        return {"cases": 8, "tau": tau, "tau_ci_low": tau, "tau_ci_high": tau,
                "tau_per_seed": [tau], "tau_seed_mean": tau, "adjacent": adjacent,
                "adjacent_separated": sum(seps) / len(seps), "adjacent_separated_per_seed": 0.5}
    return {"description": "d", "nested": nested, "required": required,
            "models": [f"m{i}" for i in range(len(gaps) + 1)],
            "true_quality": [0.8 - 0.1 * i for i in range(len(gaps) + 1)],
            "gaps": [{"better": f"m{i}", "worse": f"m{i + 1}", "gap": g, "minimum": 0.08,
                      "meets": g >= 0.08} for i, g in enumerate(gaps)],
            "metrics": {"selection": metric(taus[0], separated),
                        "truth": metric(taus[1], truth_separated or separated)},
            "params": [{}] + [{"rate": 0.1 * (i + 1)} for i in range(len(gaps))],
            "seed_sensitivity": {}}


def test_validity_judges_the_acceptance_on_required_ladders_and_reports_stress_ones_apart():
    from repainter.bench.meta_eval.summary import validity_markdown

    data = {"bench": "sim", "true_order": "True order = oracle quality.",
            "config": {"truth": "truth", "scenes": 8, "seeds": [0], "rounds": 3, "variants": 3},
            "ladders": {"a": _ladder_result((1.0, 1.0), [True, True], [0.1, 0.09]),
                        "close": _ladder_result((0.4, 0.5), [True, False], [0.06, 0.02],
                                                required=False, nested=False)}}
    text = validity_markdown(data)
    assert "Required ladders (a): default selection score, tau per ladder (mean over seeds): " \
           "1.00: meets" in text
    assert "Required ladders: truth metric `truth` separates every adjacent rung" in text
    assert "Stress ladders (not required) (close): default selection score, tau per ladder " \
           "(mean over seeds): 0.40: does NOT meet" in text
    # resolution: smallest gap separated / largest not, per kind of pair
    assert "nested pairs: smallest true-quality gap separated 0.090, largest not separated -" in text
    assert "non-nested pairs: smallest true-quality gap separated 0.060, largest not separated " \
           "0.020" in text
    assert "True order = oracle quality." in text and "(gap 0.020 < min)" in text
    assert "ladder close (stress, not required)" in text
    assert "On `" not in text  # the selection misses nothing on the required ladders

    data["ladders"]["b"] = _ladder_result((0.8, 1.0), [True, False], [0.1, 0.03],
                                          truth_separated=[True, True])
    text = validity_markdown(data)
    assert "Required ladders (a, b): default selection score, tau per ladder (mean over seeds): " \
           "1.00, 0.80: does NOT meet" in text
    # the pair the selection misses, with the rate its rung raised, and the fallback's verdict
    assert "On `b` the default selection misses what the truth metric separates: m1 > m2 " \
           "(rate 0.2): truth +0.0500 (p 0.01), selection +0.0500 (p 0.3)." in text
    assert "reach tau >= 0.9 on every required ladder: none" in text

    # a pair the truth metric of the loop's picks leaves unseparated is named with both gaps
    data["ladders"]["c"] = _ladder_result((1.0, 1.0), [True, True], [0.1, 0.04],
                                          truth_separated=[True, False])
    text = validity_markdown(data)
    assert "On `c` the truth metric does not separate: m1 > m2 (rate 0.2): true-quality gap " \
           "0.040, truth of the loop's picks +0.0500 (p 0.3)." in text
    assert "truth metric `truth` does NOT separate every adjacent rung" in text

    # the same pair at each case's best render (the loop's candidates re-picked by the truth)
    data["ladders"]["c"]["best_rendered"] = data["ladders"]["c"]["metrics"]["truth"] | {
        "adjacent_separated": 1.0, "adjacent": [dict(a, separated=True) for a in
                                                data["ladders"]["c"]["metrics"]["truth"]["adjacent"]]}
    text = validity_markdown(data)
    assert "Required ladders (c): truth metric `truth` at each case's best render (the loop's " \
           "candidates re-picked by the truth, an ideal pick) separates every adjacent rung: " \
           "2/2." in text
    assert "| truth at each case's best render (ideal re-pick) | - | - | - | 2/2 / 0.50 |" in text


def test_best_rendered_reads_every_candidate_not_only_the_pick():
    from repainter.bench.meta_eval.ranking import best_rendered, case_matrix, final_score
    from repainter.records import CaseRecord

    def record(model, truths, picked):
        return CaseRecord.model_validate({
            "case_id": "c", "model": model, "status": "done",
            "final_scores": {"truth": truths[picked]},
            "rounds": [{"round": 1, "candidates": [{"scores": {"truth": t}} for t in truths]}]})

    records = [record("a", [0.2, 0.9, 0.5], picked=0), record("b", [0.4, None, 0.6], picked=2)]
    assert best_rendered(records[1], "truth") == 0.6 and best_rendered(records[0], "x") is None
    _, picked = case_matrix(records, ["a", "b"], "truth", value_of=final_score)
    _, best = case_matrix(records, ["a", "b"], "truth", value_of=best_rendered)
    assert picked.tolist() == [[0.2, 0.6]] and best.tolist() == [[0.9, 0.6]]


def test_quick_sizes_and_the_acceptance_sizes(tmp_path):
    from repainter.bench.meta_eval.config import QUICK, MetaEvalConfig

    defaults = MetaEvalConfig()
    # the acceptance is judged at the run spec's loop (RunSpec().loop), 6 scenes per category
    assert (defaults.rounds, defaults.variants) == (repainter.RunSpec().loop.rounds,
                                                    repainter.RunSpec().loop.variants)
    assert defaults.scenes == 32 and QUICK["scenes"] < defaults.scenes
    outcome = CliRunner().invoke(app, [
        "meta-eval", "--quick", "--variants", "1", "--parts", "degradations", "-o",
        str(tmp_path / "out"), "--config", str(_config(tmp_path))])
    assert outcome.exit_code == 0, outcome.output
    config = json.loads((tmp_path / "out" / "validity.json").read_text())["config"]
    assert (config["scenes"], config["rounds"], config["variants"]) == (8, 2, 1)


def test_the_config_files_output_dir_wins_over_an_unset_flag(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "meta.yaml"
    config.write_text(f"output_dir: {tmp_path / 'from-config'}\nparts: [degradations]\n"
                      "degradation_images: [chelsea]\ndegradation_size: 32\n"
                      "degradation_kinds: [blur]\n")
    outcome = CliRunner().invoke(app, ["meta-eval", "--config", str(config)])
    assert outcome.exit_code == 0, outcome.output
    assert (tmp_path / "from-config" / "validity.json").exists()
    assert not (tmp_path / "runs").exists()


def test_degradations_rate_the_selection_score_itself_when_it_combines_metrics(tmp_path):
    data = repainter.bench.meta_eval(
        parts=["degradations"], degradation_images=["chelsea"], degradation_size=32,
        degradation_kinds=["blur", "colour_shift"], output_dir=str(tmp_path),
        metrics=[{"name": "lab_layout"}, {"name": "ssim"}], selection={"lab_layout": 3.0, "ssim": 1.0})
    results = data["degradations"]["metrics"]
    assert {"selection", "lab_layout", "ssim"} <= set(results)
    lab, ssim = (np.array(results[m]["kinds"]["colour_shift"]["similarity"])
                 for m in ("lab_layout", "ssim"))
    combined = np.array(results["selection"]["kinds"]["colour_shift"]["similarity"])
    assert combined == pytest.approx(0.75 * lab + 0.25 * ssim)
    # one weighted metric: its own row already is the selection's
    single = repainter.bench.meta_eval(
        parts=["degradations"], degradation_images=["chelsea"], degradation_size=32,
        degradation_kinds=["blur"], output_dir=str(tmp_path / "one"),
        metrics=[{"name": "lab_layout"}], selection={"lab_layout": 1.0})
    assert "selection" not in single["degradations"]["metrics"]


def test_the_ideal_pick_config_is_valid_and_holds_the_current_nested_ladders():
    # datasets/sim/truth-selection.yaml reruns the nested ladders with the loop selecting by the
    # ground truth; it must stay a valid config and name today's ladders
    from pathlib import Path

    import yaml

    from repainter.bench.meta_eval.config import MetaEvalConfig
    from repainter.bench.meta_eval.ladders import Ladder
    from repainter.bench.sim.zoo import ladders, retired_ladders

    path = Path(repainter.__file__).resolve().parents[1] / "datasets" / "sim" / "truth-selection.yaml"
    config = MetaEvalConfig.model_validate(yaml.safe_load(path.read_text()))
    assert config.selection == {"scene_truth": 1.0} and config.parts == ["ladders"]
    current = {**{n: lad for n, lad in ladders().items() if lad.nested}, **retired_ladders()}
    assert set(config.ladders) == set(current)  # every nested ladder, and the retired ones
    for name, data in config.ladders.items():
        assert [dict(m) for m in current[name].models] == data["models"]
        # the retired ladder runs as a stress ladder, apart from the acceptance
        assert Ladder.from_data(name, data).required == current[name].required
