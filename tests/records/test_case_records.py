"""Typed case records: the fixture run folder written before schema versions (tests/fixtures/run_v0,
see tests/fixtures/README.md) is read and migrated, a run of its spec today writes the same
records, and a record that cannot be read fails alone with its reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from repainter.records import (
    LOCATION_FIELDS,
    VOLATILE_FIELDS,
    CaseRecord,
    RecordVersionError,
    ResultLine,
    dump_record,
    load_case_record,
    load_record,
)
from repainter.result import RunResult
from repainter.store import RunStore, load_case_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
RUN_V0 = FIXTURES / "run_v0"
CASE_FILES = sorted(RUN_V0.glob("cases/*/*.json"))


def _moved(data):
    """A version 0 / 1 record as version 2 writes it: each candidate's ``drawn`` scene in its
    place as ``metadata: {drawn_scene: ...}`` (a None scene is simply absent)."""
    if isinstance(data, list):
        return [_moved(v) for v in data]
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key == "drawn":
            if value is not None:
                out["metadata"] = {"drawn_scene": value}
        else:
            out[key] = _moved(value)
    return out


def _text(data) -> str:
    """A record as the store writes it (repainter.store.write_json)."""
    return json.dumps(data, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


@pytest.fixture
def run_copy(tmp_path) -> Path:
    """A writable copy of the fixture run folder."""
    return Path(shutil.copytree(RUN_V0, tmp_path / "run"))


@pytest.mark.parametrize("path", CASE_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_version_0_records_migrate_and_write_back_unchanged_but_for_the_version(path):
    text = path.read_text(encoding="utf-8")
    data = json.loads(text)
    assert "schema_version" not in data
    record = load_case_record(data)
    assert record.schema_version == CaseRecord.current_version == 2
    assert "drawn" in text  # the fixture's simulated renders carry their scene the old way
    # every key in today's order: schema_version added in front, drawn moved into metadata
    assert _text(dump_record(record)) == _text({"schema_version": 2, **_moved(data)})
    assert _text(data) == text  # the fixture itself is in the store's format


def test_version_0_results_lines_migrate_and_match_their_records(run_copy):
    from repainter.store import result_line

    lines = (RUN_V0 / "results.jsonl").read_text(encoding="utf-8").splitlines()
    migrated = [load_record(ResultLine, json.loads(line)) for line in lines]
    assert [dump_record(m) for m in migrated] == [{"schema_version": 1, **json.loads(line)}
                                                  for line in lines]
    # each line is what today's code derives from the (migrated) record
    records = {(r.model, r.case_id): r for r in RunStore(run_copy).records()}
    assert [result_line(records[(m.model, m.case_id)]) for m in migrated] == [
        dump_record(m) for m in migrated]


def test_fixture_records_read_as_typed_records(run_copy):
    records = RunStore(run_copy).records()
    assert len(records) == 6 and all(r.done for r in records)
    by_model = {}
    for record in records:
        by_model.setdefault(record.model, []).append(record)
        assert record.best is not None and record.round1_best is not None
        assert record.final_scores["selection"] == record.best.selection
        assert record.best_ever_by_round[-1] == record.best.selection
        assert record.iut.global_description and record.ground_truth["objects"]
        assert all(c.image for c in record.candidates())
        assert record.judgement.aesthetic in range(1, 6)
    assert {r.strategy_name for r in by_model["sim-b"]} == {"best_of_n"}
    assert {r.strategy for r in by_model["sim-a"]} == {None}  # the default method says nothing


def test_report_result_and_rescore_work_on_the_migrated_fixture(run_copy):
    from repainter.report.html import write_report
    from repainter.rescore import rescore

    page = write_report(run_copy).read_text(encoding="utf-8")
    assert "single-00" in page and "sim-b" in page
    result = RunResult.load(run_copy)
    assert len(result.cases_frame()) == 6 and len(result.to_pandas()) == 12
    rescored = rescore(run_copy, ["psnr"], report=False)
    assert all(r.rescored == ["psnr"] and "psnr" in r.final_scores for r in rescored.records)
    stored = json.loads((run_copy / "cases/sim-a/single-00.json").read_text())
    assert stored["schema_version"] == 2 and "psnr" in stored["best"]["scores"]
    assert stored["best"]["metadata"]["drawn_scene"] and "drawn" not in stored["best"]
    # rescored, the records are otherwise what they were (same keys, same order, plus rescored)
    before = json.loads((RUN_V0 / "cases/sim-a/single-00.json").read_text())
    # (and the identity of the metric it added, issue 27: the old metrics' are not known)
    assert [k for k in stored if k != "metrics"] == ["schema_version", *before, "rescored"]
    assert set(stored["metrics"]) == {"psnr"}
    lines = [json.loads(line) for line in (run_copy / "results.jsonl").read_text().splitlines()]
    assert all("psnr" in line["final_scores"] for line in lines)


@pytest.mark.slow
def test_a_run_of_the_fixture_spec_writes_the_same_records(tmp_path, run_copy):
    """Same spec, today's code: equal records but for wall-clock seconds (``timings``) and the
    dataset file's absolute path (``source``), results.jsonl byte for byte but for each line's
    new ``schema_version``, the same means."""
    from repainter.runner import run
    from repainter.spec import load_spec

    spec = load_spec(FIXTURES / "run_v0.spec.yaml").model_copy(
        update={"output_dir": str(tmp_path / "new")})
    fresh = run(spec)
    # metrics: each metric's identity, a field added on purpose since the fixture (issue 27)
    ignored = set(VOLATILE_FIELDS) | set(LOCATION_FIELDS) | {"metrics"}
    old = {(r.model, r.case_id): r for r in RunStore(run_copy).records()}
    assert {(r.model, r.case_id) for r in fresh.records} == set(old)
    for record in fresh.records:
        assert record.comparable(ignored) == old[(record.model, record.case_id)].comparable(ignored)
    lines = (fresh.run_dir / "results.jsonl").read_text(encoding="utf-8").splitlines()
    old_lines = (RUN_V0 / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == [json.dumps({"schema_version": 1, **json.loads(line)}, ensure_ascii=False)
                     for line in old_lines]
    assert [load_record(ResultLine, json.loads(line)) for line in old_lines] == [
        load_record(ResultLine, json.loads(line)) for line in lines]
    assert fresh.summary()["models"] == RunResult.load(run_copy).summary()["models"]


def test_a_record_from_a_newer_repainter_is_named_and_skipped(run_copy, caplog):
    path = run_copy / "cases/sim-a/single-01.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema_version": 99}))
    with pytest.raises(RecordVersionError, match=r"single-01\.json: case has schema_version 99 "
                                                  r"but this repainter reads up to 2"):
        load_case_file(path)
    store = RunStore(run_copy)
    assert len(store.records()) == 5
    assert store.unreadable == ["cases/sim-a/single-01.json"]
    assert "upgrade repainter" in store.unreadable_reasons["cases/sim-a/single-01.json"]
    assert "cases/sim-a/single-01.json" in caplog.text


def test_a_record_missing_a_required_field_fails_alone_with_a_readable_reason(run_copy):
    from repainter.report.html import build_report_context

    path = run_copy / "cases/sim-b/single-02.json"
    data = json.loads(path.read_text())
    del data["status"]
    data["rounds"][0]["candidates"][0]["seed"] = "not a seed"
    path.write_text(json.dumps(data))
    store = RunStore(run_copy)
    assert len(store.records()) == 5
    reason = store.unreadable_reasons["cases/sim-b/single-02.json"]
    assert reason.startswith("cases/sim-b/single-02.json: not a valid case record: ")
    assert "status: Field required" in reason and "rounds.0.candidates.0.seed" in reason
    context = build_report_context(run_copy)
    (failure,) = context["failures"]
    assert "status: Field required" in failure["error"]
    assert not store.is_done("sim-b", "single-02")  # the next run redoes that case


def test_records_refuse_non_finite_numbers_and_unknown_keys():
    with pytest.raises(ValueError, match="finite number"):
        CaseRecord(case_id="c", model="m", status="done", final_scores={"ssim": float("nan")})
    with pytest.raises(ValueError, match="Extra inputs are not permitted"):
        load_case_record({"case_id": "c", "model": "m", "status": "done", "typo_field": 1})


def test_unset_optional_fields_are_not_written():
    failed = CaseRecord(case_id="c", model="m", category="x", status="failed", error="loop: boom",
                        traceback=["frame"], source="s", rounds=[], final_scores={})
    assert list(dump_record(failed)) == ["schema_version", "case_id", "model", "category",
                                         "status", "error", "traceback", "source", "rounds",
                                         "final_scores"]
    assert failed.best is None and failed.mllm_usage.calls is None and failed.strategy is None
