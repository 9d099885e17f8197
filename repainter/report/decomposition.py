"""Where a model's gain comes from: sampling or revision (``loop.baseline: best_of_n``).

A revising model's steerability (final - round 1) mixes two things: its final best is picked
from rounds x variants renders, round 1's from one round's. Its best_of_n twin spends the same
renders on the initial prompt alone, so the twin's final mean is what more samples buy, and
final - twin final (paired per case, sign-flip test) is what revision buys on top.

>>> from repainter.records.leaderboard import LeaderboardRow
>>> twin_of([LeaderboardRow(model="sim"), LeaderboardRow(model="sim~best_of_n")])
{'sim': 'sim~best_of_n'}
"""

from __future__ import annotations

from repainter.records.case import CaseRecord
from repainter.records.leaderboard import STEERABILITY_INCLUDES, GainDecomposition, LeaderboardRow
from repainter.report.markdown import markdown_text
from repainter.report.stats import corrected, paired_comparison
from repainter.spec.sections import BASELINE_TWIN_SUFFIX


def twin_of(rows: list[LeaderboardRow]) -> dict[str, str]:
    """Model -> its best_of_n twin's label, for the models whose twin has a row."""
    labels = {row.model for row in rows}
    return {row.model: row.model + BASELINE_TWIN_SUFFIX for row in rows
            if row.model + BASELINE_TWIN_SUFFIX in labels}


def _finals(records: list[CaseRecord], model: str) -> dict[str, float | None]:
    return {r.case_id: r.final_scores.get("selection") for r in records
            if r.model == model and r.done}


def attach_decompositions(rows: list[LeaderboardRow], records: list[CaseRecord],
                          correction: str = "holm") -> None:
    """Set ``row.decomposition`` on every row with a twin; the revision tests of the run form
    one family, corrected by ``correction`` (none for a single model). Rows without a twin
    are left as they are."""
    twins = twin_of(rows)
    if not twins:
        return
    by_model = {row.model: row for row in rows}
    tests = corrected([paired_comparison(model, _finals(records, model), twin,
                                         _finals(records, twin), "selection")
                       for model, twin in twins.items()], correction)
    for (model, twin), test in zip(twins.items(), tests, strict=True):
        row, twin_row = by_model[model], by_model[twin]
        data = test.as_dict()
        round1, sampled = row.selection.round1, twin_row.selection.mean
        row.decomposition = GainDecomposition(
            baseline=twin, round1=round1, best_of_n_same_budget=sampled,
            revision_gain=data["mean_difference"], n=test.n, ci_low=data["ci_low"],
            ci_high=data["ci_high"], p_value=test.p_value if test.n else None,
            p_adjusted=data["p_adjusted"] if test.n else None, correction=test.correction,
            significant=test.significant,
            sampling_gain=sampled - round1 if sampled is not None and round1 is not None else None)


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def decomposition_markdown(rows: list[LeaderboardRow]) -> list[str]:
    """The leaderboard.md section (no lines where no row has a twin)."""
    parts = [(row.model, row.selection.steerability, row.decomposition) for row in rows
             if row.decomposition is not None]
    if not parts:
        return []
    lines = ["", "## Where the gain comes from (best_of_n at the same render budget)", "",
             f"steerability = final - round 1 and includes {STEERABILITY_INCLUDES}; "
             "best-of-N = the model's best_of_n twin (the initial prompt, the same renders and "
             "seeds, no revision); revision gain = final - best-of-N, paired per case "
             "(sign-flip permutation test, 95% bootstrap interval).", "",
             "| model | round 1 | best-of-N same budget | sampling gain | revision gain [95% CI]"
             " | n | p | p adjusted | steerability (more samples + revision) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for model, steer, d in parts:
        ci = f" [{_signed(d.ci_low)}, {_signed(d.ci_high)}]" if d.ci_low is not None else ""
        p = "-" if d.p_value is None else f"{d.p_value:.2g}"
        p_adj = "-" if d.p_adjusted is None else f"{d.p_adjusted:.2g} ({d.correction})"
        r1 = "-" if d.round1 is None else f"{d.round1:.4f}"
        bon = "-" if d.best_of_n_same_budget is None else f"{d.best_of_n_same_budget:.4f}"
        lines.append(f"| {markdown_text(model)} | {r1} | {bon} | {_signed(d.sampling_gain)} | "
                     f"{_signed(d.revision_gain)}{ci} | {d.n} | {p} | {p_adj} | {_signed(steer)} |")
    return lines


def case_decomposition(records: list[CaseRecord]) -> dict[tuple[str, str], dict[str, float | None]]:
    """(model, case) -> round 1, the twin's final and final - twin final, for every finished
    case of a model whose best_of_n twin finished it too (empty without twins)."""
    models = {r.model for r in records}
    finals = {(r.model, r.case_id): r.final_scores.get("selection") for r in records if r.done}
    parts = {}
    for r in records:
        twin = r.model + BASELINE_TWIN_SUFFIX
        if twin not in models or not r.done:
            continue
        final, sampled = finals.get((r.model, r.case_id)), finals.get((twin, r.case_id))
        parts[(r.model, r.case_id)] = {
            "round1_selection": r.round1_best.selection if r.round1_best is not None else None,
            "best_of_n_same_budget": sampled,
            "revision_gain": final - sampled if final is not None and sampled is not None else None}
    return parts
