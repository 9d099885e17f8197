"""The default run is the simulation bench; drawn scenes reach the records, scene_truth and rescore."""

from __future__ import annotations

import json
import shutil

import pytest

import repainter
from repainter.bench.sim.zoo import (
    MIN_GAP,
    ladder_gaps,
    ladders,
    oracle_prompt,
    stratified_scenes,
    true_quality,
)
from repainter.rescore import rescore
from repainter.spec import RunSpec, build_spec


def test_the_default_spec_is_the_bench():
    spec = RunSpec()
    assert [t.name for t in spec.t2i] == ["sim"] and spec.mllm.name == "sim-describer"
    assert {"scene_truth", "region_match", "texture_energy"} <= {m.name for m in spec.metrics}
    assert spec.selection == {"region_match": 1.0, "texture_energy": 1.0}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench") / "run"
    spec = build_spec({"output_dir": str(root), "dataset": {"limit": 2},
                       "loop": {"rounds": 2, "variants": 2},
                       "t2i": ["sim", "procedural"]})
    return repainter.run(spec)


def test_small_run_scores_drawn_scenes(bench_run):
    records = {r.model: r for r in bench_run.records}
    sim, procedural = records["sim"], records["procedural"]
    assert sim.status == "done" and procedural.status == "done"
    candidate = sim.rounds[0].candidates[0]
    assert candidate.metadata["drawn_scene"]["objects"] is not None
    assert 0.0 <= candidate.scores["scene_truth"] <= 1.0
    assert "scene_truth" in sim.final_scores
    # a model that reports no drawn scene is left unscored by scene_truth, not failed
    assert procedural.rounds[0].candidates[0].metadata == {}
    assert "scene_truth" not in procedural.final_scores
    assert procedural.final_scores["selection"] is not None


def test_rescore_reads_the_drawn_scene_from_the_record(bench_run, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(bench_run.run_dir, target)
    (target / "spec.yaml").write_text(
        (target / "spec.yaml").read_text().replace(str(bench_run.run_dir), str(target)))
    result = rescore(target, [{"name": "scene_truth", "label": "truth_again"}], report=False)
    sim = next(r for r in result.records if r.model == "sim")
    for rnd in sim.rounds:
        for c in rnd.candidates:
            assert c.scores["truth_again"] == pytest.approx(c.scores["scene_truth"])


def test_ladders_contract():
    found = ladders()
    nested = [lad for lad in found.values() if lad.nested]
    assert len(nested) >= 2 and any(not lad.nested for lad in found.values())
    scenes = [{"background": {"color": "white", "rgb": [250, 250, 250]}, "objects": [
        {"shape": "circle", "color": "blue", "rgb": [40, 90, 218], "size": 0.1, "x": 0.3,
         "y": 0.7}, {"shape": "star", "color": "red", "rgb": [218, 40, 40], "size": 0.07,
                     "x": 0.7, "y": 0.3}]}]
    for lad in nested:
        assert [m["name"] for m in lad.models] == ["sim"] * len(lad.models)
        quality = [true_quality(m["params"], scenes, seeds=range(8)) for m in lad.models]
        # one rate raised per rung: never better than the rung above (on these scenes)
        assert all(a >= b - 1e-9 for a, b in zip(quality, quality[1:])), quality
        assert quality[0] > quality[-1]
    assert oracle_prompt(scenes[0]).startswith("A medium-sized azure disc at the lower left")


def test_a_render_answered_from_the_cache_keeps_its_drawn_scene(tmp_path):
    def spec(folder):
        return build_spec({"output_dir": str(tmp_path / folder), "dataset": {"limit": 1},
                           "loop": {"rounds": 1, "variants": 2}, "judge": False,
                           "runtime": {"cache_dir": str(tmp_path / "cache")}})

    first, second = repainter.run(spec("a")), repainter.run(spec("b"))
    (a,), (b,) = first.records, second.records
    assert a.final_scores["scene_truth"] == b.final_scores["scene_truth"]
    assert second.info.cache["t2i"] == {"hits": 2, "misses": 0}  # both renders from the cache
    cached = b.rounds[0].candidates[0]
    assert cached.metadata == a.rounds[0].candidates[0].metadata
    assert cached.metadata["drawn_scene"]



def test_required_ladders_keep_their_minimum_gaps_and_the_stress_ladder_is_marked():
    found = ladders()
    assert [name for name, lad in found.items() if not lad.required] == ["zoo-close"]
    for name, lad in found.items():
        gaps = ladder_gaps(lad)
        assert len(gaps) == len(lad.models) - 1
        assert all(g["minimum"] == MIN_GAP["nested" if lad.nested else "non-nested"] for g in gaps)
        if lad.required:
            # every rung's step changes the true quality by the stated minimum (issue 11)
            assert all(g["meets"] for g in gaps), (name, gaps)
        else:
            assert not all(g["meets"] for g in gaps)


def test_stratified_scenes_take_every_category_in_turn(tmp_path):
    path = stratified_scenes(6, tmp_path / "scenes.jsonl")
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert [r["category"] for r in rows] == ["single", "single", "pair", "pair", "crowded", "styled"]
    assert len({r["id"] for r in rows}) == 6
