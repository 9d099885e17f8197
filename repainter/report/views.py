"""The run-level parts of the report page as the template shows them: the leaderboard, paired
comparisons, categories, progress table, the run's facts and the validity table."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from repainter.environment import summary_facts
from repainter.records import CaseRecord
from repainter.records.leaderboard import (
    CategoryRow,
    ComparisonFamily,
    LeaderboardRow,
    MetricSummary,
)
from repainter.records.run_info import RunInfo
from repainter.report.formatting import fmt, fmt_p, fmt_seconds, fmt_signed
from repainter.report.leaderboard import correction_note
from repainter.report.tables import ReportTables


def tables_view(tables: ReportTables, models: list[str], colours: dict[str, str]
                ) -> dict[str, Any]:
    """The leaderboard, paired comparisons and category table as the template shows them."""
    rows, by_metric = tables.rows, tables.by_metric
    comparisons = by_metric.get("selection") or ComparisonFamily(metric="selection")
    metric_names = _metric_columns(rows)

    # leaderboard view
    finals = [r.selection.mean for r in rows if r.selection.mean is not None]
    lo = min([r.selection.ci_low or r.selection.mean for r in rows
              if r.selection.mean is not None] or [0.0])
    scale_low = max(0.0, math.floor((lo - 0.02) * 20) / 20) if finals else 0.0
    top = max(finals or [1.0])
    steers = [r.selection.steerability for r in rows if r.selection.steerability is not None]
    best_steer = max(steers) if steers else None
    board = [_board_row(row, metric_names, colours, scale_low, top, best_steer, len(rows))
             for row in rows]

    def comparison_view(family: ComparisonFamily) -> list[dict[str, Any]]:
        return [{
            "a": c.model_a, "b": c.model_b, "n": c.n,
            "diff": fmt_signed(c.mean_difference) if c.n else "–",
            "ci": (fmt_signed(c.ci_low), fmt_signed(c.ci_high)) if c.ci_low is not None else None,
            "p": fmt_p(c.p_value), "p_adjusted": fmt_p(c.p_adjusted),
            "significant": c.significant,
            "colour_a": colours.get(c.model_a, "#888"), "colour_b": colours.get(c.model_b, "#888"),
        } for c in family.tests]

    metric_families = [{"metric": metric, "note": correction_note(family),
                        "rows": comparison_view(family)}
                       for metric, family in by_metric.items()
                       if family.tests and metric != "selection"]
    return {
        "board": board,
        "metric_names": metric_names,
        "comparisons": comparison_view(comparisons),
        "comparison_note": correction_note(comparisons) if comparisons.tests else "",
        "metric_families": metric_families,
        "decomposition": _decomposition_view(rows, colours),
        "category_models": [{"name": m, "colour": colours[m]} for m in models],
        "categories": _category_view(tables.categories, models),
    }


def _decomposition_view(rows: list[LeaderboardRow], colours: dict[str, str]
                        ) -> list[dict[str, Any]]:
    """Per model with a best_of_n twin (``loop.baseline``): round 1, best-of-N at the same
    render budget, the revision's own gain with its paired test; empty without a twin."""
    view = []
    for row in rows:
        d = row.decomposition
        if d is None:
            continue
        view.append({
            "model": row.model, "colour": colours.get(row.model, "#888"), "baseline": d.baseline,
            "r1": fmt(d.round1), "bon": fmt(d.best_of_n_same_budget),
            "sampling": fmt_signed(d.sampling_gain), "gain": fmt_signed(d.revision_gain),
            "ci": (fmt_signed(d.ci_low), fmt_signed(d.ci_high)) if d.ci_low is not None else None,
            "n": d.n, "p": fmt_p(d.p_value) if d.p_value is not None else "–",
            "p_adjusted": fmt_p(d.p_adjusted) if d.p_adjusted is not None else "–",
            "significant": d.significant, "steer": fmt_signed(row.selection.steerability),
        })
    return view


def _metric_columns(rows: list[LeaderboardRow]) -> list[str]:
    names = sorted({name for row in rows for name in row.metrics})
    judge = [n for n in names if n.startswith("judge_")]
    return [n for n in names if n not in judge] + judge


def _board_row(row: LeaderboardRow, metric_names: list[str], colours: dict[str, str],
               scale_low: float, top: float, best_steer: float | None,
               count: int) -> dict[str, Any]:
    """One leaderboard line of the page: the selection score's bar, each metric's cell."""
    value = row.selection.mean
    width = 0.0
    if value is not None and top > scale_low:
        width = max(0.0, min(100.0, (value - scale_low) / (max(1.0, top) - scale_low) * 100))
    steer = row.selection.steerability
    return {
        "rank": row.rank, "model": row.model, "colour": colours.get(row.model, "#888"),
        "cases": row.cases, "done": row.done, "failed": row.failed,
        "r1": fmt(row.selection.round1), "final": fmt(value),
        "ci": (fmt(row.selection.ci_low), fmt(row.selection.ci_high))
        if row.selection.ci_low is not None else None,
        "bar": round(width, 1),
        "is_top": value is not None and value == top,
        "steer": fmt_signed(steer),
        "steer_top": steer is not None and steer == best_steer and count > 1,
        "rounds": fmt(row.mean_rounds, 1),
        "seconds": fmt_seconds(row.seconds_per_case),
        "metrics": [_metric_cell(row.metrics.get(m), m) for m in metric_names],
    }


def _metric_cell(summary: MetricSummary | None, name: str) -> dict[str, Any]:
    digits = 2 if name.startswith("judge_") else 3
    if summary is None:  # a metric only other models have
        return {"value": fmt(None, digits), "ci": None, "r1": None}
    return {"value": fmt(summary.mean, digits),
            "ci": (fmt(summary.ci_low, digits), fmt(summary.ci_high, digits))
            if summary.ci_low is not None else None,
            "r1": fmt(summary.round1) if not summary.judge else None}


def _category_view(categories: list[CategoryRow], models: list[str]) -> list[dict[str, Any]]:
    by_cat = {(c.model, c.category): c for c in categories}
    category_view = []
    for name in sorted({c.category for c in categories}):
        cells = []
        values = [by_cat[(m, name)].selection_final for m in models
                  if (m, name) in by_cat and by_cat[(m, name)].selection_final is not None]
        best_value = max(values) if values else None
        for m in models:
            c = by_cat.get((m, name))
            if c is None:
                cells.append(None)
                continue
            cells.append({"value": fmt(c.selection_final), "n": c.done,
                          "ci": (fmt(c.ci_low), fmt(c.ci_high)) if c.ci_low is not None else None,
                          "best": len(values) > 1 and c.selection_final == best_value})
        category_view.append({"category": name, "cells": cells})
    return category_view


def progress_view(records: list[CaseRecord], models: list[str], colours: dict[str, str]
                  ) -> dict[str, Any]:
    """The mean best-ever selection score per round and model, as a table."""
    from repainter.report.plots import progress_series

    series = progress_series(records, models)
    max_rounds = max((len(s["round"]) for s in series.values()), default=0)
    progress_table = [{"model": m, "colour": colours[m],
                       "values": [fmt(v) for v in series[m]["mean"]]
                       + [""] * (max_rounds - len(series[m]["mean"]))}
                      for m in models if m in series]
    return {"progress_rounds": list(range(1, max_rounds + 1)), "progress_table": progress_table}


def facts_view(info: RunInfo, spec, records: list[CaseRecord], models: list[str],
               failed: int) -> dict[str, Any]:
    """The run's facts: status, counts, settings, timings and environment."""
    done = sum(1 for r in records if r.done)  # failed: failed records and unreadable files
    settings = info.settings or {}
    facts = [
        ("status", info.status),
        ("error", info.error if info.status != "finished" else None),
        ("failed cases", "; ".join(f"{g.count} x {g.kind}" for g in info.failures or [])),
        ("settings", f"preset {settings.get('preset') or 'none'}: {settings.get('why')}"
         if settings else None),
        ("references", len({r.case_id for r in records})),
        ("models", len(models)),
        ("case records", f"{done} done, {failed} failed"),
        ("rounds x variants", f"{spec.loop.rounds} x {spec.loop.variants}" if spec else None),
        ("selection", ", ".join(f"{k} {v:g}" for k, v in spec.selection.items()) if spec else None),
        ("MLLM", ", ".join(m.display_name for m in spec.mllms) if spec else None),
        ("wall time", fmt_seconds(info.wall_seconds) if info.wall_seconds else None),
        ("started", info.started_at),
        ("fingerprint", info.spec_fingerprint or (spec.fingerprint() if spec else None)),
        ("repainter", info.repainter_version),
    ]
    if info.cases is not None and info.cases.reused:
        facts.append(("reused from an earlier run", info.cases.reused))
    if info.adaptive is not None:
        from repainter.report.adaptive import adaptive_line

        facts.append(("adaptive budget", adaptive_line(info.adaptive)))
    facts += summary_facts(info.environment)
    return {"facts": [(k, v) for k, v in facts if v not in (None, "")]}


def validity_view(run_dir: Path) -> dict[str, Any] | None:
    """What ``repainter meta-eval`` found about the metrics (RUN/validity.json), if it ran."""
    path = run_dir / "validity.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    from repainter.report.validity import trust_table

    rows = trust_table(data)
    errors = list(dict.fromkeys(r["error"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    cells = {(r["metric"], r["error"]): r for r in rows}
    return {"errors": errors, "command": data.get("command"), "bench": data.get("bench"),
            "rows": [{"metric": m, "cells": [cells.get((m, e)) for e in errors]} for m in metrics]}
