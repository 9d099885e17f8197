"""The result of a run: records, leaderboard and summaries, for the CLI, scripts and notebooks."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from repainter.report.leaderboard import build_leaderboard
from repainter.spec import load_spec
from repainter.store import SPEC_FILE, RunStore


@dataclass
class RunResult:
    run_dir: Path
    spec: Any  # RunSpec
    records: list[dict[str, Any]]
    leaderboard: list[dict[str, Any]]
    info: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunResult:
        """Open a finished (or partly finished) run folder."""
        store = RunStore(run_dir)
        spec = load_spec(store.root / SPEC_FILE)
        records = store.records()
        models = [t.display_name for t in spec.t2i]
        return cls(store.root, spec, records, build_leaderboard(records, models), store.read_run_info())

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.records if r.get("status") != "done"]

    def summary(self) -> dict[str, Any]:
        """Machine-readable summary per T2I model (what ``repainter run --json`` prints)."""
        models = {}
        for row in self.leaderboard:
            done = [r for r in self.records if r["model"] == row["model"] and r.get("status") == "done"]
            entry = {
                "cases": row["cases"],
                "done": row["done"],
                "failed": row["failed"],
                "selection_round1_best": row["selection_round1"],
                "selection_final_best": row["selection_final"],
            }
            if any("object_f1" in r.get("final_scores", {}) for r in done):
                entry["object_f1_round1_best"] = row.get("object_f1_round1")
                entry["object_f1_final_best"] = row.get("object_f1")
            models[row["model"]] = entry
        return {
            "run_dir": str(self.run_dir),
            "spec_fingerprint": self.spec.fingerprint(),
            "wall_seconds": self.info.get("wall_seconds"),
            "cases": self.info.get("cases"),
            "models": models,
        }

    def best_ever_curves(self) -> dict[tuple[str, str], list[float | None]]:
        """(model, case) -> the best-ever selection score after each round."""
        return {(r["model"], r["case_id"]): r.get("best_ever_by_round", []) for r in self.records}

    def to_pandas(self):
        """One row per case x model x round: the round's best and the best-ever so far."""
        import pandas as pd

        rows = []
        for record in self.records:
            for rnd in record.get("rounds") or []:
                best = next((c for c in rnd["candidates"] if c["variant"] == rnd.get("round_best")), {})
                rows.append({
                    "model": record["model"], "case_id": record["case_id"],
                    "category": record.get("category"), "status": record.get("status"),
                    "round": rnd["round"], "prompt": rnd["prompt"],
                    "round_best_selection": rnd.get("round_best_selection"),
                    "best_ever_selection": rnd.get("best_ever_selection"),
                    **{f"score_{k}": v for k, v in (best.get("scores") or {}).items()},
                    "mean_candidate_selection": fmean(
                        [c["selection"] for c in rnd["candidates"] if c.get("selection") is not None]
                        or [float("nan")]
                    ),
                })
        return pd.DataFrame(rows)
