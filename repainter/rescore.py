"""Rescore a finished run with new metrics, from the images it stored; no T2I model or MLLM runs.

    repainter rescore RUN --metrics psnr --metrics '{name: lpips, params: {net: alex}}'

For every finished case, each new metric scores every stored candidate of every round against the
stored reference (``references/<case>.png``; ground truth for metrics such as ``object_f1`` comes
from the case record). The scores are added to each candidate, to ``best`` / ``round1_best`` and
to ``final_scores``; then ``results.jsonl``, the leaderboard files and the HTML report are rebuilt.

Selection scores stay what they were (the loop chose its candidates with them) unless
``reselect=True`` with new ``selection`` weights: then every candidate's selection score, each
round's best and the best-ever candidate are recomputed post hoc. The critiques and revisions the
MLLM wrote are not redone, so a reselected run shows which stored candidate the new weights
prefer, not how the loop would have run with them. Where the best-ever candidate changes, the
judge's scores (which judged the old best) are dropped from ``final_scores``.

**spec.yaml is updated.** The new metrics are added to its ``metrics`` list (a metric with the
same label is replaced) and, with ``reselect``, its ``selection`` weights are changed. The run
folder then describes itself: ``RunResult.load`` and the leaderboard agree with the records, and
``repainter run --spec RUN/spec.yaml`` (same folder) resumes the run with the same fingerprint,
scoring any case it still has to run with the new metrics as well. The previous fingerprint and
what was rescored are recorded in ``run.json`` under ``rescored``. Failed cases are left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from repainter.backends.base import Metric, Reference
from repainter.images import atomic_write_bytes, load_image
from repainter.report.leaderboard import build_leaderboard, write_leaderboard
from repainter.result import RunResult
from repainter.scoring import finite_or_none, metric_scores, selection_score
from repainter.spec import ComponentSpec, RunSpec, SpecError, build_spec, load_spec
from repainter.store import SPEC_FILE, RunFolderBusyError, RunStore, run_folder_lock


class RescoreError(RuntimeError):
    """The run folder cannot be rescored as asked; nothing was changed."""


def parse_metric(value: ComponentSpec | str | dict[str, Any]) -> ComponentSpec:
    """A metric as a ComponentSpec: a registry name, a mapping, or YAML text of a mapping."""
    if isinstance(value, ComponentSpec):
        return value
    if isinstance(value, str):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            raise RescoreError(f"metric {value!r} is not a name or YAML mapping: {exc}") from exc
        value = parsed if isinstance(parsed, (str, dict)) else value
    try:
        return ComponentSpec.model_validate(value)
    except ValueError as exc:
        raise RescoreError(f"bad metric {value!r}: {exc}") from exc


def _build_metric(component: ComponentSpec) -> Metric:
    from repainter.components import ComponentError, create_component
    from repainter.registry import METRICS, UnknownComponentError

    try:
        metric = create_component(METRICS, component)
    except (UnknownComponentError, ComponentError, ValueError) as exc:
        raise RescoreError(str(exc)) from exc
    metric.name = component.display_name
    return metric


def _new_spec(spec: RunSpec, components: list[ComponentSpec],
              selection: dict[str, float] | None) -> RunSpec:
    data = spec.model_dump(mode="json")
    labels = [c.display_name for c in components]
    metrics = [m for m in data["metrics"]
               if ComponentSpec.model_validate(m).display_name not in labels]
    data["metrics"] = metrics + [c.model_dump(mode="json") for c in components]
    if selection is not None:
        data["selection"] = dict(selection)
    try:
        return build_spec(data)
    except SpecError as exc:
        raise RescoreError(str(exc)) from exc


def _reference(store: RunStore, record: dict[str, Any]) -> Reference:
    path = store.root / (record.get("reference") or store.reference_relpath(record["case_id"]))
    return Reference(
        id=record["case_id"], image=load_image(path), category=record.get("category") or "default",
        ground_truth=record.get("ground_truth"), source=record.get("source") or "",
        license=record.get("license") or "",
    )


def _score_record(store: RunStore, record: dict[str, Any], metrics: list[Metric]
                  ) -> dict[tuple[int, int], dict[str, float | None]]:
    """(round, variant) -> {metric: value} for every scorable candidate of one record."""
    reference = _reference(store, record)
    candidates = [c for rnd in record.get("rounds") or [] for c in rnd.get("candidates") or []
                  if not c.get("flagged") and c.get("image")]
    images = [load_image(store.root / c["image"]) for c in candidates]
    scores: dict[tuple[int, int], dict[str, float | None]] = {
        (c["round"], c["variant"]): {} for c in candidates
    }
    for metric in metrics:
        if not images:
            continue
        try:
            pairs = metric_scores(metric, metric.prepare(reference), candidates, images)
        except ValueError as exc:  # strict zip: a metric returned the wrong number of scores
            raise RuntimeError(f"{metric.name}: {exc}") from exc
        for candidate, value in pairs:
            scores[(candidate["round"], candidate["variant"])][metric.name] = finite_or_none(value)
    return scores


def _apply(record: dict[str, Any], new: dict[tuple[int, int], dict[str, Any]],
           reselect: dict[str, float] | None, selection_metrics: dict[str, Metric]) -> dict[str, Any]:
    """A copy of ``record`` with the new scores (and, with ``reselect``, the new choices)."""
    record = {**record, "rounds": [dict(r) for r in record.get("rounds") or []]}
    by_key: dict[tuple[int, int], dict[str, Any]] = {}
    for rnd in record["rounds"]:
        rnd["candidates"] = [dict(c) for c in rnd.get("candidates") or []]
        for cand in rnd["candidates"]:
            key = (cand["round"], cand["variant"])
            by_key[key] = cand
            if key in new:
                cand["scores"] = {**(cand.get("scores") or {}), **new[key]}
    old_best = record.get("best") or {}
    old_best_key = (old_best.get("round"), old_best.get("variant"))
    if reselect is not None:
        best = None
        curve = []
        for rnd in record["rounds"]:
            for cand in rnd["candidates"]:
                if cand.get("flagged"):
                    continue
                cand["selection"] = selection_score(cand.get("scores") or {}, reselect, selection_metrics)
                if cand["selection"] is None:
                    cand["invalid_reason"] = cand.get("invalid_reason") or "rescored: missing or non-finite score"
            selectable = [c for c in rnd["candidates"] if c.get("selection") is not None]
            round_best = max(selectable, key=lambda c: c["selection"], default=None)
            if round_best is not None and (best is None or round_best["selection"] > best["selection"]):
                best = round_best
            rnd["round_best"] = round_best["variant"] if round_best else None
            rnd["round_best_selection"] = round_best["selection"] if round_best else None
            rnd["best_ever_selection"] = best["selection"] if best else None
            curve.append(rnd["best_ever_selection"])
        record["best_ever_by_round"] = curve
        best_key = (best["round"], best["variant"]) if best else None
        first = record["rounds"][0] if record["rounds"] else None
        r1_key = (first["round"], first["round_best"]) if first and first.get("round_best") is not None else None
    else:
        best_key = old_best_key if old_best else None
        r1 = record.get("round1_best") or {}
        r1_key = (r1.get("round"), r1.get("variant")) if r1 else None
    record["best"] = dict(by_key[best_key]) if best_key in by_key else record.get("best")
    record["round1_best"] = dict(by_key[r1_key]) if r1_key in by_key else record.get("round1_best")
    best = record.get("best") or {}
    final = dict(record.get("final_scores") or {})
    judge = {k: v for k, v in final.items() if k.startswith("judge_")}
    final = {**(best.get("scores") or {}), "selection": best.get("selection")}
    if best_key == old_best_key:
        final.update(judge)
    elif record.get("judgement"):
        record["judgement"] = {**record["judgement"], "judged_image": old_best.get("image"),
                               "stale": "the best-ever candidate changed when rescored"}
    record["final_scores"] = final
    return record


def rescore(
    run_dir: str | Path,
    metrics: Iterable[ComponentSpec | str | dict[str, Any]],
    *,
    selection: dict[str, float] | None = None,
    reselect: bool = False,
    report: bool = True,
) -> RunResult:
    """Score every stored candidate of ``run_dir`` with ``metrics``; rebuild results and report.

    With ``reselect=True``, ``selection`` (metric label -> weight; default: the spec's weights)
    recomputes every selection score and which candidate is best. Builds metrics only: no T2I
    model or MLLM is constructed or called. All scores are computed before any file changes; a
    metric that fails on a case fails the rescore (RescoreError) and leaves the folder as it was.
    Holds the run folder's lock: a rescore while a run is still writing is refused.
    """
    try:
        with run_folder_lock(run_dir, "rescore", create=False):
            return _rescore(run_dir, metrics, selection=selection, reselect=reselect,
                            report=report)
    except RunFolderBusyError as exc:
        raise RescoreError(str(exc)) from exc


def _rescore(
    run_dir: str | Path,
    metrics: Iterable[ComponentSpec | str | dict[str, Any]],
    *,
    selection: dict[str, float] | None,
    reselect: bool,
    report: bool,
) -> RunResult:
    store = RunStore(run_dir)
    spec_path = store.root / SPEC_FILE
    if not spec_path.exists():
        raise RescoreError(f"{store.root} is not a run folder (no {SPEC_FILE})")
    spec = load_spec(spec_path)
    components = [parse_metric(m) for m in metrics]
    if selection is not None and not reselect:
        raise RescoreError("new selection weights need reselect=True (--reselect)")
    if not components and not reselect:
        raise RescoreError("nothing to do: give at least one metric (or reselect)")
    labels = [c.display_name for c in components]
    if len(set(labels)) != len(labels):
        raise RescoreError(f"metrics need distinct labels; got {labels}")
    new_spec = _new_spec(spec, components, selection if reselect else None)
    built = [_build_metric(c) for c in components]

    selection_metrics: dict[str, Metric] = {}
    weights = new_spec.selection if reselect else None
    if reselect:
        # similarity() of every weighted metric; only metrics not rescored now are built anew
        known = {m.name: m for m in built}
        for component in new_spec.metrics:
            name = component.display_name
            if name in new_spec.selection:
                selection_metrics[name] = known.get(name) or _build_metric(component)

    started = time.perf_counter()
    models = [t.display_name for t in new_spec.t2i]
    records = [r for r in store.records() if r.get("model") in models]
    updated = []
    for record in records:
        if record.get("status") != "done":
            updated.append(record)
            continue
        try:
            new = _score_record(store, record, built)
        except Exception as exc:  # a broken image or metric: stop before anything is written
            raise RescoreError(
                f"{record['model']} / {record['case_id']}: {type(exc).__name__}: {exc}"
            ) from exc
        fresh = _apply(record, new, weights, selection_metrics)
        fresh["rescored"] = sorted({*record.get("rescored", []), *labels})
        updated.append(fresh)

    # -- write: records, spec, run info, results, leaderboard, report ---------------------------
    for record in updated:
        if record.get("status") == "done":
            store.write_case_record(record)
    atomic_write_bytes(spec_path, new_spec.to_yaml().encode("utf-8"))
    info = store.read_run_info()
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": labels,
        "components": [c.model_dump(mode="json") for c in components],
        "reselect": reselect,
        "selection": dict(new_spec.selection) if reselect else None,
        "cases": sum(1 for r in updated if r.get("status") == "done"),
        "previous_spec_fingerprint": spec.fingerprint(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    info["rescored"] = [*info.get("rescored", []), entry]
    info["spec_fingerprint"] = new_spec.fingerprint()
    store.write_run_info(info)
    store.write_results_jsonl(updated)
    leaderboard = build_leaderboard(updated, models)
    write_leaderboard(leaderboard, store.root, updated)
    if report:
        from repainter.report.html import write_report

        write_report(store.root)
    return RunResult(run_dir=store.root, spec=new_spec, records=updated, leaderboard=leaderboard,
                     info=info)

