import json

import pytest
from PIL import Image

from repainter.images import atomic_write_bytes
from repainter.records import CaseRecord
from repainter.spec import RunSpec
from repainter.store import RunFolderError, RunStore, result_line, slug


def test_init_writes_spec_and_detects_resume(tmp_path):
    spec = RunSpec(output_dir=str(tmp_path / "run"))
    store = RunStore(spec.run_dir)
    assert store.init(spec) is False
    assert (store.root / "spec.yaml").exists()
    assert store.init(spec) is False  # set up, but no run of it left a case
    store.write_case_record(CaseRecord(case_id="c", model="m", status="failed", error="x"))
    assert store.init(spec) is True


def test_init_refuses_a_folder_of_another_spec(tmp_path):
    store = RunStore(tmp_path / "run")
    store.init(RunSpec(output_dir=str(tmp_path / "run")))
    store.write_case_record(CaseRecord(case_id="c", model="m", status="failed", error="x"))
    with pytest.raises(RunFolderError, match="different spec"):
        store.init(RunSpec(output_dir=str(tmp_path / "run"), seed=3))


def test_init_reuses_a_folder_whose_start_failed_before_any_case(tmp_path):
    from repainter.records.run_info import RunInfo

    store = RunStore(tmp_path / "run")
    store.init(RunSpec(output_dir=str(tmp_path / "run")))
    store.write_run_info(RunInfo(repainter_version="0", status="failed"))  # as a start writes it
    assert store.init(RunSpec(output_dir=str(tmp_path / "run"), seed=3)) is False
    assert "seed: 3" in (store.root / "spec.yaml").read_text()


def test_records_round_trip_and_done_status(tmp_path):
    store = RunStore(tmp_path)
    store.write_case_record(CaseRecord(case_id="a/b", model="m 1", status="done", final_scores={}))
    store.write_case_record(CaseRecord(case_id="c", model="m 1", status="failed", error="x"))
    assert store.is_done("m 1", "a/b") and not store.is_done("m 1", "c")
    assert not store.is_done("other", "a/b")
    assert {r.case_id for r in store.records()} == {"a/b", "c"}


def test_non_finite_numbers_are_refused_not_written(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(ValueError):
        store.write_case_record(CaseRecord(case_id="a", model="m", status="done",
                                           final_scores={"x": float("nan")}))
    assert store.records() == []


def test_atomic_write_leaves_no_partial_file_on_error(tmp_path):
    target = tmp_path / "f.json"
    target.write_text("old")

    with pytest.raises(TypeError):
        atomic_write_bytes(target, object())  # type: ignore[arg-type]
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_reference_is_saved_once_and_description_cached(tmp_path):
    store = RunStore(tmp_path)
    store.save_reference("x", Image.new("RGB", (4, 4), "red"))
    first = (tmp_path / store.reference_relpath("x")).stat().st_mtime_ns
    store.save_reference("x", Image.new("RGB", (4, 4), "blue"))
    assert (tmp_path / store.reference_relpath("x")).stat().st_mtime_ns == first
    assert store.load_description("x") is None
    store.save_description("x", {"global_description": "d"})
    assert store.load_description("x") == {"global_description": "d"}


def test_slug_is_file_safe():
    assert slug("../a b/c").startswith("a-b-c~")
    assert slug("///").startswith("_~")
    for name in ("../a b/c", "///", ".", "..", "-x", "猫", "a\x00b", "x" * 300):
        made = slug(name)
        assert "/" not in made and not made.startswith((".", "-")) and len(made) <= 120


def test_result_line_flattens_a_record():
    line = result_line(CaseRecord(
        case_id="a", model="m", status="done", rounds=[{"round": 1}, {"round": 2}],
        round1_best={"round": 1, "variant": 0, "selection": 0.5, "scores": {"ssim": 0.4}},
        final_scores={"selection": 0.7},
        best={"round": 2, "variant": 0, "prompt": "p", "image": "i.png"},
    ))
    assert line["round1_selection"] == 0.5 and line["rounds"] == 2 and line["best_prompt"] == "p"
    json.dumps(line)


# -- issue 12 items 7-10 ----------------------------------------------------------------------


def test_slug_is_injective_and_keeps_safe_names():
    """Item 7: `猫`/`犬` both became `_`; `a b`, `a/b`, `a-b` all became `a-b`."""
    names = ["猫", "犬", "a b", "a/b", "a-b", "a_b", "proc a", "proc-a", "a.", "a", "_", "~"]
    assert len({slug(n) for n in names}) == len(names)
    assert slug("a-b") == "a-b" and slug("case_01.png") == "case_01.png"  # old names kept


def test_long_names_fit_the_file_system(tmp_path):
    """Item 8: a legal 240-character file name crashed every re-run."""
    store = RunStore(tmp_path)
    long_id = "y" * 240
    store.write_case_record(CaseRecord(case_id=long_id, model="m" * 250, status="done"))
    assert store.read_case_record("m" * 250, long_id).case_id == long_id
    store.save_description(long_id, {"d": 1})
    assert store.load_description(long_id) == {"d": 1}


def _noise(seed: int, size: int = 16) -> Image.Image:
    import numpy as np

    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8))


def test_folder_dataset_refuses_ids_that_collide(tmp_path):
    from repainter.datasets import DatasetError, FolderDataset

    (tmp_path / "x").mkdir()
    _noise(0).save(tmp_path / "x__y.png")
    _noise(1).save(tmp_path / "x" / "y.png")
    with pytest.raises(DatasetError, match=r"duplicate item id 'x__y.*x/y.png"):
        FolderDataset(str(tmp_path)).select()


def test_a_fresh_run_keeps_every_case_of_colliding_ids(tmp_path):
    """Item 7: a folder of 28 images gave 25 records; labels `proc a` / `proc-a` overwrote."""
    from repainter.runner import run
    from repainter.spec import build_spec

    images = tmp_path / "images"
    images.mkdir()
    names = ["猫", "犬", "a b", "a-b", "a+b"]
    for seed, name in enumerate(names):
        _noise(seed, 32).save(images / f"{name}.png")
    spec = build_spec({
        "preset": "world",
        "output_dir": str(tmp_path / "run"),
        "dataset": {"name": "folder", "params": {"path": str(images)}},
        "t2i": [{"name": "procedural", "label": "proc a"},
                {"name": "procedural", "label": "proc-a"}],
        "metrics": ["ssim", "color_histogram"], "judge": False,
        "loop": {"rounds": 1, "variants": 1},
    })
    result = run(spec)
    assert len(result.records) == 10
    assert {(r.model, r.case_id) for r in result.records} == {
        (m, n) for m in ("proc a", "proc-a") for n in names}
    assert len(list((tmp_path / "run" / "cases").glob("*/*.json"))) == 10


def test_output_folder_with_other_files_is_refused(tmp_path):
    """Item 9: `-o` at a folder of the user's files overwrote them."""
    mine = tmp_path / "my-photos"
    mine.mkdir()
    (mine / "holiday.png").write_bytes(b"precious")
    with pytest.raises(RunFolderError, match="not a repainter run folder"):
        RunStore(mine).init(RunSpec(output_dir=str(mine)))
    assert sorted(p.name for p in mine.iterdir()) == ["holiday.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    assert RunStore(empty).init(RunSpec(output_dir=str(empty))) is False


def test_cli_refuses_output_folder_with_other_files(tmp_path):
    from typer.testing import CliRunner

    from repainter.cli import app

    mine = tmp_path / "docs"
    mine.mkdir()
    (mine / "thesis.tex").write_text("x")
    result = CliRunner().invoke(app, ["run", "-o", str(mine), "--limit", "1", "--rounds", "1",
                                      "--variants", "1", "-q"])
    assert result.exit_code == 2 and "not a repainter run folder" in result.output
    assert sorted(p.name for p in mine.iterdir()) == ["thesis.tex"]
    assert (mine / "thesis.tex").read_text() == "x"


_HOLD_LOCK = """
import sys, time
from repainter.store import run_folder_lock
with run_folder_lock(sys.argv[1], "run"):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    """Item 10: `rescore` during a run wrote a partial mean and corrupted run.json."""
    import os
    import subprocess
    import sys

    from repainter.rescore import RescoreError, rescore
    from repainter.runner import run
    from repainter.store import RunFolderBusyError, run_folder_lock

    run_dir = tmp_path / "run"
    RunStore(run_dir).init(RunSpec(output_dir=str(run_dir)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run_dir)],
                              stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunFolderBusyError, match=f"pid {holder.pid}"):
            with run_folder_lock(run_dir, "compare"):
                pass
        with pytest.raises(RescoreError, match=f"in use by pid {holder.pid}"):
            rescore(run_dir, ["psnr"])
        with pytest.raises(RunFolderBusyError):
            run(RunSpec(output_dir=str(run_dir)))
    finally:
        holder.kill()
        holder.wait()
    # the holder died without releasing: its lock went with it, nothing stale blocks
    with run_folder_lock(run_dir, "report"):
        with run_folder_lock(run_dir, "nested"):  # re-entrant within one process
            pass
