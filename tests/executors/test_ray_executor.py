"""The Ray executor on a real local Ray cluster (CPU): same records as the local executor, a
killed worker loses and duplicates nothing, and finished runs are reused across executors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from repainter import runner  # noqa: E402
from repainter.executors.ray_pool import RayExecutor  # noqa: E402
from repainter.spec import build_spec  # noqa: E402

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _spec(folder: Path, executor: str, **ray_settings):
    return build_spec({
        "output_dir": str(folder), "dataset": {"limit": 3},
        "loop": {"rounds": 1, "variants": 2},
        "runtime": {"executor": executor, "ray": {"num_workers": 2, **ray_settings}},
    })


def _comparable(run_dir: Path) -> dict[str, dict]:
    """Every case record (wall-clock timings left out) and the bytes of every render."""
    records = {p.relative_to(run_dir).as_posix(): json.loads(p.read_text())
               for p in sorted((run_dir / "cases").glob("*/*.json"))}
    for record in records.values():
        record.pop("timings", None)
    renders = {p.relative_to(run_dir).as_posix(): p.read_bytes()
               for p in sorted((run_dir / "images").rglob("*.png"))}
    return {"records": records, "renders": renders}


def test_ray_and_local_give_identical_records_and_reuse_each_other(cluster, tmp_path):
    local = runner.run(_spec(tmp_path / "local", "local"))
    on_ray = runner.run(_spec(tmp_path / "ray", "ray"))
    assert on_ray.info.executor["name"] == "ray"
    # starting the pool and releasing the workers' models are timed apart from the cases
    info = on_ray.info
    assert info.setup_seconds > 0 and info.release_seconds >= 0
    assert info.framework_seconds <= info.loop_seconds - info.setup_seconds + 1e-3
    assert on_ray.info.cases.model_dump(exclude_none=True) == {"done": 3, "failed": 0, "reused": 0, "total": 3}
    assert _comparable(tmp_path / "ray") == _comparable(tmp_path / "local")
    assert [r.case_id for r in on_ray.records] == [r.case_id for r in local.records]

    # one worker running two references at once (threads in the actor): the same records
    threaded = runner.run(_spec(tmp_path / "threaded", "ray", num_workers=1, cases_per_worker=2))
    assert threaded.info.cases.done == 3
    assert _comparable(tmp_path / "threaded") == _comparable(tmp_path / "local")

    # a finished Ray run re-run locally, and a finished local run re-run on Ray: nothing to call
    again_local = runner.run(_spec(tmp_path / "ray", "local"))
    again_ray = runner.run(_spec(tmp_path / "local", "ray"))
    for again in (again_local, again_ray):
        assert again.info.cases.reused == 3 and again.info.cases.done == 0
        assert again.info.backend == {}, "a finished case called a backend"


def test_a_killed_worker_loses_no_case_and_counts_none_twice(cluster, tmp_path):
    baseline = tmp_path / "baseline"
    runner.run(_spec(baseline, "local"))
    spec = _spec(tmp_path / "killed", "ray")
    executor = RayExecutor(spec.runtime.ray)
    killed = []

    def kill_the_busy_worker(event):
        if event["event"] == "case" and not killed:
            for actor in executor.busy_actors():
                ray.kill(actor, no_restart=True)
                killed.append(actor)

    plan = runner.prepare(spec)
    counts, execution, seconds = runner.execute(plan, kill_the_busy_worker, executor=executor)
    result = runner.finalize(plan, counts, execution, seconds)
    assert killed and execution.executor["lost_workers"] >= 1
    assert counts == {"done": 3, "failed": 0, "reused": 0}
    assert len(result.records) == 3 and all(r.status == "done" for r in result.records)
    assert _comparable(tmp_path / "killed") == _comparable(baseline)


def test_a_case_whose_worker_keeps_dying_is_recorded_failed(cluster, tmp_path):
    spec = _spec(tmp_path / "doomed", "ray")
    spec.runtime.ray.max_retries = 1
    executor = RayExecutor(spec.runtime.ray)
    executor.on_dispatch = lambda actor: ray.kill(actor, no_restart=True)

    plan = runner.prepare(spec)
    counts, execution, seconds = runner.execute(plan, lambda event: None, executor=executor)
    assert counts["failed"] == 3 and counts["done"] == 0
    records = runner.finalize(plan, counts, execution, seconds).records
    assert all("worker lost 2 times" in r.error for r in records)
