"""An MLLM x T2I grid: several describers in one run.

A spec whose ``mllm`` is a list runs one ordinary run per MLLM, each in its own sub-folder
``RUN/mllm/<slug(label)>/`` (descriptions, checkpoints, images and case records of that MLLM: a
description is shared by the T2I models of one MLLM, never across MLLMs). The grid folder holds
the list spec, ``run.json`` (per-MLLM token use and cost), ``results.jsonl`` and the grid
leaderboard, whose rows are cells ``<t2i>@<mllm>`` with separate ``t2i`` and ``mllm`` fields:

    RUN/spec.yaml  run.json  results.jsonl  leaderboard.{json,md,csv}  report/index.html
    RUN/mllm/<mllm>/...      an ordinary run folder of that MLLM (its own report)

Adding an MLLM (or a T2I model) to a finished grid re-runs only the new cells: the old MLLMs'
sub-runs find every case done and make no call. Reading a grid folder (its records, leaderboard
and page) lives in :mod:`repainter.report.grid`; this module runs one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from repainter.report.grid import (
    child_dir,
    grid_records,
    write_grid_leaderboard,
    write_grid_report,
)
from repainter.result import RunResult
from repainter.spec import ComponentSpec, RunSpec
from repainter.store import (
    SPEC_FILE,
    RunStore,
    check_distinct_names,
    refuse_foreign_folder,
    run_folder_lock,
)


def child_spec(spec: RunSpec, mllm: ComponentSpec) -> RunSpec:
    """The ordinary single-MLLM run of one grid row (budget decided by the grid)."""
    folder = str(child_dir(spec.run_dir, mllm)).replace("{", "{{").replace("}", "}}")
    data = {**spec.model_dump(mode="json"), "mllm": mllm.model_dump(mode="json"),
            "output_dir": folder, "budget": None}
    return RunSpec.model_validate(data)


def run_grid(spec: RunSpec, on_event=None, case_ids: list[str] | None = None, *,
             run: Callable[..., RunResult]) -> RunResult:
    """Run every MLLM's sub-run, then write the grid's records, leaderboard and report.

    ``run`` runs one MLLM's spec (:func:`repainter.runner.run`, which calls this: passed in so
    that this module does not import the runner back).
    """
    from repainter.run_status import now_iso, recorded_outcome

    check_distinct_names("MLLM label", [m.display_name for m in spec.mllms])
    root = spec.run_dir
    if not (root / SPEC_FILE).exists():
        refuse_foreign_folder(root)
    with run_folder_lock(root, "run"):
        store = RunStore(root)
        resumed = store.init(spec)
        started = time.perf_counter()
        info = store.read_run_info().update(
            status="running", resumed=resumed, started_at=now_iso(),
            spec_fingerprint=spec.fingerprint(), adaptive=None,
            grid={"mllm": [m.display_name for m in spec.mllms],
                  "t2i": [t.display_name for t in spec.t2i]})
        store.write_run_info(info)
        with recorded_outcome(store, info):  # run.json says failed / interrupted, and why
            usage, adaptations = {}, {}
            for mllm in spec.mllms:
                label = mllm.display_name

                def tagged(event, label=label):
                    if on_event is not None:
                        on_event({**event, "mllm": label})

                sub = run(child_spec(spec, mllm), on_event=tagged, case_ids=case_ids)
                usage[label] = sub.info.mllm_usage or {}
                adaptations.update(sub.info.mllm_adaptations or {})  # keyed by the same label
            records = grid_records(spec, case_ids)
        store.write_results_jsonl(records)
        rows, section = write_grid_leaderboard(spec, records, usage)
        info.update(status="finished", finished_at=now_iso(),
                    wall_seconds=round(time.perf_counter() - started, 3), mllm_usage=usage,
                    mllm_adaptations=adaptations,
                    cases={"total": len(records),
                           "done": sum(r.done for r in records)})
        store.write_run_info(info)
        write_grid_report(root, rows, section)
    return RunResult(run_dir=root, spec=spec, records=records, leaderboard=rows, info=info)
