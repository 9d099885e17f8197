"""Per-model leaderboard from case records.

For each T2I model: cases finished and failed; the mean selection score of round 1's best and of
the final best-ever candidate, and their difference (steerability); every metric's mean with a 95%
bootstrap confidence interval; time per case. Paired comparisons (sign-flip permutation test on
the cases both models finished) say whether each ranking step is significant. Per-category means
show where a model wins. Written as JSON, CSV and Markdown.

Every metric column gets its own paired tests (``metric_comparisons``); with more than two models
the p-values of each metric's family of pairs are corrected for multiple comparisons (Holm by
default, Benjamini-Hochberg selectable), and the correction is named in every output.
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from statistics import fmean
from typing import Any

from repainter.images import atomic_write_bytes
from repainter.report.labels import metric_header
from repainter.report.stats import bootstrap_ci, corrected, paired_comparison
from repainter.store import json_safe, read_json, write_json

#: The multiple-comparison correction applied when more than two models are compared.
DEFAULT_CORRECTION = "holm"

#: Nodes whose time is the MLLM's (the shared description excluded: it serves every model).
MLLM_NODES = ("compose_prompt", "write_variants", "critique", "revise", "judge")


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return fmean(finite) if finite else None


def build_leaderboard(records: list[dict[str, Any]], models: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per T2I model, best first by mean final selection score.

    ``<metric>`` is the mean over cases of the best-ever candidate's score, ``<metric>_round1``
    that of round 1's best; ``steerability`` is the mean per-case gain of the selection score.
    Where renders were flagged (safety-blanked, NaN decodes: never scored), ``flagged_share`` and
    ``cases_all_flagged`` stand beside the means, since those means cover only scored renders.
    """
    from repainter.graph.nodes import render_flags_by_model  # lazy: the graph imports langgraph

    models = models or sorted({r["model"] for r in records})
    flag_shares = render_flags_by_model(records)
    rows = []
    for model in models:
        mine = [r for r in records if r["model"] == model]
        done = [r for r in mine if r.get("status") == "done"]
        metric_names = sorted({k for r in done for k in r.get("final_scores", {})} - {"selection"})
        row: dict[str, Any] = {
            "model": model,
            **({"strategy": done[0]["strategy"]} if done and done[0].get("strategy") else {}),
            "cases": len(mine),
            "done": len(done),
            "failed": len(mine) - len(done),
            "selection_round1": _mean([(r.get("round1_best") or {}).get("selection") for r in done]),
            "selection_final": _mean([r["final_scores"].get("selection") for r in done]),
            "steerability": _mean([
                r["final_scores"]["selection"] - r["round1_best"]["selection"]
                for r in done if r.get("round1_best") and r["final_scores"].get("selection") is not None
            ]),
            "mean_rounds": _mean([len(r.get("rounds") or []) for r in done]),
            "seconds_per_case": _mean([sum((r.get("timings") or {}).values()) for r in done]),
            "t2i_seconds_per_case": _mean([(r.get("timings") or {}).get("generate", 0.0) for r in done]),
            "mllm_seconds_per_case": _mean([
                sum((r.get("timings") or {}).get(node, 0.0) for node in MLLM_NODES) for r in done
            ]),
        }
        usages = [r.get("mllm_usage") or {} for r in mine]
        if any("total_tokens" in u for u in usages):
            row["mllm_tokens_per_case"] = _mean([u.get("total_tokens", 0) for u in usages])
            row["mllm_cost_usd"] = sum(u.get("cost_usd", 0.0) for u in usages)
        flags = flag_shares.get(model) or {}
        if flags.get("flagged"):  # blanked / NaN renders are never scored: say how many were
            row["flagged_share"] = flags["flagged_share"]
            row["cases_all_flagged"] = flags["cases_all_flagged"]
        decisions = [r["decision"] for r in done if r.get("decision")]
        if decisions:  # retrieve-or-generate: how often each side won, and was right
            judged = [d["correct"] for d in decisions if d.get("correct") is not None]
            row["decision_cases"] = len(decisions)
            row["decision_retrieved_share"] = sum(d["choice"] == "retrieved" for d in decisions) / len(decisions)
            row["decision_accuracy"] = sum(judged) / len(judged) if judged else None
            row["decision_judged_cases"] = len(judged)
        ci = bootstrap_ci([r["final_scores"].get("selection") for r in done])
        row["selection_final_ci_low"], row["selection_final_ci_high"] = ci or (None, None)
        for name in metric_names:
            row[name] = _mean([r["final_scores"].get(name) for r in done])
            ci = bootstrap_ci([r["final_scores"].get(name) for r in done])
            row[f"{name}_ci_low"], row[f"{name}_ci_high"] = ci or (None, None)
            if not name.startswith("judge_"):
                row[f"{name}_round1"] = _mean(
                    [((r.get("round1_best") or {}).get("scores") or {}).get(name) for r in done]
                )
        rows.append(row)
    rows.sort(key=lambda row: -(row["selection_final"] if row["selection_final"] is not None else -math.inf))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def _final_scores(records: list[dict[str, Any]], model: str, metric: str) -> dict[str, float]:
    return {
        r["case_id"]: r["final_scores"][metric]
        for r in records
        if r["model"] == model and r.get("status") == "done" and metric in r.get("final_scores", {})
    }


def build_comparisons(
    records: list[dict[str, Any]], leaderboard: list[dict[str, Any]], metric: str = "selection",
    correction: str = DEFAULT_CORRECTION,
) -> list[dict[str, Any]]:
    """Paired tests between every two models on one metric, in leaderboard order (a ranked above
    b), with ``correction`` applied across the pairs (named "none" for a single pair)."""
    models = [row["model"] for row in leaderboard]
    family = [
        paired_comparison(a, _final_scores(records, a, metric), b,
                          _final_scores(records, b, metric), metric)
        for i, a in enumerate(models) for b in models[i + 1:]
    ]
    return [c.as_dict() for c in corrected(family, correction)]


def spec_correction(run_dir: str | Path) -> str:
    """The ``correction`` of the spec saved in ``run_dir`` (Holm where there is none)."""
    path = Path(run_dir) / "spec.yaml"
    if path.exists():
        from repainter.spec import SpecError, load_spec

        try:
            return load_spec(path).correction
        except SpecError:
            pass
    return DEFAULT_CORRECTION


def compared_metrics(leaderboard: list[dict[str, Any]]) -> list[str]:
    """``selection`` and every metric column with a bootstrap interval, in column order."""
    names = sorted({k[: -len("_ci_low")] for row in leaderboard for k in row if k.endswith("_ci_low")}
                   - {"selection_final"})
    return ["selection", *names]


def build_metric_comparisons(
    records: list[dict[str, Any]], leaderboard: list[dict[str, Any]],
    correction: str = DEFAULT_CORRECTION,
) -> dict[str, list[dict[str, Any]]]:
    """Paired tests for every metric column: metric -> its corrected family of pairs."""
    return {metric: build_comparisons(records, leaderboard, metric, correction)
            for metric in compared_metrics(leaderboard)}


def build_category_table(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean final selection score per model x category, with its bootstrap interval."""
    rows = []
    for model, category in sorted({(r["model"], r.get("category") or "default") for r in records}):
        values = [r["final_scores"]["selection"] for r in records
                  if r["model"] == model and (r.get("category") or "default") == category
                  and r.get("status") == "done"]
        ci = bootstrap_ci(values)
        rows.append({"model": model, "category": category, "done": len(values),
                     "selection_final": _mean(values),
                     "ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None})
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    first = ["rank", "model", "cases", "done", "failed", "selection_round1", "selection_final",
             "selection_final_ci_low", "selection_final_ci_high", "steerability", "mean_rounds",
             "seconds_per_case", "t2i_seconds_per_case", "mllm_seconds_per_case"]
    rest = sorted({k for row in rows for k in row} - set(first))
    return first + rest


def format_cell(value: Any, key: str = "") -> str:
    """A table cell: '-' for missing, 4 decimals for floats, 2 significant digits for p-values.

    >>> format_cell(None), format_cell(0.123456), format_cell(0.0123, "p_value"), format_cell(3)
    ('-', '0.1235', '0.012', '3')
    """
    if value is None:
        return "-"
    if key == "p_value":
        return f"{value:.2g}"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """The lines of a Markdown table whose cells are already text.

    >>> markdown_table(["a", "b"], [["1", "2"]])
    ['| a | b |', '|---|---|', '| 1 | 2 |']
    """
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join(row) + " |" for row in rows])


def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    return markdown_table(columns, [[format_cell(row.get(c), c) for c in columns] for row in rows])


def _with_ci(row: dict[str, Any], key: str) -> str:
    low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
    if row.get(key) is None:
        return "-"
    spread = row.get(f"{key}_seed_sd")  # seed-aggregated runs: the spread over seeds too
    return (f"{row[key]:.4f}" + (f" [{low:.4f}, {high:.4f}]" if low is not None else "")
            + (f" seed sd {spread:.4f}" if spread is not None else ""))


COMPARISON_COLUMNS = ["model_a", "model_b", "n", "mean_difference", "ci_low", "ci_high",
                      "p_value", "p_adjusted", "significant"]


def correction_note(family: list[dict[str, Any]]) -> str:
    """One sentence naming the multiple-comparison correction a family of tests used."""
    name = family[0].get("correction", "none") if family else "none"
    spelled = {"holm": "Holm (family-wise error rate)", "bh": "Benjamini-Hochberg (false "
               "discovery rate)", "none": "none (a single pair)"}.get(name, name)
    return (f"Multiple-comparison correction across the {len(family)} pair(s): {spelled}; "
            "significant = adjusted p < 0.05.")


def leaderboard_markdown(
    rows: list[dict[str, Any]],
    comparisons: list[dict[str, Any]] = (),
    categories: list[dict[str, Any]] = (),
    metric_comparisons: dict[str, list[dict[str, Any]]] | None = None,
) -> str:
    """The leaderboard for people: means with 95% intervals, then the paired tests per metric."""
    metrics = sorted({k for row in rows for k in row if k + "_ci_low" in row
                      and not k.startswith("selection")})
    view = [
        {"rank": row["rank"], "model": row["model"],
         **({"strategy": row.get("strategy") or "refine"} if any("strategy" in r for r in rows)
            else {}),
         "done": row["done"], "failed": row["failed"],
         "selection r1": row["selection_round1"], "selection final [95% CI]":
         _with_ci(row, "selection_final"), "steerability": row["steerability"],
         **{metric_header(m): _with_ci(row, m) for m in metrics},
         "s/case": row.get("seconds_per_case"),
         "T2I s/case": row.get("t2i_seconds_per_case"),
         "MLLM s/case": row.get("mllm_seconds_per_case"),
         **({"MLLM tokens/case": row.get("mllm_tokens_per_case"),
             "MLLM cost USD": row.get("mllm_cost_usd")} if "mllm_tokens_per_case" in row else {}),
         **({"flagged renders": row.get("flagged_share"),
             "cases all flagged": row.get("cases_all_flagged")}
            if any("flagged_share" in r for r in rows) else {}),
         **({"retrieved chosen": row.get("decision_retrieved_share"),
             "decision accuracy (GT)": row.get("decision_accuracy")}
            if "decision_cases" in row else {})}
        for row in rows
    ]
    lines = ["## Leaderboard", ""] + _table(view, list(view[0]) if view else ["model"])
    if comparisons:
        lines += ["", "## Paired comparisons (sign-flip permutation test, final selection score)",
                  ""]
        lines += [correction_note(comparisons), ""]
        lines += _table(comparisons, COMPARISON_COLUMNS)
    for metric, family in (metric_comparisons or {}).items():
        if metric == "selection" or not family:
            continue
        lines += ["", f"### Paired comparisons on {metric}", "", correction_note(family), ""]
        lines += _table(family, COMPARISON_COLUMNS)
    if categories:
        lines += ["", "## By category (final selection score)", ""]
        lines += _table(categories, ["model", "category", "done", "selection_final", "ci_low",
                                     "ci_high"])
    return "\n".join(lines) + "\n"


def write_leaderboard(
    rows: list[dict[str, Any]], run_dir: str | Path, records: list[dict[str, Any]] = (),
    correction: str | None = None,
) -> None:
    """Write leaderboard.{json,csv,md,tex}; with ``records``, also paired tests for every metric
    (``comparisons`` keeps the selection score's, as before) and categories. ``correction``
    defaults to the run folder's spec (``correction:``), else Holm."""
    run_dir = Path(run_dir)
    correction = correction or spec_correction(run_dir)
    by_metric = build_metric_comparisons(list(records), rows, correction) if records else {}
    comparisons = by_metric.get("selection", [])
    categories = build_category_table(list(records)) if records else []
    write_json(run_dir / "leaderboard.json",  # a statistic of no data (NaN) is written as null
               json_safe({"models": rows, "comparisons": comparisons,
                          "metric_comparisons": by_metric,
                          "correction": correction if len(rows) > 2 else "none",
                          "categories": categories}))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(run_dir / "leaderboard.csv", buffer.getvalue().encode("utf-8"))
    markdown = leaderboard_markdown(rows, comparisons, categories, by_metric)
    atomic_write_bytes(run_dir / "leaderboard.md", markdown.encode("utf-8"))
    from repainter.report.latex import write_latex

    write_latex(rows, run_dir)


def add_leaderboard_section(run_dir: str | Path, data: dict[str, Any], markdown: str) -> None:
    """Add ``data``'s keys to leaderboard.json and the ``markdown`` section (starting with its
    heading line) to leaderboard.md, replacing that section where an earlier call left it; a
    file that does not exist is left alone."""
    run_dir = Path(run_dir)
    path = run_dir / "leaderboard.json"
    if path.exists():
        write_json(path, json_safe({**read_json(path), **data}))
    path = run_dir / "leaderboard.md"
    if path.exists():
        heading = markdown.splitlines()[0]
        text = path.read_text(encoding="utf-8").split(heading)[0].rstrip() + "\n\n"
        atomic_write_bytes(path, (text + markdown).encode("utf-8"))
