"""The sanity check's findings (RUN/sanity.json, written by ``repainter sanity``) in words, for
the leaderboard's ``## Metric sanity`` section and the HTML report's ``metric sanity`` section.

It reads the JSON only and runs nothing (the report never imports :mod:`repainter.sanity`, which
writes through it).

>>> stats = {"tau": 0.93, "tau_ci": [0.88, 0.97], "verdict": "orders",
...          "adjacent": [{"separated": True}, {"separated": False}]}
>>> verdict_sentence("clip_i", "sd15", "prompt", stats)
'clip_i orders the prompt-information ladder for sd15 at tau 0.93 [0.88, 0.97]; adjacent rungs separated 1/2 (Wilcoxon, Holm)'
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from repainter.images import atomic_write_bytes

#: Where sanity.json and SANITY.md are written in a run folder.
SANITY_JSON, SANITY_MD = "sanity.json", "SANITY.md"
#: The leaderboard.md section the check writes (replaced whenever it is written again).
LEADERBOARD_HEADING = "## Metric sanity"
LADDER_TITLES = {"prompt": "prompt-information ladder", "sampler": "sampler-budget ladder"}


def ladder_title(name: str) -> str:
    """``corruption:blur`` -> ``blur corruption ladder``."""
    if name.startswith("corruption:"):
        return f"{name.split(':', 1)[1]} corruption ladder"
    return LADDER_TITLES.get(name, f"{name} ladder")


def is_required(name: str) -> bool:
    """Whether a ladder's order holds by construction (every one but the sampler budget's)."""
    return name != "sampler"


def tau_text(stats: dict[str, Any]) -> str:
    ci = stats.get("tau_ci")
    interval = f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""
    return f"tau {stats['tau']:.2f}{interval}"


def score_label(metric: str, selection: dict[str, float] | None = None) -> str:
    """``selection`` named with its metrics and weights where they are known."""
    if metric == "selection" and selection:
        parts = " + ".join(f"{w:g} {m}" for m, w in selection.items())
        return f"selection ({parts})"
    return metric


def verdict_sentence(metric: str, model: str, ladder: str, stats: dict[str, Any],
                     selection: dict[str, float] | None = None) -> str:
    name, title = score_label(metric, selection), ladder_title(ladder)
    adjacent = stats.get("adjacent") or []
    separated = (f"; adjacent rungs separated {sum(a['separated'] for a in adjacent)}/"
                 f"{len(adjacent)} (Wilcoxon, Holm)") if adjacent else ""
    verdict, tau = stats["verdict"], tau_text(stats)
    if verdict == "orders":
        return f"{name} orders the {title} for {model} at {tau}{separated}"
    if verdict == "weak":
        return f"{name} orders the {title} for {model} only weakly, at {tau}{separated}"
    if verdict == "fails":
        return f"{name} does NOT order the {title} for {model} ({tau}){separated}"
    return (f"{name} on the {title} for {model} (empirical, not required to be monotone): "
            f"{tau}{separated}")


def selection_sentences(data: dict[str, Any]) -> list[str]:
    """One sentence per model and required ladder, for the selection score."""
    selection = (data.get("spec") or {}).get("selection")
    lines = []
    for name, ladder in (data.get("ladders") or {}).items():
        for model, entry in ladder["models"].items():
            stats = entry["metrics"].get("selection")
            if stats is not None:
                lines.append(verdict_sentence("selection", model, name, stats, selection))
    return lines


def failing_models(data: dict[str, Any], models: list[str] | None = None) -> dict[str, list[str]]:
    """Model -> the required ladders the selection score fails on it (only failing models;
    ``models``: only these, e.g. the ones a leaderboard ranks)."""
    checks = data.get("selection_check") or {}
    return {m: c["failed"] for m, c in checks.items()
            if c.get("failed") and (models is None or m in models)}


def leaderboard_section(data: dict[str, Any], models: list[str]) -> str:
    """The leaderboard.md section: a warning per ranked model whose selection score fails its
    own sanity check, or a line saying it passed."""
    selection = score_label("selection", (data.get("spec") or {}).get("selection"))
    lines = [LEADERBOARD_HEADING, ""]
    failing = failing_models(data, models)
    checks = data.get("selection_check") or {}
    for model, ladders in failing.items():
        found = [_ladder_tau(data, name, model) for name in ladders]
        lines.append(f"- **Warning**: {selection} fails its own sanity check on **{model}** "
                     f"({'; '.join(found)}): its ranking of {model} is not to be trusted; see "
                     f"{SANITY_MD}.")
    passed = [m for m in models if (checks.get(m) or {}).get("passes")]
    if passed:
        lines.append(f"- {selection} orders every required sanity ladder for "
                     f"{', '.join(passed)} ({SANITY_MD}).")
    unmeasured = [m for m in models if m not in checks]
    if unmeasured:
        lines.append(f"- Not checked: {', '.join(unmeasured)} (not in {SANITY_JSON}).")
    return "\n".join(lines) + "\n"


def _ladder_tau(data: dict[str, Any], ladder: str, model: str) -> str:
    stats = data["ladders"][ladder]["models"][model]["metrics"]["selection"]
    return f"{ladder_title(ladder)} at {tau_text(stats)}"


def read_sanity(run_dir: str | Path) -> dict[str, Any] | None:
    """sanity.json of a run folder, or None where there is none (or it cannot be read)."""
    path = Path(run_dir) / SANITY_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == "repainter-sanity" else None


def refresh_leaderboard_section(run_dir: str | Path, models: list[str] | None = None) -> None:
    """Put the sanity section into leaderboard.md (replacing an older one) where both files
    exist; ``models``: the ones the leaderboard ranks (default: those in leaderboard.json)."""
    run_dir = Path(run_dir)
    path = run_dir / "leaderboard.md"
    data = read_sanity(run_dir)
    if data is None or not path.exists():
        return
    if models is None:
        models = _ranked_models(run_dir) or list((data.get("spec") or {}).get("t2i") or [])
    text = path.read_text(encoding="utf-8")
    # drop an earlier section: from its heading to the next level-2 heading or the end
    text = re.sub(rf"(?ms)^{re.escape(LEADERBOARD_HEADING)}\n.*?(?=^## |\Z)", "", text)
    text = text.rstrip() + "\n\n" + leaderboard_section(data, models)
    atomic_write_bytes(path, text.encode("utf-8"))


def _ranked_models(run_dir: Path) -> list[str]:
    try:
        board = json.loads((run_dir / "leaderboard.json").read_text(encoding="utf-8"))
        return [row["model"] for row in board.get("models") or []]
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return []


def _cell(stats: dict[str, Any] | None) -> dict[str, Any] | None:
    if stats is None:
        return None
    adjacent = stats.get("adjacent") or []
    return {"tau": tau_text(stats)[4:], "verdict": stats["verdict"],
            "separated": f"{sum(a['separated'] for a in adjacent)}/{len(adjacent)}"}


def _ladder_view(ladder: dict[str, Any], selection: dict[str, float]) -> dict[str, Any]:
    models = list(ladder["models"])
    metrics = list(dict.fromkeys(m for entry in ladder["models"].values()
                                 for m in entry["metrics"]))
    rows = [{"metric": score_label(m, selection),
             "cells": [_cell(ladder["models"][model]["metrics"].get(m)) for model in models]}
            for m in metrics]
    cases = {model: entry["cases"] for model, entry in ladder["models"].items()}
    return {"title": ladder["title"], "required": ladder["required"], "models": models,
            "cases": cases, "rows": rows}


def _judge_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for model, families in (data.get("judge_agreement") or {}).items():
        for family, stats in families.items():
            ci = stats.get("rate_ci")
            rows.append({"model": model, "family": family, "pairs": stats["pairs"],
                         "rate": "–" if stats["rate"] is None else f"{stats['rate']:.2f}",
                         "ci": f"[{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "–",
                         "ties": stats["judge_ties"]})
    return rows


def sanity_view(run_dir: Path) -> dict[str, Any] | None:
    """What the template shows of RUN/sanity.json, or None where the check did not run."""
    data = read_sanity(run_dir)
    if data is None:
        return None
    selection = (data.get("spec") or {}).get("selection") or {}
    failing = failing_models(data)
    warnings = [f"{score_label('selection', selection)} fails its own sanity check on {model} "
                f"({'; '.join(_ladder_tau(data, name, model) for name in ladders)}): its "
                f"ranking of {model} is not to be trusted"
                for model, ladders in failing.items()]
    return {"command": data.get("command"), "cases": len(data.get("cases") or []),
            "seconds": data.get("seconds"), "headline": selection_sentences(data),
            "warnings": warnings,
            "ladders": [_ladder_view(ladder, selection)
                        for ladder in (data.get("ladders") or {}).values()],
            "judge": _judge_rows(data)}
