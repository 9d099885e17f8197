"""From the rung scores to the findings: per ladder, model and metric, tau with a bootstrap
interval over cases and the adjacent-rung tests, a verdict, and the judge's agreement with the
selection score.

A ladder is *required* where its order holds by construction (prompt information, every
corruption kind); the sampler-budget ladder is an empirical check (distilled and turbo models
are not monotone in steps) and never fails a metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from repainter.report.sanity import is_required, ladder_title
from repainter.report.validity import WEAK
from repainter.sanity.collect import JUDGE, SELECTION, LadderRun, Observations
from repainter.sanity.config import SanityConfig
from repainter.sanity.statistics import agreement_statistics, ladder_statistics, pair_agreement


def score_matrix(run: LadderRun, metric: str) -> tuple[np.ndarray, list[str]]:
    """(cases, rungs) scores of ``metric``: the cases where every rung has a value."""
    kept = [case for case, rows in run.cases.items()
            if all(row.get(metric) is not None for row in rows)]
    matrix = np.array([[row[metric] for row in run.cases[c]] for c in kept], dtype=np.float64)
    return matrix.reshape(len(kept), len(run.rungs)), kept


def metric_names(run: LadderRun) -> list[str]:
    """The scores the ladder has, the spec's metrics first, then selection and the judge."""
    seen: dict[str, None] = {}
    for rows in run.cases.values():
        for row in rows:
            seen.update(dict.fromkeys(row))
    tail = [n for n in (SELECTION, JUDGE) if n in seen]
    return [n for n in seen if n not in tail] + tail


def verdict(tau: float | None, trusted: float, required: bool) -> str:
    """``orders`` (tau >= trusted), ``weak`` (tau >= 0.5), ``fails``; ``not measured``.
    The sampler ladder's are ``empirical``: a finding, never a failure."""
    if tau is None:
        return "not measured"
    if not required:
        return "empirical"
    return "orders" if tau >= trusted else ("weak" if tau >= WEAK else "fails")


def _metric_entry(run: LadderRun, metric: str, config: SanityConfig,
                  required: bool) -> dict[str, Any] | None:
    matrix, kept = score_matrix(run, metric)
    if len(kept) < 2:
        return None
    stats = ladder_statistics(matrix, resamples=config.resamples, seed=config.seed,
                              alpha=config.alpha)
    stats["verdict"] = verdict(stats["tau"], config.trusted_tau, required)
    return stats


def analyse_run(name: str, run: LadderRun, config: SanityConfig) -> dict[str, Any]:
    """One ladder of one model: every score's statistics and verdict."""
    required = is_required(name)
    metrics = {}
    for metric in metric_names(run):
        entry = _metric_entry(run, metric, config, required)
        if entry is not None:
            metrics[metric] = entry
    return {"rungs": run.rungs, "cases": len(run.cases), "skipped": dict(run.skipped),
            "not_applicable": dict(run.not_applicable), "notes": list(run.notes),
            "metrics": metrics, "prompts": dict(run.prompts),
            "empty_prompts": dict(run.empty_prompts)}


def judge_agreement(observations: Observations, config: SanityConfig) -> dict[str, Any]:
    """Per model and ladder family (prompt, corruption, sampler): how often the judge orders
    two rungs of a case the way the selection score does (pairs either ties are left out)."""
    out: dict[str, dict[str, Any]] = {}
    families: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for name, models in observations.ladders.items():
        family = name.split(":", 1)[0]
        for model, run in models.items():
            for rows in run.cases.values():
                if any(r.get(JUDGE) is None or r.get(SELECTION) is None for r in rows):
                    continue
                judged = np.array([r[JUDGE] for r in rows], dtype=np.float64)
                selected = np.array([r[SELECTION] for r in rows], dtype=np.float64)
                families.setdefault((model, family), []).append(
                    pair_agreement(judged, selected))
    for (model, family), counts in sorted(families.items()):
        out.setdefault(model, {})[family] = agreement_statistics(
            counts, resamples=config.resamples, seed=config.seed)
    return out


def selection_check(ladders: dict[str, Any], models: list[str]) -> dict[str, Any]:
    """Per model: whether the selection score orders every required ladder it was measured on
    (the leaderboard warns about a model where it does not)."""
    out = {}
    for model in models:
        failed, measured = [], []
        for name, entry in ladders.items():
            stats = ((entry["models"].get(model) or {}).get("metrics") or {}).get(SELECTION)
            if not is_required(name) or stats is None:
                continue
            measured.append(name)
            if stats["verdict"] != "orders":
                failed.append(name)
        out[model] = {"measured": measured, "failed": failed,
                      "passes": bool(measured) and not failed}
    return out


def analyse(observations: Observations, config: SanityConfig,
            models: list[str]) -> dict[str, Any]:
    """The findings of the whole check (the ``ladders``, ``judge_agreement`` and
    ``selection_check`` parts of sanity.json)."""
    ladders = {}
    for name, runs in observations.ladders.items():
        ladders[name] = {"title": ladder_title(name), "required": is_required(name),
                         "models": {m: analyse_run(name, run, config) for m, run in runs.items()}}
    return {"ladders": ladders, "judge_agreement": judge_agreement(observations, config),
            "selection_check": selection_check(ladders, models),
            "skipped_ladders": observations.skipped_ladders,
            "corruption_sources": observations.corruption_sources}
