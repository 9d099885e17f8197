"""Per-model leaderboard from case records.

For each T2I model: cases finished and failed; the mean selection score of round 1's best and of
the final best-ever candidate, and their difference (steerability); every metric's mean with a 95%
bootstrap confidence interval; time per case. Paired comparisons (sign-flip permutation test on
the cases both models finished) say whether each ranking step is significant. Per-category means
show where a model wins. Written as JSON (the typed :class:`repainter.records.leaderboard.Leaderboard`:
each metric's statistics nested in their own object), CSV, Markdown and LaTeX.

Every metric column gets its own paired tests (a ``ComparisonFamily``); with more than two models
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
from repainter.records.base import dump_record, finite_or_none, load_record
from repainter.records.case import CaseRecord
from repainter.records.leaderboard import (
    STEERABILITY_INCLUDES,
    AdaptiveSummary,
    CategoryRow,
    ComparisonFamily,
    ComparisonTest,
    DecisionSummary,
    GridSection,
    Leaderboard,
    LeaderboardRow,
    MetricSummary,
    SelectionSummary,
)
from repainter.report.decomposition import attach_decompositions, decomposition_markdown
from repainter.report.labels import metric_header
from repainter.report.markdown import markdown_table, markdown_text
from repainter.report.stats import PairedComparison, bootstrap_ci, corrected, paired_comparison
from repainter.store import read_json, write_json

#: The multiple-comparison correction applied when more than two models are compared.
DEFAULT_CORRECTION = "holm"

#: Nodes whose time is the MLLM's (the shared description excluded: it serves every model).
MLLM_NODES = ("compose_prompt", "write_variants", "critique", "revise", "judge")

LEADERBOARD_FILE = "leaderboard.json"


def _mean(values: list[float]) -> float | None:
    finite = [v for v in map(finite_or_none, values) if v is not None]
    return fmean(finite) if finite else None


def _interval(values: list[float | None]) -> dict[str, float | None]:
    ci = bootstrap_ci(values)
    return {"ci_low": ci[0] if ci else None, "ci_high": ci[1] if ci else None}


def _round1_selection(record: CaseRecord) -> float | None:
    return record.round1_best.selection if record.round1_best is not None else None


def _selection_summary(done: list[CaseRecord]) -> SelectionSummary:
    finals = [r.final_score("selection") for r in done]
    return SelectionSummary(
        mean=_mean(finals), **_interval(finals),
        round1=_mean([_round1_selection(r) for r in done]),
        steerability=_mean([
            r.final_scores["selection"] - r.round1_best.selection
            for r in done if _round1_selection(r) is not None
            and r.final_score("selection") is not None
        ]))


def _metric_summary(done: list[CaseRecord], name: str) -> MetricSummary:
    values = [r.final_score(name) for r in done]
    judge = name.startswith("judge_")  # the judge rates the final best only: no round-1 value
    round1 = None if judge else _mean(
        [r.round1_best.scores.get(name) if r.round1_best is not None else None for r in done])
    return MetricSummary(mean=_mean(values), **_interval(values), round1=round1, judge=judge)


def _decision_summary(done: list[CaseRecord]) -> DecisionSummary | None:
    decisions = [r.decision for r in done if r.decision is not None]
    if not decisions:
        return None
    judged = [d.correct for d in decisions if d.correct is not None]
    return DecisionSummary(
        cases=len(decisions),
        retrieved_share=sum(d.choice == "retrieved" for d in decisions) / len(decisions),
        accuracy=sum(judged) / len(judged) if judged else None, judged_cases=len(judged))


def build_leaderboard(records: list[CaseRecord],
                      models: list[str] | None = None) -> list[LeaderboardRow]:
    """One row per T2I model, best first by mean final selection score.

    ``row.selection`` holds the selection score (final best-ever mean, its interval, round 1's
    best, ``steerability``: the mean per-case gain); ``row.metrics[name]`` every other metric's
    mean over cases of the best-ever candidate's score with its interval and round 1's. Where
    renders were flagged (safety-blanked, NaN decodes: never scored), ``flagged_share`` and
    ``cases_all_flagged`` stand beside the means, since those means cover only scored renders.
    """
    from repainter.records.render_flags import render_flags_by_model

    models = models or sorted({r.model for r in records})
    flag_shares = render_flags_by_model(records)
    rows = []
    for model in models:
        mine = [r for r in records if r.model == model]
        done = [r for r in mine if r.done]
        metric_names = sorted({k for r in done for k in r.final_scores} - {"selection"})
        row = LeaderboardRow(
            model=model, strategy=(done[0].strategy or None) if done else None,
            cases=len(mine), done=len(done), failed=len(mine) - len(done),
            selection=_selection_summary(done),
            metrics={name: _metric_summary(done, name) for name in metric_names},
            mean_rounds=_mean([len(r.rounds) for r in done]),
            seconds_per_case=_mean([sum(r.timings.values()) for r in done]),
            t2i_seconds_per_case=_mean([r.timings.get("generate", 0.0) for r in done]),
            mllm_seconds_per_case=_mean([
                sum(r.timings.get(node, 0.0) for node in MLLM_NODES) for r in done
            ]),
            decision=_decision_summary(done),  # retrieve-or-generate: who won, and was right
        )
        usages = [r.mllm_usage for r in mine]
        if any(u.total_tokens is not None for u in usages):
            row.mllm_tokens_per_case = _mean([u.total_tokens or 0 for u in usages])
            row.mllm_cost_usd = sum(u.cost_usd or 0.0 for u in usages)
        flags = flag_shares.get(model) or {}
        if flags.get("flagged"):  # blanked / NaN renders are never scored: say how many were
            row.flagged_share = flags["flagged_share"]
            row.cases_all_flagged = flags["cases_all_flagged"]
        rows.append(row)
    rows.sort(key=lambda row: -(row.selection.mean if row.selection.mean is not None else -math.inf))
    for rank, row in enumerate(rows, 1):
        row.rank = rank
    attach_decompositions(rows, records)  # only where a best_of_n twin ran (loop.baseline)
    return rows


def _final_scores(records: list[CaseRecord], model: str, metric: str) -> dict[str, float | None]:
    return {r.case_id: r.final_scores[metric] for r in records
            if r.model == model and r.done and metric in r.final_scores}


def comparison_test(comparison: PairedComparison) -> ComparisonTest:
    """A paired test of :mod:`repainter.report.stats` as the record holds it."""
    data = comparison.as_dict()
    return ComparisonTest(**{k: v for k, v in data.items() if k in ComparisonTest.model_fields})


def build_comparisons(
    records: list[CaseRecord], leaderboard: list[LeaderboardRow], metric: str = "selection",
    correction: str = DEFAULT_CORRECTION,
) -> ComparisonFamily:
    """Paired tests between every two models on one metric, in leaderboard order (a ranked above
    b), with ``correction`` applied across the pairs (named "none" for a single pair)."""
    models = [row.model for row in leaderboard]
    family = corrected([
        paired_comparison(a, _final_scores(records, a, metric), b,
                          _final_scores(records, b, metric), metric)
        for i, a in enumerate(models) for b in models[i + 1:]
    ], correction)
    return ComparisonFamily(metric=metric,
                            correction=family[0].correction if family else "none",
                            tests=[comparison_test(c) for c in family])


def spec_correction(run_dir: str | Path) -> str:
    """The ``correction`` of the spec saved in ``run_dir`` (Holm where there is none)."""
    path = Path(run_dir) / "spec.yaml"
    if path.exists():
        from repainter.spec import SpecError, load_run_spec

        try:
            return load_run_spec(path).correction
        except SpecError:
            pass
    return DEFAULT_CORRECTION


def compared_metrics(leaderboard: list[LeaderboardRow]) -> list[str]:
    """``selection`` and every metric of the rows, in column order."""
    return ["selection", *sorted({name for row in leaderboard for name in row.metrics})]


def build_metric_comparisons(
    records: list[CaseRecord], leaderboard: list[LeaderboardRow],
    correction: str = DEFAULT_CORRECTION,
) -> dict[str, ComparisonFamily]:
    """Paired tests for every metric column: metric -> its corrected family of pairs."""
    return {metric: build_comparisons(records, leaderboard, metric, correction)
            for metric in compared_metrics(leaderboard)}


def build_category_table(records: list[CaseRecord]) -> list[CategoryRow]:
    """Mean final selection score per model x category, with its bootstrap interval."""
    rows = []
    for model, category in sorted({(r.model, r.category or "default") for r in records}):
        values = [r.final_scores["selection"] for r in records
                  if r.model == model and (r.category or "default") == category and r.done]
        rows.append(CategoryRow(model=model, category=category, done=len(values),
                                selection_final=_mean(values), **_interval(values)))
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


#: What a Markdown renderer would read as HTML (a label ``<script>`` would run) or as a cell
#: border (``a|b`` splits its row); labels and cells are data, so they are written as text.
#: ``&`` stays: without ``<`` it opens no tag (at worst an entity shows as its character).
def _table(rows: list[dict[str, Any]], columns: list[str]) -> list[str]:
    return markdown_table(columns, [[format_cell(row.get(c), c) for c in columns] for row in rows])


def with_ci(summary: MetricSummary | None) -> str:
    """A mean with its 95% interval (and the seed spread where seeds were aggregated).

    >>> with_ci(MetricSummary(mean=0.5, ci_low=0.4, ci_high=0.6)), with_ci(None)
    ('0.5000 [0.4000, 0.6000]', '-')
    """
    if summary is None or summary.mean is None:
        return "-"
    low, high, spread = summary.ci_low, summary.ci_high, summary.seed_sd
    return (f"{summary.mean:.4f}" + (f" [{low:.4f}, {high:.4f}]" if low is not None else "")
            + (f" seed sd {spread:.4f}" if spread is not None else ""))


COMPARISON_COLUMNS = ["model_a", "model_b", "n", "mean_difference", "ci_low", "ci_high",
                      "p_value", "p_adjusted", "significant"]


def correction_note(family: ComparisonFamily) -> str:
    """One sentence naming the multiple-comparison correction a family of tests used."""
    spelled = {"holm": "Holm (family-wise error rate)", "bh": "Benjamini-Hochberg (false "
               "discovery rate)", "none": "none (a single pair)"}.get(family.correction,
                                                                     family.correction)
    return (f"Multiple-comparison correction across the {len(family.tests)} pair(s): {spelled}; "
            "significant = adjusted p < 0.05.")


def _family_table(family: ComparisonFamily) -> list[str]:
    return _table([test.model_dump() for test in family.tests], COMPARISON_COLUMNS)


def steerability_header(rows: list[LeaderboardRow]) -> str:
    """``steerability``, saying what it includes where a baseline twin lets a reader split it."""
    if any(r.decomposition is not None for r in rows):
        return f"steerability ({STEERABILITY_INCLUDES})"
    return "steerability"


def _view_columns(rows: list[LeaderboardRow]) -> list[tuple[str, Any]]:
    """(header, cell of a row) of the Markdown leaderboard; optional columns follow the first
    row (usage, decisions) or any row (strategy, flagged renders)."""
    first = rows[0]
    columns: list[tuple[str, Any]] = [("rank", lambda r: r.rank), ("model", lambda r: r.model)]
    if any(r.strategy for r in rows):
        columns.append(("strategy", lambda r: r.strategy or "refine"))
    columns += [("done", lambda r: r.done), ("failed", lambda r: r.failed),
                ("selection r1", lambda r: r.selection.round1),
                ("selection final [95% CI]", lambda r: with_ci(r.selection)),
                (steerability_header(rows), lambda r: r.selection.steerability)]
    if any(r.decomposition is not None for r in rows):
        columns += [("best-of-N same budget",
                     lambda r: r.decomposition and r.decomposition.best_of_n_same_budget),
                    ("revision gain", lambda r: r.decomposition and r.decomposition.revision_gain)]
    metrics = sorted({name for r in rows for name in r.metrics})
    columns += [(metric_header(m), lambda r, m=m: with_ci(r.metrics.get(m))) for m in metrics]
    columns += [("s/case", lambda r: r.seconds_per_case),
                ("T2I s/case", lambda r: r.t2i_seconds_per_case),
                ("MLLM s/case", lambda r: r.mllm_seconds_per_case)]
    if first.mllm_tokens_per_case is not None:
        columns += [("MLLM tokens/case", lambda r: r.mllm_tokens_per_case),
                    ("MLLM cost USD", lambda r: r.mllm_cost_usd)]
    if any(r.flagged_share is not None for r in rows):
        columns += [("flagged renders", lambda r: r.flagged_share),
                    ("cases all flagged", lambda r: r.cases_all_flagged)]
    if first.decision is not None:
        columns += [("retrieved chosen", lambda r: r.decision and r.decision.retrieved_share),
                    ("decision accuracy (GT)", lambda r: r.decision and r.decision.accuracy)]
    return columns


def leaderboard_markdown(
    rows: list[LeaderboardRow],
    comparisons: ComparisonFamily | None = None,
    categories: list[CategoryRow] = (),
    metric_comparisons: dict[str, ComparisonFamily] | None = None,
) -> str:
    """The leaderboard for people: means with 95% intervals, then the paired tests per metric."""
    if rows:
        columns = _view_columns(rows)
        table = markdown_table([header for header, _ in columns],
                               [[format_cell(cell(row), header) for header, cell in columns]
                                for row in rows])
    else:
        table = markdown_table(["model"], [])
    lines = ["## Leaderboard", ""] + table + decomposition_markdown(rows)
    if comparisons is not None and comparisons.tests:
        lines += ["", "## Paired comparisons (sign-flip permutation test, final selection score)",
                  ""]
        lines += [correction_note(comparisons), ""]
        lines += _family_table(comparisons)
    for metric, family in (metric_comparisons or {}).items():
        if metric == "selection" or not family.tests:
            continue
        lines += ["", f"### Paired comparisons on {markdown_text(metric)}", "",
                  correction_note(family), ""]
        lines += _family_table(family)
    if categories:
        lines += ["", "## By category (final selection score)", ""]
        lines += _table([c.model_dump() for c in categories],
                        ["model", "category", "done", "selection_final", "ci_low", "ci_high"])
    return "\n".join(lines) + "\n"


def build_leaderboard_record(
    rows: list[LeaderboardRow], records: list[CaseRecord] = (), correction: str = DEFAULT_CORRECTION,
) -> Leaderboard:
    """The leaderboard file's record: ``rows``, and with ``records`` paired tests for every
    metric and the category table."""
    if records:  # the revision tests take the run's correction, as the pairs do
        attach_decompositions(rows, list(records), correction)
    return Leaderboard(
        models=rows,
        comparisons=build_metric_comparisons(list(records), rows, correction) if records else {},
        correction=correction if len(rows) > 2 else "none",
        categories=build_category_table(list(records)) if records else [])


def write_leaderboard(
    rows: list[LeaderboardRow], run_dir: str | Path, records: list[CaseRecord] = (),
    correction: str | None = None,
) -> Leaderboard:
    """Write leaderboard.{json,csv,md,tex}; with ``records``, also paired tests for every metric
    and categories. ``correction`` defaults to the run folder's spec (``correction:``), else
    Holm. Returns the record written to leaderboard.json."""
    run_dir = Path(run_dir)
    board = build_leaderboard_record(rows, records, correction or spec_correction(run_dir))
    write_leaderboard_json(run_dir, board)
    flat = [row.flat() for row in rows]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(flat), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(flat)
    atomic_write_bytes(run_dir / "leaderboard.csv", buffer.getvalue().encode("utf-8"))
    markdown = leaderboard_markdown(rows, board.comparisons.get("selection"), board.categories,
                                    board.comparisons)
    atomic_write_bytes(run_dir / "leaderboard.md", markdown.encode("utf-8"))
    from repainter.report.latex import write_latex
    from repainter.report.sanity import refresh_leaderboard_section

    # where `repainter sanity` ran: warn about models the selection score fails its check on
    refresh_leaderboard_section(run_dir, [row.model for row in rows])

    write_latex(rows, run_dir)
    return board


def write_leaderboard_json(run_dir: str | Path, board: Leaderboard) -> None:
    write_json(Path(run_dir) / LEADERBOARD_FILE, dump_record(board))


def read_leaderboard(run_dir: str | Path) -> Leaderboard | None:
    """leaderboard.json of ``run_dir`` (an older version migrated), or None where there is none.

    A file from a newer repainter raises :class:`repainter.records.RecordVersionError`.
    """
    path = Path(run_dir) / LEADERBOARD_FILE
    return load_record(Leaderboard, read_json(path)) if path.exists() else None


def add_leaderboard_section(run_dir: str | Path, markdown: str, *,
                            grid: GridSection | None = None,
                            adaptive: AdaptiveSummary | None = None) -> None:
    """Add the ``grid`` or ``adaptive`` section to leaderboard.json and the ``markdown`` section
    (starting with its heading line) to leaderboard.md, replacing that section where an earlier
    call left it; a file that does not exist is left alone."""
    run_dir = Path(run_dir)
    board = read_leaderboard(run_dir)
    if board is not None:
        sections = {k: v for k, v in (("grid", grid), ("adaptive", adaptive)) if v is not None}
        write_leaderboard_json(run_dir, board.model_copy(update=sections))
    path = run_dir / "leaderboard.md"
    if path.exists():
        heading = markdown.splitlines()[0]
        text = path.read_text(encoding="utf-8").split(heading)[0].rstrip() + "\n\n"
        atomic_write_bytes(path, (text + markdown).encode("utf-8"))
