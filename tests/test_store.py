import json

import pytest
from PIL import Image

from repainter.images import atomic_write_bytes
from repainter.spec import RunSpec
from repainter.store import RunFolderError, RunStore, result_line, slug


def test_init_writes_spec_and_detects_resume(tmp_path):
    spec = RunSpec(output_dir=str(tmp_path / "run"))
    store = RunStore(spec.run_dir)
    assert store.init(spec) is False
    assert (store.root / "spec.yaml").exists()
    assert store.init(spec) is True


def test_init_refuses_a_folder_of_another_spec(tmp_path):
    store = RunStore(tmp_path / "run")
    store.init(RunSpec(output_dir=str(tmp_path / "run")))
    store.write_case_record({"case_id": "c", "model": "m", "status": "failed", "error": "x"})
    with pytest.raises(RunFolderError, match="different spec"):
        store.init(RunSpec(output_dir=str(tmp_path / "run"), seed=3))


def test_init_reuses_a_folder_whose_start_failed_before_any_case(tmp_path):
    store = RunStore(tmp_path / "run")
    store.init(RunSpec(output_dir=str(tmp_path / "run")))
    assert store.init(RunSpec(output_dir=str(tmp_path / "run"), seed=3)) is False
    assert "seed: 3" in (store.root / "spec.yaml").read_text()


def test_records_round_trip_and_done_status(tmp_path):
    store = RunStore(tmp_path)
    store.write_case_record({"case_id": "a/b", "model": "m 1", "status": "done", "final_scores": {}})
    store.write_case_record({"case_id": "c", "model": "m 1", "status": "failed", "error": "x"})
    assert store.is_done("m 1", "a/b") and not store.is_done("m 1", "c")
    assert not store.is_done("other", "a/b")
    assert {r["case_id"] for r in store.records()} == {"a/b", "c"}


def test_non_finite_numbers_are_refused_not_written(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(ValueError):
        store.write_case_record({"case_id": "a", "model": "m", "final_scores": {"x": float("nan")}})
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
    assert slug("../a b/c") == "a-b-c"
    assert slug("///") == "_"


def test_result_line_flattens_a_record():
    line = result_line({
        "case_id": "a", "model": "m", "status": "done", "rounds": [{}, {}],
        "round1_best": {"selection": 0.5, "scores": {"ssim": 0.4}},
        "final_scores": {"selection": 0.7}, "best": {"prompt": "p", "image": "i.png"},
    })
    assert line["round1_selection"] == 0.5 and line["rounds"] == 2 and line["best_prompt"] == "p"
    json.dumps(line)
