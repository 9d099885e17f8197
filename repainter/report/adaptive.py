"""How an adaptive budget's summary reads in the report, run.json's page and the leaderboard.

The summary itself comes from :mod:`repainter.adaptive`; these formatters sit in the report layer
so that the report never imports the code that runs a budget.
"""

from __future__ import annotations

from repainter.records.leaderboard import AdaptiveSummary


def adaptive_line(summary: AdaptiveSummary) -> str:
    """One sentence: references used and saved, and whether every pair was decided."""
    decided = sum(1 for p in summary.pairs if p.decision)
    return (f"used {summary.references_used} of {summary.references_available} references "
            f"({summary.references_saved} saved, {100 * summary.saved_fraction:.0f}%); "
            f"{decided} of {len(summary.pairs)} pairs decided at alpha {summary.alpha} "
            f"({summary.method}, metric {summary.metric})")


def adaptive_markdown(summary: AdaptiveSummary) -> str:
    """The report line and table of an adaptive run."""
    from repainter.report.markdown import markdown_table, markdown_text

    rows = [[p.model_a, p.model_b, str(p.n), p.decision or "undecided",
             str(p.decided_after or "-"), f"{p.wealth:.3g}"] for p in summary.pairs]
    lines = ["## Adaptive budget", "", markdown_text(adaptive_line(summary).capitalize()) + ".", "",
             *markdown_table(["model_a", "model_b", "n", "decision", "decided after", "wealth"],
                             rows)]
    return "\n".join(lines) + "\n"


