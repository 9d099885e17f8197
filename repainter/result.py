"""The result of a run: records, leaderboard and summaries, for the CLI, scripts and notebooks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from repainter.graph.state import round_best_candidate
from repainter.report.leaderboard import build_leaderboard
from repainter.spec import load_spec
from repainter.store import SPEC_FILE, RunStore

#: Ground-truth metrics the run summary reports next to the selection score.
TRUTH_METRICS = ("scene_truth", "object_f1")


def _intervals(row: dict[str, Any]) -> dict[str, Any]:
    """The 95% bootstrap intervals of a leaderboard row: the final selection score's, and each
    metric's mean with its interval (``metrics``)."""
    def ci(key: str) -> list[float] | None:
        low, high = row.get(f"{key}_ci_low"), row.get(f"{key}_ci_high")
        return None if low is None else [low, high]

    metrics = {key: {"mean": row[key], "ci95": ci(key)} for key in row
               if f"{key}_ci_low" in row and key != "selection_final"}
    return {"selection_final_best_ci95": ci("selection_final"), "metrics": metrics}


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
        if spec.is_grid:  # an MLLM x T2I grid: its cells come from the per-MLLM sub-runs
            from repainter.report.grid import grid_records, grid_rows

            records = grid_records(spec)
            return cls(store.root, spec, records, grid_rows(spec, records), store.read_run_info())
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
            for truth in TRUTH_METRICS:  # ground-truth fidelity, where the run measured it
                if any(truth in r.get("final_scores", {}) for r in done):
                    entry[f"{truth}_round1_best"] = row.get(f"{truth}_round1")
                    entry[f"{truth}_final_best"] = row.get(truth)
            entry.update(_intervals(row))
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

    def _path(self, relative: str | None, record: dict[str, Any] | None = None) -> str | None:
        """Absolute path of a record's file (a grid's records live in their MLLM's sub-run)."""
        base = self.run_dir / ((record or {}).get("run_subdir") or "")
        return str(base / relative) if relative else None

    def to_pandas(self):
        """One row per case x model x round: the round's best and the best-ever so far.

        Columns: ``model``, ``case_id``, ``category``, ``status``, ``round``, ``prompt`` (the
        round's base prompt), ``round_best_variant`` / ``round_best_prompt`` /
        ``round_best_image`` / ``round_best_seed``, ``round_best_selection``,
        ``best_ever_selection`` (after this round), ``best_ever_round`` / ``best_ever_variant`` /
        ``best_ever_image`` (the candidate that holds it), ``is_final_best`` (this round's best
        is the case's final best), ``score_<metric>`` (every metric of the round's best),
        ``mean_candidate_selection``, ``n_candidates`` and ``reference_image``. Image columns are
        absolute paths. Failed cases (no rounds) have no rows; see :meth:`cases_frame`.
        """
        import pandas as pd

        rows = []
        for record in self.records:
            final = record.get("best") or {}
            best_ever: dict[str, Any] | None = None
            for rnd in record.get("rounds") or []:
                candidates = rnd.get("candidates") or []
                best = round_best_candidate(rnd) or {}
                if best and best.get("selection") is not None and (
                    best_ever is None or best["selection"] > best_ever["selection"]
                ):
                    best_ever = best
                keeper = best_ever or {}
                selections = [c["selection"] for c in candidates if c.get("selection") is not None]
                rows.append({
                    "model": record["model"], "case_id": record["case_id"],
                    **({"t2i": record["t2i"], "mllm": record["mllm"]} if "mllm" in record else {}),
                    "category": record.get("category"), "status": record.get("status"),
                    "round": rnd["round"], "prompt": rnd.get("prompt"),
                    "round_best_variant": best.get("variant"),
                    "round_best_prompt": best.get("prompt"),
                    "round_best_seed": best.get("seed"),
                    "round_best_image": self._path(best.get("image"), record),
                    "round_best_selection": rnd.get("round_best_selection"),
                    "best_ever_selection": rnd.get("best_ever_selection"),
                    "best_ever_round": keeper.get("round"),
                    "best_ever_variant": keeper.get("variant"),
                    "best_ever_image": self._path(keeper.get("image"), record),
                    "is_final_best": bool(best) and best.get("round") == final.get("round")
                    and best.get("variant") == final.get("variant"),
                    **{f"score_{k}": v for k, v in (best.get("scores") or {}).items()},
                    "mean_candidate_selection": fmean(selections or [float("nan")]),
                    "n_candidates": len(candidates),
                    "reference_image": self._path(record.get("reference"), record),
                })
        return pd.DataFrame(rows)

    def cases_frame(self):
        """One row per case x model: status, final best scores, round-1 best, prompts, images."""
        import pandas as pd

        rows = []
        for record in self.records:
            best = record.get("best") or {}
            round1 = record.get("round1_best") or {}
            final = record.get("final_scores") or {}
            r1_sel, final_sel = round1.get("selection"), final.get("selection")
            rows.append({
                "model": record["model"], "case_id": record["case_id"],
                **({"t2i": record["t2i"], "mllm": record["mllm"]} if "mllm" in record else {}),
                "category": record.get("category"), "status": record.get("status"),
                "error": record.get("error"),
                "rounds": len(record.get("rounds") or []),
                "stop_reason": record.get("stop_reason"),
                "selection_round1": r1_sel,
                "selection_final": final_sel,
                "gain": (final_sel - r1_sel) if None not in (r1_sel, final_sel) else None,
                **{f"final_{k}": v for k, v in final.items() if k != "selection"},
                "best_round": best.get("round"), "best_variant": best.get("variant"),
                "best_prompt": best.get("prompt"),
                "best_image": self._path(best.get("image"), record),
                "reference_image": self._path(record.get("reference"), record),
                "license": record.get("license"), "source": record.get("source"),
                **_decision_columns(record.get("decision")),
            })
        return pd.DataFrame(rows)

    # -- notebooks -------------------------------------------------------------------------

    def __repr__(self) -> str:
        """Short in a plain REPL (the records stay in ``.records``)."""
        done = sum(1 for r in self.records if r.get("status") == "done")
        models = [row["model"] for row in self.leaderboard]
        return (f"RunResult(run_dir={str(self.run_dir)!r}, models={models}, "
                f"cases={done} done / {len(self.records) - done} failed, "
                f"status={self.info.get('status')!r})")

    def _repr_html_(self, max_cases: int = 4, thumb: int = 96) -> str:
        """A leaderboard table and reference-vs-best thumbnails (for Jupyter)."""
        return render_html(self, max_cases=max_cases, thumb=thumb)


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.3f}"
    return str(value)


def _thumbnail(path: Path, size: int) -> str | None:
    """A small PNG of ``path`` as a data URI, or None if it cannot be read."""
    import base64
    import io

    from PIL import Image

    try:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((size, size))
            buffer = io.BytesIO()
            img.save(buffer, format="PNG", optimize=True)
    except (OSError, ValueError):
        return None
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _cell_image(run_dir: Path, relative: str | None, size: int, caption: str) -> str:
    from html import escape

    uri = _thumbnail(run_dir / relative, size) if relative else None
    body = (f'<img src="{uri}" width="{size}" style="display:block;image-rendering:auto" '
            f'alt="{escape(caption)}">' if uri
            else f'<div style="width:{size}px;height:{size}px;background:#eee;color:#888;'
                 f'font-size:11px;display:flex;align-items:center;justify-content:center">'
                 'no image</div>')
    return (f'<figure style="margin:0 4px;display:inline-block;vertical-align:top;'
            f'width:{size}px;white-space:normal">{body}<figcaption style="font-size:11px;'
            'overflow-wrap:anywhere;white-space:normal;line-height:1.25">'
            f"{escape(caption)}</figcaption></figure>")


def render_html(result: RunResult, max_cases: int = 4, thumb: int = 96) -> str:
    """HTML for notebooks: leaderboard, then per case the reference and each model's best."""
    from html import escape

    metrics = sorted({
        k for row in result.leaderboard for k in row
        if k not in _LEADERBOARD_FIXED and not k.endswith(("_ci_low", "_ci_high", "_round1"))
    })
    from repainter.report.labels import metric_header

    header = ["rank", "model", "done", "failed", "selection r1", "selection final", "steer",
              *(metric_header(m) for m in metrics)]
    parts = [
        '<div class="repainter-result">',
        (f"<div><b>repainter run</b> <code>{escape(str(result.run_dir))}</code> · "
         f"{len(result.records)} case records · {len(result.failed)} failed</div>"),
        '<table style="border-collapse:collapse;font-size:12px"><thead><tr>',
        "".join(f'<th style="padding:2px 6px;text-align:left">{escape(h)}</th>' for h in header),
        "</tr></thead><tbody>",
    ]
    for row in result.leaderboard:
        cells = [row.get("rank"), row.get("model"), row.get("done"), row.get("failed"),
                 row.get("selection_round1"), row.get("selection_final"), row.get("steerability"),
                 *(row.get(m) for m in metrics)]
        parts.append("<tr>" + "".join(
            f'<td style="padding:2px 6px">{escape(_fmt(c))}</td>' for c in cells) + "</tr>")
    parts.append("</tbody></table>")

    models = [row["model"] for row in result.leaderboard] or sorted(
        {r["model"] for r in result.records})
    by_case: dict[str, dict[str, dict[str, Any]]] = {}
    for record in result.records:
        by_case.setdefault(record["case_id"], {})[record["model"]] = record
    shown = list(by_case)[:max_cases]
    if shown:
        parts.append(f'<div style="margin-top:6px"><b>reference vs best render</b> '
                     f"(first {len(shown)} of {len(by_case)} cases)</div>")
    for case_id in shown:
        records = by_case[case_id]
        first = next(iter(records.values()))
        parts.append('<div style="margin:4px 0;white-space:nowrap;overflow-x:auto">')
        caption = f"{case_id} · {first.get('category') or ''}".strip(" ·")
        if first.get("license"):
            caption += f" · {first['license']}"
        parts.append(_cell_image(result.run_dir, first.get("reference"), thumb, caption))
        for model in models:
            record = records.get(model)
            if record is None:
                continue
            if record.get("status") != "done":
                label = f"{model}: failed ({record.get('error') or 'unknown'})"[:160]
                parts.append(_cell_image(result.run_dir, None, thumb, label))
                continue
            best = record.get("best") or {}
            score = (record.get("final_scores") or {}).get("selection")
            parts.append(_cell_image(result.run_dir, best.get("image"), thumb,
                                     f"{model}: {_fmt(score)} (r{best.get('round', '?')})"))
        best_prompt = next((((r.get("best") or {}).get("prompt")) for r in records.values()
                            if r.get("best")), None)
        if best_prompt:
            parts.append(f'<div style="font-size:11px;color:#555;white-space:normal">'
                         f"{escape(best_prompt[:300])}</div>")
        parts.append("</div>")
    parts.append("</div>")
    return "".join(parts)


_LEADERBOARD_FIXED = {
    "model", "cases", "done", "failed", "selection_round1", "selection_final", "steerability",
    "mean_rounds", "seconds_per_case", "rank",
}


def _decision_columns(decision: dict[str, Any] | None) -> dict[str, Any]:
    """Retrieve-or-generate outcome of a case, when the spec asked for one."""
    if not decision:
        return {}
    return {"decision_choice": decision.get("choice"),
            "decision_generated_value": decision.get("generated_value"),
            "decision_retrieved_value": decision.get("retrieved_value"),
            "decision_truly_closer": decision.get("truly_closer"),
            "decision_correct": decision.get("correct")}
