"""Rescoring a finished run from its stored images: new metrics everywhere, no model calls."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import repainter
from repainter.backends.base import Reference
from repainter.backends.metrics.psnr import PSNR
from repainter.bench.world.procedural import ProceduralT2I
from repainter.bench.world.scene_analyst import SceneAnalyst
from repainter.cli import app
from repainter.images import load_image
from repainter.registry import MLLM, T2I
from repainter.rescore import RescoreError, rescore
from repainter.result import RunResult
from repainter.spec import build_spec, load_spec


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rescore") / "run"
    repainter.run(build_spec({"preset": "world", "output_dir": str(root), "dataset": {"limit": 3},
                              "loop": {"rounds": 2, "variants": 2}}))
    return root


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    """A private copy of the finished run (its spec's output_dir points here)."""
    target = tmp_path / "run"
    shutil.copytree(finished, target)
    spec = load_spec(target / "spec.yaml", [f"output_dir={target}"])
    (target / "spec.yaml").write_text(spec.to_yaml(), encoding="utf-8")
    return target


@pytest.fixture
def no_models(monkeypatch):
    """Any T2I or MLLM construction or call fails the test."""
    calls = []

    def forbidden(*args, **kwargs):
        calls.append(args)
        raise AssertionError("rescore must not build or call a T2I model or an MLLM")

    monkeypatch.setattr(T2I, "create", forbidden)
    monkeypatch.setattr(MLLM, "create", forbidden)
    monkeypatch.setattr(ProceduralT2I, "generate", forbidden)
    for method in ("describe", "rewrite_prompt", "write_variants", "critique", "revise", "judge"):
        monkeypatch.setattr(SceneAnalyst, method, forbidden)
    return calls


def _records(run_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run_dir / "cases").glob("*/*.json"))]


def _mtimes(run_dir: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for folder in ("images", "references")
            for p in (run_dir / folder).rglob("*.png")}


def test_rescore_adds_psnr_everywhere_without_model_calls(run_dir, no_models):
    before = _records(run_dir)
    mtimes = _mtimes(run_dir)
    result = rescore(run_dir, ["psnr"])
    assert no_models == []
    assert _mtimes(run_dir) == mtimes  # no image was written again

    after = _records(run_dir)
    assert len(after) == len(before) == 3
    for old, new in zip(before, after, strict=True):
        candidates = [c for r in new["rounds"] for c in r["candidates"]]
        assert len(candidates) == 2 * 2
        assert all(isinstance(c["scores"]["psnr"], float) for c in candidates)
        old_candidates = [c for r in old["rounds"] for c in r["candidates"]]
        # selection scores and choices stay as the loop made them
        assert [c["selection"] for c in candidates] == [c["selection"] for c in old_candidates]
        assert new["best"]["image"] == old["best"]["image"]
        assert new["final_scores"]["psnr"] == new["best"]["scores"]["psnr"]
        assert new["round1_best"]["scores"]["psnr"] > 0
        assert {k: v for k, v in new["final_scores"].items() if k != "psnr"} == old["final_scores"]
        assert new["rescored"] == ["psnr"]

    # the values are PSNR of the stored files
    record = after[0]
    reference = Reference(record["case_id"], load_image(run_dir / record["reference"]))
    expected = PSNR()(reference, [load_image(run_dir / record["best"]["image"])])[0]
    assert record["final_scores"]["psnr"] == pytest.approx(expected)

    # leaderboard, results, spec, run info and report follow
    psnr = result.leaderboard[0].metrics["psnr"]
    assert psnr.mean is not None and psnr.round1 is not None
    board = json.loads((run_dir / "leaderboard.json").read_text())["models"][0]
    assert board["metrics"]["psnr"]["mean"] == pytest.approx(psnr.mean)
    assert "psnr" in (run_dir / "leaderboard.md").read_text()
    assert "psnr" in (run_dir / "leaderboard.tex").read_text()
    lines = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert all("psnr" in line["final_scores"] for line in lines)
    spec = yaml.safe_load((run_dir / "spec.yaml").read_text())
    assert [m["name"] for m in spec["metrics"]][-1] == "psnr"
    info = json.loads((run_dir / "run.json").read_text())
    assert info["rescored"][-1]["metrics"] == ["psnr"]
    assert info["spec_fingerprint"] == load_spec(run_dir / "spec.yaml").fingerprint()
    assert info["rescored"][-1]["previous_spec_fingerprint"] != info["spec_fingerprint"]
    html = (run_dir / "report" / "index.html").read_text()
    assert "psnr" in html and "Rescored after the run" in html
    loaded = RunResult.load(run_dir)
    assert loaded.leaderboard[0].metrics["psnr"].mean == pytest.approx(result.leaderboard[0].metrics["psnr"].mean)


def test_metric_as_yaml_mapping_and_rerun_resumes(run_dir):
    rescore(run_dir, ["{name: psnr, label: psnr64, params: {size: 64}}"])
    record = _records(run_dir)[0]
    assert "psnr64" in record["final_scores"]
    spec = load_spec(run_dir / "spec.yaml")
    assert spec.metrics[-1].label == "psnr64" and spec.metrics[-1].params == {"size": 64}
    # the updated spec.yaml is the run's spec: running it again resumes, every case reused
    again = repainter.run(run_dir / "spec.yaml")
    assert again.info.cases.reused == 3 and again.info.cases.done == 0
    assert "psnr64" in again.leaderboard[0].metrics


def test_rescoring_a_metric_again_replaces_it(run_dir):
    rescore(run_dir, ["{name: psnr, params: {size: 32}}"])
    rescore(run_dir, ["{name: psnr, params: {size: 128}}"])
    spec = load_spec(run_dir / "spec.yaml")
    assert [m.display_name for m in spec.metrics].count("psnr") == 1
    assert spec.metrics[-1].params == {"size": 128}
    info = json.loads((run_dir / "run.json").read_text())
    assert len(info["rescored"]) == 2


def test_reselect_with_new_weights(run_dir, no_models):
    result = rescore(run_dir, ["psnr"], selection={"psnr": 1.0}, reselect=True)
    for record in result.records:
        candidates = [c for r in record.rounds for c in r.candidates]
        for c in candidates:
            assert c.selection == pytest.approx(c.scores["psnr"] / 100.0)
        best = max(candidates, key=lambda c: c.selection)
        assert record.best.selection == pytest.approx(best.selection)
        assert record.final_scores["selection"] == pytest.approx(best.selection)
        assert record.best_ever_by_round[-1] == pytest.approx(best.selection)
    assert load_spec(run_dir / "spec.yaml").selection == {"psnr": 1.0}


def test_failures_leave_the_folder_unchanged(run_dir):
    before = {p: p.read_bytes() for p in run_dir.rglob("*.json")}
    with pytest.raises(RescoreError, match="unknown metrics"):
        rescore(run_dir, ["no_such_metric"])
    with pytest.raises(RescoreError, match="reselect"):
        rescore(run_dir, ["psnr"], selection={"psnr": 1.0})
    # a metric that fails on a case (no ground truth) stops before anything is written
    path = max((run_dir / "cases").glob("*/*.json"))
    record = json.loads(path.read_text())
    record["ground_truth"] = None
    path.write_text(json.dumps(record))
    before[path] = path.read_bytes()
    with pytest.raises(RescoreError, match="ground-truth"):
        rescore(run_dir, ["psnr", "{name: object_f1, label: f1_strict, params: {color_tolerance: 5}}"])
    assert {p: p.read_bytes() for p in run_dir.rglob("*.json")} == before


def test_cli_rescore(run_dir, no_models):
    out = CliRunner().invoke(app, ["rescore", str(run_dir), "--metrics", "psnr", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["models"]["procedural"]["done"] == 3
    assert "psnr" in _records(run_dir)[0]["final_scores"]
    bad = CliRunner().invoke(app, ["rescore", str(run_dir), "--metrics", "nope"])
    assert bad.exit_code == 2
