"""The result of a run: records, leaderboard and summaries, for the CLI, scripts and notebooks."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any

from repainter.records import CandidateRecord, CaseRecord, DecisionRecord
from repainter.records.leaderboard import LeaderboardRow, MetricSummary
from repainter.records.run_info import RunInfo
from repainter.report.leaderboard import build_leaderboard
from repainter.spec import load_run_spec
from repainter.store import SPEC_FILE, RunStore

#: Ground-truth metrics the run summary reports next to the selection score.
TRUTH_METRICS = ("scene_truth", "object_f1")


def _intervals(row: LeaderboardRow) -> dict[str, Any]:
    """The 95% bootstrap intervals of a leaderboard row: the final selection score's, and each
    metric's mean with its interval (``metrics``)."""
    def ci(summary: MetricSummary) -> list[float] | None:
        return None if summary.ci_low is None else [summary.ci_low, summary.ci_high]

    metrics = {name: {"mean": s.mean, "ci95": ci(s)} for name, s in row.metrics.items()}
    return {"selection_final_best_ci95": ci(row.selection), "metrics": metrics}


@dataclass
class RunResult:
    run_dir: Path
    spec: Any  # RunSpec
    records: list[CaseRecord]
    leaderboard: list[LeaderboardRow]
    info: RunInfo = field(default_factory=RunInfo)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunResult:
        """Open a finished (or partly finished) run folder."""
        store = RunStore(run_dir)
        spec = load_run_spec(store.root / SPEC_FILE)
        if spec.is_grid:  # an MLLM x T2I grid: its cells come from the per-MLLM sub-runs
            from repainter.report.grid import grid_records, grid_rows

            records = grid_records(spec)
            return cls(store.root, spec, records, grid_rows(spec, records), store.read_run_info())
        records = store.records()
        models = [t.display_name for t in spec.t2i]
        return cls(store.root, spec, records, build_leaderboard(records, models), store.read_run_info())

    @property
    def failed(self) -> list[CaseRecord]:
        lazy = getattr(self.records, "failed", None)  # LazyRecords: read only the failed ones
        return lazy() if callable(lazy) else [r for r in self.records if not r.done]

    def summary(self) -> dict[str, Any]:
        """Machine-readable summary per T2I model (what ``repainter run --json`` prints)."""
        models = {}
        for row in self.leaderboard:
            done = [r for r in self.records if r.model == row.model and r.done]
            entry = {
                "cases": row.cases,
                "done": row.done,
                "failed": row.failed,
                "selection_round1_best": row.selection.round1,
                "selection_final_best": row.selection.mean,
            }
            for truth in TRUTH_METRICS:  # ground-truth fidelity, where the run measured it
                if any(truth in r.final_scores for r in done):
                    summary = row.metrics.get(truth) or MetricSummary()
                    entry[f"{truth}_round1_best"] = summary.round1
                    entry[f"{truth}_final_best"] = summary.mean
            entry.update(_intervals(row))
            models[row.model] = entry
        cases = self.info.cases
        return {
            "run_dir": str(self.run_dir),
            "spec_fingerprint": self.spec.fingerprint(),
            "wall_seconds": self.info.wall_seconds,
            "cases": cases.model_dump(exclude_none=True) if cases is not None else None,
            "models": models,
            # per model: how busy its device was and what bound it (run.json's pacing)
            "pacing": {model: {"device_busy_share": report["device_busy_share"],
                               "binding": report["binding"], "hint": report["hint"]}
                       for model, report in (self.info.pacing or {}).items()},
        }

    def summary_table(self) -> tuple[list[str], list[list[Any]]]:
        """The run's summary as a table (what ``repainter run`` prints): the column names and
        one row of values per model, in leaderboard order.

        Columns: ``rank``, ``model``, ``done``, ``failed``, the selection score's round-1 and
        final means and its steerability, each ground-truth metric's round-1 and final mean
        (where the run measured it), then every other metric's final mean (the judges with
        their scale). Scores are floats, None where a model has none.
        """
        from repainter.report.labels import metric_header

        rows = self.leaderboard
        truths = [t for t in TRUTH_METRICS if any(t in row.metrics for row in rows)]
        # every other metric's final mean (rescore -m psnr shows psnr), judge columns with their scale
        labels = [m.display_name for m in self.spec.metrics] + ["judge_semantic", "judge_aesthetic"]
        others = [label for label in labels if label not in truths
                  and any(label in row.metrics for row in rows)]
        columns = ["rank", "model", "done", "failed", "selection r1", "selection final", "steer"]
        columns += [f"{truth} {when}" for truth in truths for when in ("r1", "final")]
        columns += [metric_header(label) for label in others]

        def stat(row: LeaderboardRow, label: str, field: str = "mean") -> float | None:
            summary = row.metrics.get(label)
            return getattr(summary, field) if summary is not None else None

        table = []
        for row in rows:
            cells = [row.rank, row.model, row.done, row.failed, row.selection.round1,
                     row.selection.mean, row.selection.steerability]
            for truth in truths:
                cells += [stat(row, truth, "round1"), stat(row, truth)]
            cells += [stat(row, label) for label in others]
            table.append(cells)
        return columns, table

    def best_ever_curves(self) -> dict[tuple[str, str], list[float | None]]:
        """(model, case) -> the best-ever selection score after each round."""
        return {(r.model, r.case_id): r.best_ever_by_round for r in self.records}

    def _path(self, relative: str | None, record: CaseRecord | None = None) -> str | None:
        """Absolute path of a record's file (a grid's records live in their MLLM's sub-run)."""
        base = self.run_dir / ((record.run_subdir if record else None) or "")
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

        Where a best_of_n twin ran beside a model (``loop.baseline``), that model's rows add
        the case's ``round1_selection``, ``best_of_n_same_budget`` (the twin's final selection
        score on the same case) and ``revision_gain`` (final - twin final: the paired values
        behind the leaderboard's revision test).
        """
        import pandas as pd

        from repainter.report.decomposition import case_decomposition

        parts = case_decomposition(self.records)
        rows = [{**row, **parts.get((record.model, record.case_id), {})}
                for record in self.records for row in self._round_rows(record)]
        return pd.DataFrame(rows)

    def _round_rows(self, record: CaseRecord) -> list[dict[str, Any]]:
        """The rows of :meth:`to_pandas` for one record (one per round)."""
        rows = []
        best_ever: CandidateRecord | None = None
        for rnd in record.rounds:
            best = rnd.best_candidate()
            if best is not None and best.selection is not None and (
                best_ever is None or best.selection > best_ever.selection
            ):
                best_ever = best
            selections = [c.selection for c in rnd.candidates if c.selection is not None]
            rows.append({
                "model": record.model, "case_id": record.case_id, **_grid_columns(record),
                "category": record.category, "status": record.status,
                "round": rnd.round, "prompt": rnd.prompt,
                "round_best_variant": best.variant if best else None,
                "round_best_prompt": best.prompt if best else None,
                "round_best_seed": best.seed if best else None,
                "round_best_image": self._path(best.image if best else None, record),
                "round_best_selection": rnd.round_best_selection,
                "best_ever_selection": rnd.best_ever_selection,
                "best_ever_round": best_ever.round if best_ever else None,
                "best_ever_variant": best_ever.variant if best_ever else None,
                "best_ever_image": self._path(best_ever.image if best_ever else None, record),
                "is_final_best": best is not None and best.key == _key(record.best),
                **{f"score_{k}": v for k, v in (best.scores if best else {}).items()},
                "mean_candidate_selection": fmean(selections or [float("nan")]),
                "n_candidates": len(rnd.candidates),
                "reference_image": self._path(record.reference, record),
            })
        return rows

    def cases_frame(self):
        """One row per case x model: status, final best scores, round-1 best, prompts, images."""
        import pandas as pd

        rows = []
        for record in self.records:
            best, final = record.best, record.final_scores
            r1_sel, final_sel = record.round1_selection, record.final_score("selection")
            rows.append({
                "model": record.model, "case_id": record.case_id, **_grid_columns(record),
                "category": record.category, "status": record.status,
                "error": record.error,
                "rounds": len(record.rounds),
                "stop_reason": record.stop_reason,
                "selection_round1": r1_sel,
                "selection_final": final_sel,
                "gain": (final_sel - r1_sel) if None not in (r1_sel, final_sel) else None,
                **{f"final_{k}": v for k, v in final.items() if k != "selection"},
                "best_round": best.round if best else None,
                "best_variant": best.variant if best else None,
                "best_prompt": best.prompt if best else None,
                "best_image": self._path(best.image if best else None, record),
                "reference_image": self._path(record.reference, record),
                "license": record.license, "source": record.source,
                **_decision_columns(record.decision),
            })
        return pd.DataFrame(rows)

    # -- notebooks -------------------------------------------------------------------------

    def __repr__(self) -> str:
        """Short in a plain REPL (the records stay in ``.records``)."""
        done = sum(1 for r in self.records if r.done)
        models = [row.model for row in self.leaderboard]
        return (f"RunResult(run_dir={str(self.run_dir)!r}, models={models}, "
                f"cases={done} done / {len(self.records) - done} failed, "
                f"status={self.info.status!r})")

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
    parts = ['<div class="repainter-result">', *_leaderboard_html(result)]
    models = [row.model for row in result.leaderboard] or sorted(
        {r.model for r in result.records})
    by_case: dict[str, dict[str, CaseRecord]] = {}
    for record in result.records:
        by_case.setdefault(record.case_id, {})[record.model] = record
    shown = list(by_case)[:max_cases]
    if shown:
        parts.append(f'<div style="margin-top:6px"><b>reference vs best render</b> '
                     f"(first {len(shown)} of {len(by_case)} cases)</div>")
    for case_id in shown:
        parts += _case_html(result.run_dir, case_id, by_case[case_id], models, thumb)
    parts.append("</div>")
    return "".join(parts)


def _leaderboard_html(result: RunResult) -> list[str]:
    """The notebook view's title line and leaderboard table."""
    from html import escape

    from repainter.report.labels import metric_header

    metrics = sorted({name for row in result.leaderboard for name in row.metrics})
    header = ["rank", "model", "done", "failed", "selection r1", "selection final", "steer",
              *(metric_header(m) for m in metrics)]
    parts = [
        (f"<div><b>repainter run</b> <code>{escape(str(result.run_dir))}</code> · "
         f"{len(result.records)} case records · {len(result.failed)} failed</div>"),
        '<table style="border-collapse:collapse;font-size:12px"><thead><tr>',
        "".join(f'<th style="padding:2px 6px;text-align:left">{escape(h)}</th>' for h in header),
        "</tr></thead><tbody>",
    ]
    for row in result.leaderboard:
        cells = [row.rank, row.model, row.done, row.failed,
                 row.selection.round1, row.selection.mean, row.selection.steerability,
                 *((row.metrics.get(m) or MetricSummary()).mean for m in metrics)]
        parts.append("<tr>" + "".join(
            f'<td style="padding:2px 6px">{escape(_fmt(c))}</td>' for c in cells) + "</tr>")
    parts.append("</tbody></table>")
    return parts


def _case_html(run_dir: Path, case_id: str, records: dict[str, CaseRecord], models: list[str],
               thumb: int) -> list[str]:
    """One case of the notebook view: the reference, each model's best render, the best prompt."""
    from html import escape

    first = next(iter(records.values()))
    parts = ['<div style="margin:4px 0;white-space:nowrap;overflow-x:auto">']
    caption = f"{case_id} · {first.category or ''}".strip(" ·")
    if first.license:
        caption += f" · {first.license}"
    parts.append(_cell_image(run_dir, first.reference, thumb, caption))
    for model in models:
        record = records.get(model)
        if record is None:
            continue
        if not record.done:
            label = f"{model}: failed ({record.error or 'unknown'})"[:160]
            parts.append(_cell_image(run_dir, None, thumb, label))
            continue
        best = record.best
        score = record.final_scores.get("selection")
        best_round = best.round if best and best.round is not None else "?"
        parts.append(_cell_image(run_dir, best.image if best else None, thumb,
                                 f"{model}: {_fmt(score)} (r{best_round})"))
    best_prompt = next((r.best.prompt for r in records.values() if r.best), None)
    if best_prompt:
        parts.append(f'<div style="font-size:11px;color:#555;white-space:normal">'
                     f"{escape(best_prompt[:300])}</div>")
    parts.append("</div>")
    return parts


def _decision_columns(decision: DecisionRecord | None) -> dict[str, Any]:
    """Retrieve-or-generate outcome of a case, when the spec asked for one."""
    if decision is None:
        return {}
    return {"decision_choice": decision.choice,
            "decision_generated_value": decision.generated_value,
            "decision_retrieved_value": decision.retrieved_value,
            "decision_truly_closer": decision.truly_closer,
            "decision_correct": decision.correct}


def _grid_columns(record: CaseRecord) -> dict[str, Any]:
    """A grid cell's T2I model and MLLM (records of a plain run have no such columns)."""
    return {"t2i": record.t2i, "mllm": record.mllm} if record.mllm is not None else {}


def _key(candidate: CandidateRecord | None) -> tuple[int | None, int | None] | None:
    return candidate.key if candidate is not None else None
