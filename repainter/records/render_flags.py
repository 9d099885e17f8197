"""Flagged renders (blanked by a safety checker, NaN decodes, all black) counted per case and
per model: a flagged candidate is never scored, so a reader must see how many there were.

The graph counts its own state's candidates (:func:`summarise_flags` over their ``flagged``
values); run.json and the leaderboard count finished case records (:func:`render_flags_by_model`).
"""

from __future__ import annotations

from typing import Any


def summarise_flags(flags: list[str | None]) -> dict[str, Any]:
    """Candidates rendered, how many were flagged (per flag) and the flagged share.

    >>> summarise_flags(["nan_decode", None, "nan_decode", None])["by_flag"]
    {'nan_decode': 2}
    """
    counts: dict[str, int] = {}
    for flag in flags:
        if flag:
            counts[flag] = counts.get(flag, 0) + 1
    flagged = sum(counts.values())
    return {"candidates": len(flags), "flagged": flagged, "by_flag": counts,
            "flagged_share": flagged / len(flags) if flags else None}


def render_flags_by_model(records: list[Any]) -> dict[str, dict[str, Any]]:
    """Per model: candidates rendered and flagged (per flag), the flagged share, and the cases
    whose every candidate was flagged (they have no score, so the model's means leave them out).

    >>> from repainter.records import CaseRecord
    >>> record = CaseRecord(case_id="c", model="sd15", status="done", rounds=[{"round": 1,
    ...     "candidates": [{"round": 1, "variant": 0, "flagged": "safety_checker_blanked"},
    ...                    {"round": 1, "variant": 1, "flagged": None}]}])
    >>> render_flags_by_model([record])["sd15"]["flagged_share"]
    0.5
    """
    out: dict[str, dict[str, Any]] = {}
    for model in sorted({r.model for r in records}):
        summaries = [summarise_flags([c.flagged for c in r.candidates()])
                     for r in records if r.model == model]
        counts: dict[str, int] = {}
        for summary in summaries:
            for flag, n in summary["by_flag"].items():
                counts[flag] = counts.get(flag, 0) + n
        total = sum(s["candidates"] for s in summaries)
        flagged = sum(counts.values())
        out[model] = {"candidates": total, "flagged": flagged, "by_flag": counts,
                      "flagged_share": flagged / total if total else None,
                      "cases_all_flagged": sum(1 for s in summaries
                                               if s["candidates"] and s["flagged"] == s["candidates"])}
    return out
