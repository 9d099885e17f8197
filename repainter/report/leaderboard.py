"""Per-model leaderboard from case records: means of the final scores, round 1 vs final, failures.

Written as JSON (machine-readable), CSV (spreadsheets) and Markdown (humans).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from statistics import fmean
from typing import Any

from repainter.images import atomic_write_bytes
from repainter.store import write_json


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    return fmean(finite) if finite else None


def build_leaderboard(records: list[dict[str, Any]], models: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per T2I model, best first by mean final selection score.

    ``<metric>`` is the mean over cases of the best-ever candidate's score, ``<metric>_round1``
    that of round 1's best; ``steerability`` is the mean per-case gain of the selection score.
    """
    models = models or sorted({r["model"] for r in records})
    rows = []
    for model in models:
        mine = [r for r in records if r["model"] == model]
        done = [r for r in mine if r.get("status") == "done"]
        metric_names = sorted({k for r in done for k in r.get("final_scores", {})} - {"selection"})
        row: dict[str, Any] = {
            "model": model,
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
        }
        for name in metric_names:
            row[name] = _mean([r["final_scores"].get(name) for r in done])
            if not name.startswith("judge_"):
                row[f"{name}_round1"] = _mean(
                    [((r.get("round1_best") or {}).get("scores") or {}).get(name) for r in done]
                )
        rows.append(row)
    rows.sort(key=lambda row: -(row["selection_final"] if row["selection_final"] is not None else -math.inf))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def _columns(rows: list[dict[str, Any]]) -> list[str]:
    first = ["rank", "model", "cases", "done", "failed", "selection_round1", "selection_final",
             "steerability", "mean_rounds"]
    rest = sorted({k for row in rows for k in row} - set(first))
    return first + rest


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def leaderboard_markdown(rows: list[dict[str, Any]]) -> str:
    columns = _columns(rows)
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_leaderboard(rows: list[dict[str, Any]], run_dir: str | Path) -> None:
    run_dir = Path(run_dir)
    write_json(run_dir / "leaderboard.json", rows)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=_columns(rows), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(run_dir / "leaderboard.csv", buffer.getvalue().encode("utf-8"))
    atomic_write_bytes(run_dir / "leaderboard.md", leaderboard_markdown(rows).encode("utf-8"))
