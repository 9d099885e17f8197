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
scoring any case it still has to run with the new metrics as well; so does the original command
(without ``reselect``): :meth:`repainter.store.RunStore.with_rescored_metrics` adds the metrics
recorded under ``rescored`` in ``run.json`` to its spec. The previous fingerprint and
what was rescored are recorded in ``run.json`` under ``rescored``. Failed cases are left alone.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from repainter.backends.base import Metric, Reference
from repainter.backends.metric_identity import metric_identity
from repainter.images import atomic_write_bytes, load_image
from repainter.records import CandidateRecord, CaseRecord, dump_record
from repainter.records.run_info import RunInfo
from repainter.report.leaderboard import build_leaderboard, write_leaderboard
from repainter.result import RunResult
from repainter.scoring import finite_or_none, metric_scores, selection_score
from repainter.spec import ComponentSpec, RunSpec, SpecError, build_spec, load_run_spec
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


def _reference(store: RunStore, record: CaseRecord) -> Reference:
    path = store.root / (record.reference or store.reference_relpath(record.case_id))
    return Reference(
        id=record.case_id, image=load_image(path), category=record.category or "default",
        ground_truth=record.ground_truth, source=record.source or "",
        license=record.license or "",
    )


NewScores = dict[tuple[int, int], dict[str, float | None]]


def _score_record(store: RunStore, record: CaseRecord, metrics: list[Metric]) -> NewScores:
    """(round, variant) -> {metric: value} for every scorable candidate of one record."""
    reference = _reference(store, record)
    candidates = [c for c in record.candidates() if not c.flagged and c.image]
    images = [load_image(store.root / c.image) for c in candidates]
    scores: NewScores = {c.key: {} for c in candidates}
    for metric in metrics:
        if not images:
            continue
        try:
            # metric_scores reads the graph's candidate dicts (image, recorded metadata)
            as_dicts = [dump_record(c) for c in candidates]
            pairs = metric_scores(metric, metric.prepare(reference), as_dicts, images)
        except ValueError as exc:  # strict zip: a metric returned the wrong number of scores
            raise RuntimeError(f"{metric.name}: {exc}") from exc
        record_of = {id(d): c for d, c in zip(as_dicts, candidates, strict=True)}
        for candidate, value in pairs:
            scores[record_of[id(candidate)].key][metric.name] = finite_or_none(value)
    return scores


def _reselect(record: CaseRecord, weights: dict[str, float],
              selection_metrics: dict[str, Metric]) -> tuple[CandidateRecord | None, ...]:
    """Recompute every selection score, round best and the best-ever curve of ``record`` (in
    place); return the new best-ever candidate and round 1's best."""
    best: CandidateRecord | None = None
    curve = []
    for rnd in record.rounds:
        for cand in rnd.candidates:
            if cand.flagged:
                continue
            cand.selection = selection_score(cand.scores, weights, selection_metrics)
            if cand.selection is None:
                cand.invalid_reason = cand.invalid_reason or "rescored: missing or non-finite score"
        selectable = [c for c in rnd.candidates if c.selection is not None]
        round_best = max(selectable, key=lambda c: c.selection, default=None)
        if round_best is not None and (best is None or round_best.selection > best.selection):
            best = round_best
        rnd.round_best = round_best.variant if round_best else None
        rnd.round_best_selection = round_best.selection if round_best else None
        rnd.best_ever_selection = best.selection if best else None
        curve.append(rnd.best_ever_selection)
    record.best_ever_by_round = curve
    first = record.rounds[0] if record.rounds else None
    return best, first.best_candidate() if first else None


def _apply(record: CaseRecord, new: NewScores, reselect: dict[str, float] | None,
           selection_metrics: dict[str, Metric]) -> CaseRecord:
    """A copy of ``record`` with the new scores (and, with ``reselect``, the new choices)."""
    old_best = record.best
    record = record.model_copy(deep=True)
    by_key: dict[tuple, CandidateRecord] = {}
    for cand in record.candidates():
        by_key[cand.key] = cand
        if cand.key in new:
            cand.scores = {**cand.scores, **new[cand.key]}
    if reselect is not None:
        best, round1 = _reselect(record, reselect, selection_metrics)
        best_key, r1_key = (best.key if best else None), (round1.key if round1 else None)
    else:
        best_key = old_best.key if old_best else None
        r1_key = record.round1_best.key if record.round1_best else None
    # copies: the record's best and round-1 best are candidates of their own in the file
    record.best = by_key[best_key].model_copy() if best_key in by_key else record.best
    record.round1_best = (by_key[r1_key].model_copy() if r1_key in by_key
                          else record.round1_best)
    best = record.best
    judge = {k: v for k, v in record.final_scores.items() if k.startswith("judge_")}
    final = {**(best.scores if best else {}), "selection": best.selection if best else None}
    if best_key == (old_best.key if old_best else (None, None)):
        final.update(judge)
    elif record.judgement is not None:
        record.judgement = record.judgement.model_copy(update={
            "judged_image": old_best.image if old_best else None,
            "stale": "the best-ever candidate changed when rescored"})
    record.final_scores = final
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
    store, spec = _open_run(run_dir)
    plan = _plan(spec, metrics, selection, reselect)
    started = time.perf_counter()
    models = [t.display_name for t in plan.spec.t2i]
    records = [r for r in store.records() if r.model in models]
    updated = _rescored_records(store, records, plan)
    info = _record_rescore(store, spec, plan, updated, started)
    store.write_results_jsonl(updated)
    leaderboard = build_leaderboard(updated, models)
    write_leaderboard(leaderboard, store.root, updated)
    if report:
        from repainter.report.html import write_report

        write_report(store.root)
    return RunResult(run_dir=store.root, spec=plan.spec, records=updated, leaderboard=leaderboard,
                     info=info)


def _open_run(run_dir: str | Path) -> tuple[RunStore, RunSpec]:
    store = RunStore(run_dir)
    spec_path = store.root / SPEC_FILE
    if not spec_path.exists():
        raise RescoreError(f"{store.root} is not a run folder (no {SPEC_FILE})")
    return store, load_run_spec(spec_path)


@dataclass
class _Plan:
    """What a rescore does: the metrics to add, the new spec and, with reselect, the weights."""

    components: list[ComponentSpec]
    spec: RunSpec  # the run's spec with the new metrics (and weights)
    metrics: list[Metric]  # built from ``components``
    weights: dict[str, float] | None  # new selection weights (reselect), else None
    selection_metrics: dict[str, Metric]  # every weighted metric (reselect)
    reselect: bool

    @property
    def labels(self) -> list[str]:
        return [c.display_name for c in self.components]


def _plan(spec: RunSpec, metrics: Iterable[ComponentSpec | str | dict[str, Any]],
          selection: dict[str, float] | None, reselect: bool) -> _Plan:
    """Validate the request and build its metrics; nothing is written yet."""
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
    if reselect:
        # similarity() of every weighted metric; only metrics not rescored now are built anew
        known = {m.name: m for m in built}
        for component in new_spec.metrics:
            name = component.display_name
            if name in new_spec.selection:
                selection_metrics[name] = known.get(name) or _build_metric(component)
    return _Plan(components, new_spec, built, new_spec.selection if reselect else None,
                 selection_metrics, reselect)


def _rescored_records(store: RunStore, records: list[CaseRecord], plan: _Plan
                      ) -> list[CaseRecord]:
    """Every record with the new scores (failed ones as they were). All scores are computed
    before anything is written: a failure leaves the folder as it was."""
    updated = []
    for record in records:
        if not record.done:
            updated.append(record)
            continue
        try:
            new = _score_record(store, record, plan.metrics)
        except Exception as exc:  # a broken image or metric: stop before anything is written
            raise RescoreError(
                f"{record.model} / {record.case_id}: {type(exc).__name__}: {exc}"
            ) from exc
        fresh = _apply(record, new, plan.weights, plan.selection_metrics)
        fresh.rescored = sorted({*(record.rescored or []), *plan.labels})
        fresh.metrics = {**(record.metrics or {}),
                         **{m.name: metric_identity(m) for m in plan.metrics}}
        updated.append(fresh)
    return updated


def _record_rescore(store: RunStore, spec: RunSpec, plan: _Plan, updated: list[CaseRecord],
                    started: float) -> RunInfo:
    """Write the rescored records, the new spec and the rescore's entry in run.json."""
    for record in updated:
        if record.done:
            store.write_case_record(record)
    atomic_write_bytes(store.root / SPEC_FILE, plan.spec.to_yaml().encode("utf-8"))
    info = store.read_run_info()
    entry = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "metrics": plan.labels,
        "components": [c.model_dump(mode="json") for c in plan.components],
        "reselect": plan.reselect,
        "selection": dict(plan.spec.selection) if plan.reselect else None,
        "cases": sum(1 for r in updated if r.done),
        "previous_spec_fingerprint": spec.fingerprint(),
        "seconds": round(time.perf_counter() - started, 3),
    }
    # run.json's spec and metric identities list the rescored metrics too (issue 27)
    info.update(rescored=[*(info.rescored or []), entry],
                spec_fingerprint=plan.spec.fingerprint(),
                spec=plan.spec.model_dump(mode="json"),
                metrics={**(info.metrics or {}),
                         **{m.name: metric_identity(m) for m in plan.metrics}})
    store.write_run_info(info)
    return info
