"""run.json as a typed, versioned record: migration from today's files, the status written while
a run goes on, a newer schema, unknown keys."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pydantic
import pytest

import repainter
from repainter.records.base import RecordVersionError, dump_record, load_record
from repainter.records.run_info import RunInfo
from repainter.result import RunResult
from repainter.run_status import recorded_outcome
from repainter.store import RunStore

FIXTURES = Path(__file__).parents[1] / "fixtures"


@pytest.mark.parametrize("path", [FIXTURES / "run_v0" / "run.json",
                                  *(FIXTURES / "leaderboard_v0" / kind / "run.json"
                                    for kind in ("grid", "seeds", "adaptive"))],
                         ids=["run", "grid", "seeds", "adaptive"])
def test_version_0_run_json_migrates_keeping_every_value(path):
    old = json.loads(path.read_text())
    info = load_record(RunInfo, old)
    assert info.schema_version == 1 and info.status == "finished"
    dumped = dump_record(info)
    for key, value in old.items():
        if key == "cases":  # the counts a kind of run does not keep are null
            assert {k: v for k, v in dumped[key].items() if v is not None} == value
        else:
            assert dumped[key] == value, key


def test_fixture_fields_are_typed():
    info = load_record(RunInfo, json.loads((FIXTURES / "run_v0" / "run.json").read_text()))
    assert (info.cases.done, info.cases.failed, info.cases.total) == (6, 0, 6)
    assert info.environment["git"]["commit"].startswith("db326b0")
    assert info.spec["name"] == "fixture-v0" and info.render_flags["sim-a"]["flagged"] == 0
    adaptive = load_record(RunInfo, json.loads(
        (FIXTURES / "leaderboard_v0" / "adaptive" / "run.json").read_text())).adaptive
    assert adaptive.references_used == len(adaptive.order) and adaptive.pairs[0].model_a == "good"
    grid = load_record(RunInfo, json.loads(
        (FIXTURES / "leaderboard_v0" / "grid" / "run.json").read_text())).grid
    assert grid.mllm == ["sharp", "blurry"] and grid.t2i == ["good", "bad"]


def test_run_result_opens_a_version_0_folder():
    result = RunResult.load(FIXTURES / "run_v0")
    assert isinstance(result.info, RunInfo) and result.info.cases.done == 6
    assert result.summary()["cases"] == {"done": 6, "failed": 0, "reused": 0, "total": 6}


def test_status_is_written_while_the_run_goes_on(tmp_path):
    store = RunStore(tmp_path)
    store.write_run_info(RunInfo(status="running", warnings=["w"]))
    info = store.read_run_info().merged(RunInfo(status="running", started_at="t0"))
    with pytest.raises(ValueError), recorded_outcome(store, info):
        raise ValueError("the MLLM server went away")
    failed = store.read_run_info()
    assert (failed.status, failed.error, failed.warnings) == (
        "failed", "ValueError: the MLLM server went away", ["w"])
    assert failed.finished_at is not None and failed.started_at == "t0"
    info.update(status="finished", error=None, cases={"done": 1, "failed": 0, "total": 1})
    store.write_run_info(info)
    again = json.loads((tmp_path / "run.json").read_text())
    assert again["schema_version"] == 1 and again["status"] == "finished" and again["error"] is None
    assert again["cases"]["done"] == 1


def test_a_run_writes_version_1_and_reads_it_back(tmp_path):
    spec = repainter.build_spec({"output_dir": str(tmp_path / "run"), "dataset": {"limit": 1},
                                 "judge": False, "loop": {"rounds": 1, "variants": 1}})
    result = repainter.run(spec)
    written = json.loads((result.run_dir / "run.json").read_text())
    assert written["schema_version"] == 1 and written["status"] == "finished"
    assert RunStore(result.run_dir).read_run_info() == result.info
    assert result.info.cases.done == 1 and result.info.spec["seed"] == 0


def test_unknown_keys_and_wrong_types_are_refused():
    with pytest.raises(pydantic.ValidationError, match="statsu"):
        RunInfo(statsu="finished")
    info = RunInfo()
    with pytest.raises(pydantic.ValidationError):
        info.update(cases={"done": "many"})


def test_run_json_from_a_newer_repainter_is_refused_clearly(tmp_path):
    shutil.copy(FIXTURES / "run_v0" / "run.json", tmp_path / "run.json")
    data = dump_record(RunStore(tmp_path).read_run_info())
    (tmp_path / "run.json").write_text(json.dumps({**data, "schema_version": 3}))
    with pytest.raises(RecordVersionError, match="run_info has schema_version 3 but this "
                                                 "repainter reads up to 1"):
        RunStore(tmp_path).read_run_info()
