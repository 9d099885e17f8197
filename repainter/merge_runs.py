"""Compare finished runs without running anything again: one leaderboard and report from several
run folders that share references and protocol.

Runs are comparable when their specs agree on everything but the T2I models (dataset, MLLM,
metrics, selection, loop, judge, seed: ``RunSpec.fingerprint(without_models=True)``); anything
else is refused with the keys that differ. Only the references every run finished or attempted
are kept. The new folder holds copies of the runs' case records and the files they point to
(references, descriptions, each model's images), then results, leaderboard and report are built
exactly as after a run.

    repainter compare runs/world-sdxl-... runs/world-flux-... -o runs/sdxl-vs-flux
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from repainter.errors import UserError
from repainter.spec import RunSpec, build_spec, load_run_spec
from repainter.store import SPEC_FILE, RunStore, slug


def _differing_keys(first: RunSpec, other: RunSpec) -> list[str]:
    skip = {"t2i", "output_dir", "runtime", "name"}
    a, b = first.model_dump(mode="json"), other.model_dump(mode="json")
    return sorted(k for k in a if k not in skip and a[k] != b.get(k))


def _load_runs(run_dirs: list[Path]) -> list[tuple[RunStore, RunSpec]]:
    runs = []
    for run_dir in run_dirs:
        if not (run_dir / SPEC_FILE).exists() or not (run_dir / "cases").is_dir():
            raise UserError(f"{run_dir} is not a finished run folder (no {SPEC_FILE} or cases/)")
        runs.append((RunStore(run_dir), load_run_spec(run_dir / SPEC_FILE)))
    first = runs[0][1]
    for store, spec in runs[1:]:
        if spec.fingerprint(without_models=True) != first.fingerprint(without_models=True):
            keys = ", ".join(_differing_keys(first, spec)) or "the protocol"
            raise UserError(f"{store.root} ran a different protocol than {runs[0][0].root} "
                            f"(differs in: {keys}); only runs that differ in their T2I models "
                            "can be compared")
    return runs


def _models(runs: list[tuple[RunStore, RunSpec]]) -> list[tuple[RunStore, Any]]:
    """Each T2I model once, from the first run that has it; a label used for two different
    models is refused."""
    chosen: dict[str, tuple[RunStore, Any]] = {}
    for store, spec in runs:
        for component in spec.t2i:
            label = component.display_name
            if label in chosen and chosen[label][1] != component:
                raise UserError(f"model label {label!r} names different models in "
                                f"{chosen[label][0].root} and {store.root}; give them distinct "
                                "labels (t2i.N.label) and run again")
            chosen.setdefault(label, (store, component))
    return list(chosen.values())


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists() or not source.exists():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)  # same disk: no extra space
    except OSError:
        shutil.copy2(source, target)


def _copy_tree(source: Path, target: Path) -> None:
    for path in sorted(source.rglob("*")) if source.is_dir() else []:
        if path.is_file():
            _link_or_copy(path, target / path.relative_to(source))


def merge_runs(run_dirs: list[str | Path], out_dir: str | Path | None = None):
    """Build one comparison folder from finished runs; returns its :class:`RunResult`."""
    from repainter.records.run_info import RunInfo
    from repainter.report.html import write_report
    from repainter.report.leaderboard import build_leaderboard, write_leaderboard
    from repainter.result import RunResult

    paths = [Path(p) for p in run_dirs]
    if len(paths) < 2:
        raise UserError("compare needs at least two run folders (or --t2i models to run)")
    runs = _load_runs(paths)
    models = _models(runs)
    first_store, first_spec = runs[0]
    data = first_spec.model_dump(mode="json")
    data["t2i"] = [component.model_dump(mode="json") for _, component in models]
    data["output_dir"] = str(out_dir) if out_dir else "runs/compare-{dataset}-{models}-{fingerprint}"
    spec = build_spec(data)
    store = RunStore(spec.run_dir)
    if store.root.resolve() in {p.resolve() for p in paths}:
        raise UserError("the comparison needs its own folder, not one of the runs (-o)")
    if (store.root / SPEC_FILE).exists() or (store.root / "cases").is_dir():
        raise UserError(f"{store.root} already holds a run; choose another folder with -o")

    per_run_cases = [{r.case_id for r in s.records()} for s, _ in runs]
    shared = set.intersection(*per_run_cases)
    if not shared:
        raise UserError("the runs share no references; compare runs over the same dataset")
    store.init(spec)
    for source, component in models:
        label = component.display_name
        for record in source.records():
            if record.model == label and record.case_id in shared:
                store.write_case_record(record)
        _copy_tree(source.root / "images" / slug(label), store.root / "images" / slug(label))
    for source, _spec in runs:
        for folder in ("references", "descriptions"):
            _copy_tree(source.root / folder, store.root / folder)

    labels = [component.display_name for _, component in models]
    records = [r for r in store.records() if r.case_id in shared]
    store.write_results_jsonl(records)
    leaderboard = build_leaderboard(records, labels)
    write_leaderboard(leaderboard, store.root, records)
    dropped = sorted(set.union(*per_run_cases) - shared)
    info = RunInfo(
        status="finished",
        merged_from=[str(p) for p in paths],
        merged_at=datetime.now(UTC).isoformat(timespec="seconds"),
        spec_fingerprint=spec.fingerprint(),
        cases={"total": len(shared) * len(labels), "references": len(shared)},
        references_not_in_every_run=dropped,
        warnings=list(first_store.read_run_info().warnings),
        environment={str(p): RunStore(p).read_run_info().environment for p in paths},
    )
    store.write_run_info(info)
    write_report(store.root)
    return RunResult(run_dir=store.root, spec=spec, records=records, leaderboard=leaderboard,
                     info=info)
