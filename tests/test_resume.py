"""A run killed midway resumes: finished cases are not redone, an interrupted case continues."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import repainter
from repainter.runner import run
from repainter.testing.t2i_faults import CrashOnce

CASES = 12


def _spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump({
        "name": "resume", "output_dir": str(tmp_path / "run"),
        "dataset": {"limit": CASES}, "loop": {"rounds": 2, "variants": 2},
    }))
    return path


def _records(run_dir: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (run_dir / "cases").glob("*/*.json")}


@pytest.mark.slow
def test_sigkilled_run_resumes_and_skips_finished_cases(tmp_path):
    spec = _spec_file(tmp_path)
    command = [sys.executable, "-m", "repainter.cli", "run", "--spec", str(spec), "--quiet"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run_dir = tmp_path / "run"
    deadline = time.monotonic() + 120
    while not _records(run_dir) and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _records(run_dir)
    assert 1 <= len(before) < CASES, "the run must be killed midway for this test to mean anything"

    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr

    after = _records(run_dir)
    assert len(after) == CASES
    for path, mtime in before.items():
        assert after[path] == mtime, f"{path.name} was redone"
    info = repainter.RunResult.load(run_dir).info
    assert info.cases.reused == len(before)
    assert info.cases.done == CASES - len(before)


def test_interrupted_case_resumes_at_the_node_that_failed(small_spec, monkeypatch):
    import repainter.executors.prepare as prepare_module

    original = prepare_module.prepare_context
    describe_calls = []

    def instrumented(crash: bool):
        def prepare(spec, store):
            ctx, items, components = original(spec, store)
            if crash:  # the first case's second generate call (its round 2) crashes
                ctx.t2i = {label: CrashOnce(b, crash_on_call=2) for label, b in ctx.t2i.items()}
            describe = ctx.mllm.describe
            ctx.mllm.describe = lambda *a, **k: describe_calls.append(1) or describe(*a, **k)
            return ctx, items, components

        return prepare

    monkeypatch.setattr(prepare_module, "prepare_context", instrumented(crash=True))
    first = run(small_spec)
    failed = [r for r in first.records if r.status == "failed"]
    assert len(failed) == 1 and "simulated crash" in failed[0].error
    case = failed[0].case_id
    round1 = sorted((small_spec.run_dir / "images").glob(f"*/{case}/r1_*.png"))
    assert round1
    stamps = {p: p.stat().st_mtime_ns for p in round1}
    assert len(describe_calls) == len(first.records)

    monkeypatch.setattr(prepare_module, "prepare_context", instrumented(crash=False))
    second = run(small_spec)
    assert all(r.status == "done" for r in second.records)
    record = next(r for r in second.records if r.case_id == case)
    assert len(record.rounds) == small_spec.loop.rounds
    assert {p: p.stat().st_mtime_ns for p in round1} == stamps, "round 1 was rendered again"
    assert len(describe_calls) == len(first.records), "a reference was described twice"
    assert second.info.cases.reused == len(first.records) - 1
    assert second.info.cases.done == 1


def test_a_reference_changed_before_the_resume_restarts_its_case(tmp_path, monkeypatch):
    """Issue 12 item 12: the resumed case mixed the old description with the new scoring."""
    import numpy as np
    from PIL import Image

    import repainter.executors.prepare as prepare_module
    from repainter.images import image_sha256, load_image
    from repainter.spec import build_spec

    images = tmp_path / "images"
    images.mkdir()

    def noise(seed):
        rng = np.random.default_rng(seed)
        return Image.fromarray(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))

    noise(0).save(images / "a.png")
    spec = build_spec({"preset": "world", "output_dir": str(tmp_path / "run"),
                       "dataset": {"name": "folder", "params": {"path": str(images)}},
                       "metrics": ["ssim", "color_histogram"], "judge": False,
                       "loop": {"rounds": 2, "variants": 1}})
    original = prepare_module.prepare_context
    described = []

    def instrumented(crash: bool):
        def prepare(spec, store):
            ctx, items, components = original(spec, store)
            if crash:
                ctx.t2i = {k: CrashOnce(b, crash_on_call=2) for k, b in ctx.t2i.items()}
            describe = ctx.mllm.describe
            ctx.mllm.describe = lambda image, *a, **k: (described.append(image_sha256(image))
                                                        or describe(image, *a, **k))
            return ctx, items, components

        return prepare

    monkeypatch.setattr(prepare_module, "prepare_context", instrumented(crash=True))
    from repainter.failures import RunFailedError

    with pytest.raises(RunFailedError) as failed:  # its one case failed: the run failed
        run(spec)
    assert failed.value.result.records[0].status == "failed"
    noise(1).save(images / "a.png")  # the user replaces the reference before resuming
    new_digest = image_sha256(load_image(images / "a.png"))
    monkeypatch.setattr(prepare_module, "prepare_context", instrumented(crash=False))
    record = run(spec).records[0]
    assert record.status == "done"
    assert record.reference_sha256 == new_digest
    assert described[-1] == new_digest, "the new reference was not described again"
    assert image_sha256(load_image(tmp_path / "run" / record.reference)) == new_digest
    assert len(record.rounds) == 2 and record.rounds[0].candidates
