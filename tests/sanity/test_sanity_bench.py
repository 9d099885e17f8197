"""The sanity check on the simulation bench (the default spec), where its verdicts can be
checked against the bench's truth: scene_truth grades the scene the model drew against the
reference's ground truth, with no detector and no pixels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from repainter.cli import app
from repainter.report.validity import TRUSTED
from repainter.sanity import SanityConfig, run_sanity
from repainter.spec import build_spec

ROOT = Path(__file__).resolve().parents[2]


def _small(tmp_path, **config):
    spec = build_spec({"output_dir": str(tmp_path / "run"), "dataset": {"limit": 3},
                       "loop": {"rounds": 1, "variants": 2}})
    settings = {"references": 3, "rungs": 3, "corruptions": ["blur", "other_blend"], **config}
    return spec, run_sanity(spec, SanityConfig(**settings), command="test")


@pytest.mark.slow
def test_the_check_writes_its_files_into_the_specs_run_folder_and_a_run_resumes_there(tmp_path):
    from repainter.runner import run

    spec, data = _small(tmp_path)
    root = tmp_path / "run"
    assert json.loads((root / "sanity.json").read_text())["cases"] == data["cases"]
    assert len(data["cases"]) == 3
    markdown = (root / "SANITY.md").read_text()
    assert "## Headline" in markdown and "prompt-information ladder for sim" in markdown
    assert (root / "descriptions").is_dir()  # described once, kept for the run
    assert sorted(p.name for p in (root / "sanity" / "sim").iterdir()) == data["cases"]
    prompt = data["ladders"]["prompt"]["models"]["sim"]
    assert prompt["rungs"][0] == "keeps all" and len(prompt["rungs"]) == 3
    assert {"selection", "judge", "scene_truth", "region_match"} <= set(prompt["metrics"])
    blur = data["ladders"]["corruption:blur"]["models"]["sim"]
    assert "scene_truth" in blur["not_applicable"] and "scene_truth" not in blur["metrics"]
    assert data["skipped_ladders"]["sim"]["sampler"].startswith("the sim backend has no")
    assert set(data["corruption_sources"]["sim"].values()) == {"one-shot"}
    # the folder stays the spec's run folder: a run resumes in it, and its leaderboard says
    # what the check found
    result = run(spec)
    assert not result.failed and result.info.status == "finished"
    assert "## Metric sanity" in (root / "leaderboard.md").read_text()


def test_after_a_run_the_corruption_ladder_starts_from_the_loops_best_render(tmp_path):
    from repainter.runner import run

    spec = build_spec({"output_dir": str(tmp_path / "run"), "dataset": {"limit": 2},
                       "loop": {"rounds": 1, "variants": 2}})
    run(spec)
    data = run_sanity(spec, SanityConfig(references=2, rungs=3, ladders=["corruption"],
                                         corruptions=["mask"], judge=False))
    assert set(data["corruption_sources"]["sim"].values()) == {"loop best"}
    assert "judge" not in data["ladders"]["corruption:mask"]["models"]["sim"]["metrics"]
    # the finished run's leaderboard and report gain the section
    from repainter.report.html import write_report

    root = tmp_path / "run"
    assert "## Metric sanity" in (root / "leaderboard.md").read_text()
    html = write_report(root).read_text()
    assert 'id="sanity"' in html and "mask corruption ladder" in html


def test_the_cli_runs_it_and_says_each_mistake_in_one_line(tmp_path):
    runner = CliRunner()
    args = ["sanity", "--set", f"output_dir={tmp_path / 'run'}", "--set", "dataset.limit=3",
            "--references", "3", "--rungs", "3", "--corruptions", "mask", "--no-judge",
            "--renders", "2", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["judge"] is False and data["config"]["corruptions"] == ["mask"]
    assert data["command"].startswith("repainter ")
    # two renders per prompt rung, each saved, their scores averaged per rung
    case = data["cases"][0]
    saved = list((tmp_path / "run" / "sanity" / "sim" / case).glob("prompt-r*.png"))
    assert len(saved) == 3 * 2
    assert len(data["ladders"]["prompt"]["models"]["sim"]["metrics"]["selection"]
               ["rung_means"]) == 3
    bad = runner.invoke(app, ["sanity", "--rungs", "2", "--set", f"output_dir={tmp_path / 'x'}"])
    assert bad.exit_code == 2 and "error:" in bad.output and "rungs" in bad.output
    both = runner.invoke(app, ["sanity", "--spec", "a.yaml", "--run", str(tmp_path)])
    assert both.exit_code == 2 and "not both" in both.output
    unknown = runner.invoke(app, ["sanity", "--corruptions", "smear",
                                  "--set", f"output_dir={tmp_path / 'y'}"])
    assert unknown.exit_code == 2 and "smear" in unknown.output


@pytest.mark.slow
def test_on_the_bench_the_ladders_order_by_the_truth_and_agree_with_meta_eval(tmp_path):
    spec = build_spec({"output_dir": str(tmp_path / "run")})
    data = run_sanity(spec, SanityConfig(references=20))
    ladders = data["ladders"]
    # the prompt ladder's order holds in what the model drew (the truth sees no pixels)
    truth = ladders["prompt"]["models"]["sim"]["metrics"]["scene_truth"]
    assert truth["tau"] >= 0.9 and truth["tau_ci"][0] >= 0.6, truth
    # the corruption ladders hold by construction; the default selection orders each of them
    for name in ("noise_blend", "other_blend", "blur", "patch_shuffle", "mask"):
        stats = ladders[f"corruption:{name}"]["models"]["sim"]["metrics"]["selection"]
        assert stats["tau"] >= 0.9, (name, stats)
    # meta-eval (VALIDITY.md): the default selection meets tau >= 0.9 on every required ladder;
    # the sanity check's verdict for it on this bench is the same
    validity = json.loads((ROOT / "validity.json").read_text())
    assert validity["config"]["selection"] in (None, dict(spec.selection))
    meta_eval_trusts = all(ladder["metrics"]["selection"]["tau_seed_mean"] >= TRUSTED
                           for ladder in validity["ladders"].values() if ladder["required"])
    assert meta_eval_trusts
    assert data["selection_check"]["sim"] == {"measured": [n for n in ladders if n != "sampler"],
                                              "failed": [], "passes": True}
    assert ladders["prompt"]["models"]["sim"]["metrics"]["selection"]["verdict"] == "orders"
    agreement = data["judge_agreement"]["sim"]["prompt"]
    assert agreement["rate"] >= 0.8 and agreement["pairs"] > 0


def test_meta_eval_with_a_spec_runs_the_sanity_check_on_that_specs_models(tmp_path):
    spec = tmp_path / "mine.yaml"
    spec.write_text(f"output_dir: {tmp_path / 'run'}\ndataset: {{limit: 2}}\n")
    result = CliRunner().invoke(app, ["meta-eval", "--spec", str(spec), "--scenes", "2",
                                      "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["kind"] == "repainter-sanity" and len(data["cases"]) == 2
    assert (tmp_path / "run" / "SANITY.md").is_file()
    mixed = CliRunner().invoke(app, ["meta-eval", "--spec", str(spec), "--rounds", "2"])
    assert mixed.exit_code == 2 and "not --rounds" in mixed.output


def test_a_failing_case_is_left_out_with_its_reason_and_all_failing_fails_the_check(
        tmp_path, monkeypatch):
    import repainter.sanity.run as sanity_run
    from repainter.failures import RunFailedError

    real, calls = sanity_run._one_case, []

    def second_fails(ctx, ladders, case_id, other, steps):
        calls.append(case_id)
        if len(calls) == 2:
            raise RuntimeError("server said no")
        return real(ctx, ladders, case_id, other, steps)

    monkeypatch.setattr(sanity_run, "_one_case", second_fails)
    spec = build_spec({"output_dir": str(tmp_path / "run"), "dataset": {"limit": 3}})
    config = SanityConfig(references=3, rungs=3, ladders=["prompt"], judge=False)
    prompt = run_sanity(spec, config)["ladders"]["prompt"]["models"]["sim"]
    assert prompt["skipped"] == {calls[1]: "RuntimeError: server said no"}
    assert prompt["cases"] == 2
    assert f"case {calls[1]}: RuntimeError: server said no" in (
        tmp_path / "run" / "SANITY.md").read_text()

    def always_fails(*args):
        raise RuntimeError("bad key")

    monkeypatch.setattr(sanity_run, "_one_case", always_fails)
    with pytest.raises(RunFailedError, match="every case of sim failed .first: RuntimeError"):
        run_sanity(spec, config)
