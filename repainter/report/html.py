"""The HTML report of a run folder: one static page that opens offline.

    RUN/report/index.html        the page (inline CSS, no script, no network)
    RUN/report/plots/*.png       matplotlib (Agg) plots
    RUN/report/thumbs/...        downscaled copies of images larger than THUMB_SOURCE_MAX

Images are referenced by relative paths into the run folder (``../references/...``,
``../images/...``), so the report works wherever the run folder is copied, as long as it stays
inside it. Every text that came from a model (IUT, prompts, critiques, judge rationale, errors) is
escaped by Jinja2's autoescape; the page never marks model text as safe, the word-level prompt
diffs are built from plain tokens that the template escapes, and a Content-Security-Policy meta
tag forbids scripts as a second line of defence.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from PIL import Image

from repainter.environment import summary_facts
from repainter.images import atomic_write_bytes
from repainter.records import (
    CandidateRecord,
    CaseRecord,
    CritiqueRecord,
    DecisionRecord,
    RecordVersionError,
    RoundRecord,
    dump_record,
    load_case_record,
)
from repainter.records.leaderboard import (
    CategoryRow,
    ComparisonFamily,
    LeaderboardRow,
    MetricSummary,
)
from repainter.records.run_info import RunInfo
from repainter.report.labels import metric_header
from repainter.report.leaderboard import (
    build_category_table,
    build_leaderboard,
    build_metric_comparisons,
    correction_note,
    read_leaderboard,
)
from repainter.report.plots import (
    model_colour,
    plot_categories,
    plot_progress,
    sparkline_points,
)
from repainter.schemas import ImageUnderstandingTree
from repainter.store import SPEC_FILE, RunStore, slug

TEMPLATES = Path(__file__).parent / "templates"
REPORT_DIR = "report"
#: References listed in the report (one collapsible card each); the rest are named only.
MAX_CASES = 1000
#: References whose card holds the full history (every round's prompt diff, candidates and
#: critique); later cards show the overview only, which keeps a 1000-case page to a few MB.
MAX_DETAILED_CASES = 150
#: Images whose longer side is at most this many pixels are shown as they are; larger ones get a
#: thumbnail (JPEG, THUMB_SIZE px) under report/thumbs/.
THUMB_SOURCE_MAX = 400
THUMB_SIZE = 320

_TOKEN = re.compile(r"\s+|[\w'’-]+|[^\w\s]", re.UNICODE)


# -- diffs -------------------------------------------------------------------------------------


#: Longest changed stretch (in tokens, words and spaces) a word diff matches token by token;
#: beyond it the stretch is one deletion plus one insertion, so a diff stays linear in time.
MAX_DIFF_TOKENS = 600


def word_diff(old: str | None, new: str | None) -> list[tuple[str, str]]:
    """Word-level diff of two prompts as ``(op, text)`` segments, op in {"eq", "ins", "del"}.

    Segments are plain text: the template escapes them, so a diff never carries markup from the
    model. Whitespace between two changed words is kept inside the change.

    Example:
        >>> word_diff("a red square", "a blue square")
        [('eq', 'a '), ('del', 'red'), ('ins', 'blue'), ('eq', ' square')]
    """
    a, b = _TOKEN.findall(old or ""), _TOKEN.findall(new or "")
    # The common head and tail are found in linear time; only the changed middle is matched,
    # and a middle too large for SequenceMatcher (quadratic or worse on long, repetitive
    # prompts) is shown as one deletion and one insertion.
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    a_mid, b_mid = a[head:len(a) - tail], b[head:len(b) - tail]
    out: list[tuple[str, str]] = []

    def push(op: str, text: str) -> None:
        if not text:
            return
        if out and out[-1][0] == op:
            out[-1] = (op, out[-1][1] + text)
        else:
            out.append((op, text))

    push("eq", "".join(a[:head]))
    if max(len(a_mid), len(b_mid)) > MAX_DIFF_TOKENS:
        push("del", "".join(a_mid))
        push("ins", "".join(b_mid))
    else:
        matcher = difflib.SequenceMatcher(None, a_mid, b_mid, autojunk=False)
        for tag, i1, i2, j1, j2 in matcher.get_opcodes():
            if tag == "equal":
                push("eq", "".join(a_mid[i1:i2]))
            else:
                if i2 > i1:
                    push("del", "".join(a_mid[i1:i2]))
                if j2 > j1:
                    push("ins", "".join(b_mid[j1:j2]))
    push("eq", "".join(a[len(a) - tail:]))
    return out


def compact_diff(segments: list[tuple[str, str]] | None, context: int = 3) -> list[tuple[str, str]] | None:
    """``segments`` with long unchanged stretches cut to ``context`` words around each change.

    Example:
        >>> compact_diff(word_diff("one two three four five six", "one two three four five 6"), 2)
        [('eq', '… four five '), ('del', 'six'), ('ins', '6')]
    """
    if segments is None:
        return None
    out = []
    last = len(segments) - 1
    for i, (op, text) in enumerate(segments):
        if op == "eq":
            tokens = re.findall(r"\s+|\S+\s*", text)  # each word with its trailing space
            head = context if i > 0 else 0
            tail = context if i < last else 0
            if len(tokens) > head + tail + 1:
                text = "".join(tokens[:head]) + "… " + "".join(tokens[len(tokens) - tail:]) if tail \
                    else "".join(tokens[:head]) + "…"
        out.append((op, text))
    return out


def diff_stats(segments: list[tuple[str, str]]) -> dict[str, int]:
    words = {op: sum(len(t.split()) for o, t in segments if o == op) for op in ("ins", "del")}
    return words


# -- formatting --------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if abs(value) >= 10:
            return f"{value:.{max(1, digits - 1)}f}"
        return f"{value:.{digits}f}"
    return str(value)


def fmt_signed(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    return ("+" if value >= 0 else "") + fmt(value, digits)


def fmt_p(value: Any) -> str:
    if value is None:
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3g}"


def fmt_seconds(value: Any) -> str:
    if value is None:
        return "–"
    value = float(value)
    if value < 120:
        return f"{value:.1f} s"
    return f"{value / 60:.1f} min"


# -- images ------------------------------------------------------------------------------------


class ReportImages:
    """Relative URLs of run-folder images as seen from report/index.html, thumbnailed if big."""

    def __init__(self, run_dir: Path, report_dir: Path):
        self.run_dir = run_dir
        self.report_dir = report_dir
        self._cache: dict[str, dict[str, Any] | None] = {}

    def __call__(self, relpath: Any) -> dict[str, Any] | None:
        if not isinstance(relpath, str) or not relpath:
            return None
        if relpath not in self._cache:
            self._cache[relpath] = self._resolve(relpath)
        return self._cache[relpath]

    def _resolve(self, relpath: str) -> dict[str, Any] | None:
        pure = PurePosixPath(relpath)
        # only plain relative paths inside the run folder (records are data, not trusted URLs)
        if pure.is_absolute() or ".." in pure.parts or ":" in relpath or "\\" in relpath:
            return None
        source = self.run_dir / pure
        if not source.is_file():
            return {"src": None, "href": None, "missing": relpath}
        href = "../" + pure.as_posix()
        try:
            with Image.open(source) as img:
                width, height = img.size
                if max(width, height) <= THUMB_SOURCE_MAX:
                    return {"src": href, "href": href, "missing": None}
                thumb = self.report_dir / "thumbs" / pure.with_suffix(".jpg")
                if not thumb.exists() or thumb.stat().st_mtime < source.stat().st_mtime:
                    img.load()
                    small = img.convert("RGB")
                    small.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.LANCZOS)
                    import io

                    buffer = io.BytesIO()
                    small.save(buffer, format="JPEG", quality=85)
                    atomic_write_bytes(thumb, buffer.getvalue())
        except OSError:
            return {"src": None, "href": href, "missing": relpath}
        return {"src": "thumbs/" + pure.with_suffix(".jpg").as_posix(), "href": href, "missing": None}




# -- context -----------------------------------------------------------------------------------


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _load_spec(run_dir: Path):
    from repainter.spec import SpecError, load_spec

    try:
        return load_spec(run_dir / SPEC_FILE)
    except (SpecError, OSError):  # a folder with a broken/missing spec still shows its records
        return None


def _metric_columns(rows: list[LeaderboardRow]) -> list[str]:
    names = sorted({name for row in rows for name in row.metrics})
    judge = [n for n in names if n.startswith("judge_")]
    return [n for n in names if n not in judge] + judge


def _score_items(scores: dict[str, Any], order: list[str]) -> list[tuple[str, str]]:
    keys = [k for k in order if k in scores] + sorted(k for k in scores if k not in order)
    return [(k, fmt(scores[k], 1 if k.startswith("judge_") else 3)) for k in keys]


def _iut_view(iut: ImageUnderstandingTree | None) -> dict[str, Any] | None:
    if iut is None:
        return None
    features = iut.global_features.model_dump()
    objects = [{"name": obj.name, "type": obj.type,
                "attributes": [(k, v) for k, v in obj.attributes.model_dump().items()
                               if v not in ("", None)]}
               for obj in iut.objects]
    relationships = [" ".join(str(v) for v in rel.model_dump().values() if v not in ("", None))
                     for rel in iut.relationships]
    return {
        "description": iut.global_description,
        "features": [(k, v) for k, v in features.items() if v not in ("", None)],
        "objects": objects,
        "relationships": relationships,
    }


def _critique_view(critique: CritiqueRecord | None) -> dict[str, Any] | None:
    if critique is None:
        return None
    differences = [{"aspect": d.aspect, "description": d.description, "change": d.change}
                   for d in critique.differences]
    return {"summary": critique.summary, "differences": differences}


def _candidate_view(cand: CandidateRecord, rnd: RoundRecord, best: CandidateRecord | None,
                    images: ReportImages, metric_order: list[str]) -> dict[str, Any]:
    return {
        "variant": cand.variant,
        "image": images(cand.image),
        "seed": cand.seed,
        "selection": fmt(cand.selection),
        "scores": _score_items(cand.scores, metric_order),
        "round_best": cand.variant == rnd.round_best,
        "best": best is not None and cand.key == best.key,
        "invalid": cand.invalid_reason or (f"flagged: {cand.flagged}" if cand.flagged else None),
        "prompt": cand.prompt,
        "diff": compact_diff(word_diff(rnd.prompt, cand.prompt)) if cand.prompt != rnd.prompt
        else None,
    }


def _rounds_view(record: CaseRecord, images: ReportImages, metric_order: list[str]
                 ) -> list[dict[str, Any]]:
    """Each round's prompt (as a word diff from the previous one), candidates and critique."""
    rounds = []
    previous_prompt = record.initial_prompt
    for rnd in record.rounds:
        prompt = rnd.prompt
        composed = not rounds and prompt == record.initial_prompt
        diff = word_diff(previous_prompt, prompt) if previous_prompt is not None and not composed else None
        rounds.append({
            "round": rnd.round,
            "prompt": prompt,
            "composed": composed,
            "diff": diff,
            "changed": diff is not None and any(op != "eq" for op, _ in diff),
            "stats": diff_stats(diff) if diff else {"ins": 0, "del": 0},
            "round_best_selection": fmt(rnd.round_best_selection),
            "best_ever_selection": fmt(rnd.best_ever_selection),
            "candidates": [_candidate_view(c, rnd, record.best, images, metric_order)
                           for c in rnd.candidates],
            "critique": _critique_view(rnd.critique),
            "revised_prompt": rnd.revised_prompt,
            "diff_revised": word_diff(prompt, rnd.revised_prompt) if rnd.revised_prompt else None,
        })
        previous_prompt = prompt
    return rounds


def _model_case_view(record: CaseRecord, images: ReportImages, colour: str,
                     metric_order: list[str], detailed: bool = True) -> dict[str, Any]:
    best, round1 = record.best, record.round1_best
    round1_selection = record.round1_selection
    final = record.final_scores
    selection = record.final_score("selection")
    curve = record.best_ever_by_round
    return {
        "model": record.model,
        "colour": colour,
        "status": record.status,
        "error": record.error,
        "traceback": record.traceback,
        "best_image": images(best.image) if best else None,
        "best_round": best.round if best else None,
        "best_variant": best.variant if best else None,
        "best_prompt": best.prompt if best else None,
        "round1_image": images(round1.image) if round1 else None,
        "round1_selection": fmt(round1_selection),
        "selection": selection,
        "selection_text": fmt(selection),
        "gain": fmt_signed(selection - round1_selection)
        if selection is not None and round1_selection is not None else None,
        "final_scores": _score_items({k: v for k, v in final.items() if k != "selection"}, metric_order),
        "round1_scores": dict(_score_items(round1.scores if round1 else {}, metric_order)),
        "judgement": record.judgement,
        "decision": _decision_view(record.decision, images),
        "sparkline": sparkline_points(curve),
        "curve": [fmt(v) for v in curve],
        "stop_reason": record.stop_reason,
        "draft_prompt": record.draft_prompt,
        "initial_prompt": record.initial_prompt,
        "rounds": _rounds_view(record, images, metric_order) if detailed else [],
        "seconds": fmt_seconds(sum(record.timings.values())) if record.timings else None,
        "rescored": record.rescored,
    }


def build_report_context(run_dir: str | Path, *, max_cases: int = MAX_CASES,
                         max_detailed: int = MAX_DETAILED_CASES,
                         records: list[CaseRecord] | None = None,
                         leaderboard: list[LeaderboardRow] | None = None) -> dict[str, Any]:
    """Everything the template shows, from the files of a run folder; draws the plots.

    ``records`` / ``leaderboard``: already read / computed by the caller (the end of a run), so
    they are not read or computed again. Cases beyond ``max_cases`` go to further pages
    (``context["pages"]``; :func:`write_report` writes them).
    """
    run_dir = Path(run_dir)
    store = RunStore(run_dir)
    spec = _load_spec(run_dir)
    records, light = load_report_records(store, spec, records)
    models = [t.display_name for t in spec.t2i] if spec is not None else []
    models += sorted({r.model for r in records} - set(models))
    records = [r for r in records if r.model in models]
    colours = {m: model_colour(i) for i, m in enumerate(models)}
    metric_order = [m.display_name for m in spec.metrics] if spec is not None else []
    correction = spec.correction if spec is not None else "holm"
    tables = saved_tables(store, models, records)
    if tables is None:
        if light:  # computing needs what the card index leaves out (the rounds per case)
            records, light = [r for r in store.records() if r.model in models], False
        tables = compute_tables(records, models, leaderboard, correction)
    plots = write_plots(run_dir, records, models, tables)
    info = store.read_run_info()
    cases = _cases_view(run_dir, store, records, light, models, colours, metric_order,
                        max_cases, max_detailed)
    return {
        "title": f"{spec.name} · dataset {spec.dataset.name}" if spec else run_dir.name,
        "warnings": info.warnings,
        "run_dir": str(run_dir),
        "models": [{"name": m, "colour": colours[m]} for m in models],
        **_tables_view(tables, models, colours),
        "validity": _validity_view(run_dir),
        "plots": plots,
        **_progress_view(records, models, colours),
        **cases,
        "max_cases": max_cases,
        "records": records,
        "light": light,
        "max_detailed": max_detailed,
        "rescored": info.rescored or [],
        "spec_yaml": _read_text(run_dir / SPEC_FILE),
        "run_json": json.dumps(dump_record(info), indent=2, ensure_ascii=False)
        if (run_dir / "run.json").exists() else None,
    } | _facts_view(info, spec, records, models, failed=len(cases["failures"]))


def load_report_records(store: RunStore, spec, records: list[CaseRecord] | None
                        ) -> tuple[list[CaseRecord], bool]:
    """The records the report shows, and whether they are the card index's light records
    (without rounds and descriptions: the cards that show whole histories read their files)."""
    if records is not None:
        return records, False
    light = read_card_index(store.root, spec)
    if light is not None:
        return light, True
    return store.records(), False


@dataclass
class ReportTables:
    """The leaderboard, its per-metric paired comparisons and the per-category table."""

    rows: list[LeaderboardRow]
    by_metric: dict[str, ComparisonFamily]
    categories: list[CategoryRow]
    #: True where they come from leaderboard.json, written from exactly these records.
    saved: bool


def saved_tables(store: RunStore, models: list[str], records: list[CaseRecord]
                 ) -> ReportTables | None:
    """The tables of leaderboard.json where it was written from exactly ``records``, else None."""
    saved = _current_tables(store, models, records)
    if saved is None:
        return None
    rows, by_metric, categories = saved
    return ReportTables(rows, by_metric, categories, saved=True)


def compute_tables(records: list[CaseRecord], models: list[str],
                   leaderboard: list[LeaderboardRow] | None, correction: str) -> ReportTables:
    """The tables computed from full records (``leaderboard``: rows the caller already built)."""
    rows = leaderboard if leaderboard is not None else (
        build_leaderboard(records, models) if records else [])
    categories = build_category_table(records) if records else []
    by_metric = build_metric_comparisons(records, rows, correction) if records else {}
    return ReportTables(rows, by_metric, categories, saved=False)


def write_plots(run_dir: Path, records: list[CaseRecord], models: list[str],
                tables: ReportTables) -> list[dict[str, str]]:
    """Draw the report's plots under report/plots/; return the ones drawn (src, alt)."""
    report_dir = run_dir / REPORT_DIR
    plots: list[dict[str, str]] = []

    def plotted(name: str, draw) -> bool:
        """Draw a plot, unless it was drawn after leaderboard.json was written from these very
        records (then it shows them already)."""
        path = report_dir / "plots" / name
        leaderboard_file = run_dir / "leaderboard.json"
        current = (tables.saved and path.exists()
                   and path.stat().st_mtime_ns >= leaderboard_file.stat().st_mtime_ns)
        return current or draw(path)

    if records:
        if plotted("progress.png", lambda path: plot_progress(records, models, path)):
            plots.append({"src": "plots/progress.png", "alt": "best-ever selection score per round"})
        if len(_category_names(tables.categories)) > 1 and plotted(
                "categories.png", lambda path: plot_categories(tables.categories, models, path)):
            plots.append({"src": "plots/categories.png", "alt": "final selection score by category"})
    return plots


def _category_names(categories: list[CategoryRow]) -> list[str]:
    return sorted({c.category for c in categories})


def _tables_view(tables: ReportTables, models: list[str], colours: dict[str, str]
                 ) -> dict[str, Any]:
    """The leaderboard, paired comparisons and category table as the template shows them."""
    rows, by_metric = tables.rows, tables.by_metric
    comparisons = by_metric.get("selection") or ComparisonFamily(metric="selection")
    metric_names = _metric_columns(rows)

    # leaderboard view
    finals = [r.selection.mean for r in rows if r.selection.mean is not None]
    lo = min([r.selection.ci_low or r.selection.mean for r in rows
              if r.selection.mean is not None] or [0.0])
    scale_low = max(0.0, math.floor((lo - 0.02) * 20) / 20) if finals else 0.0
    top = max(finals or [1.0])
    steers = [r.selection.steerability for r in rows if r.selection.steerability is not None]
    best_steer = max(steers) if steers else None
    board = [_board_row(row, metric_names, colours, scale_low, top, best_steer, len(rows))
             for row in rows]

    def comparison_view(family: ComparisonFamily) -> list[dict[str, Any]]:
        return [{
            "a": c.model_a, "b": c.model_b, "n": c.n,
            "diff": fmt_signed(c.mean_difference) if c.n else "–",
            "ci": (fmt_signed(c.ci_low), fmt_signed(c.ci_high)) if c.ci_low is not None else None,
            "p": fmt_p(c.p_value), "p_adjusted": fmt_p(c.p_adjusted),
            "significant": c.significant,
            "colour_a": colours.get(c.model_a, "#888"), "colour_b": colours.get(c.model_b, "#888"),
        } for c in family.tests]

    metric_families = [{"metric": metric, "note": correction_note(family),
                        "rows": comparison_view(family)}
                       for metric, family in by_metric.items()
                       if family.tests and metric != "selection"]
    return {
        "board": board,
        "metric_names": metric_names,
        "comparisons": comparison_view(comparisons),
        "comparison_note": correction_note(comparisons) if comparisons.tests else "",
        "metric_families": metric_families,
        "category_models": [{"name": m, "colour": colours[m]} for m in models],
        "categories": _category_view(tables.categories, models),
    }


def _board_row(row: LeaderboardRow, metric_names: list[str], colours: dict[str, str],
               scale_low: float, top: float, best_steer: float | None,
               count: int) -> dict[str, Any]:
    """One leaderboard line of the page: the selection score's bar, each metric's cell."""
    value = row.selection.mean
    width = 0.0
    if value is not None and top > scale_low:
        width = max(0.0, min(100.0, (value - scale_low) / (max(1.0, top) - scale_low) * 100))
    steer = row.selection.steerability
    return {
        "rank": row.rank, "model": row.model, "colour": colours.get(row.model, "#888"),
        "cases": row.cases, "done": row.done, "failed": row.failed,
        "r1": fmt(row.selection.round1), "final": fmt(value),
        "ci": (fmt(row.selection.ci_low), fmt(row.selection.ci_high))
        if row.selection.ci_low is not None else None,
        "bar": round(width, 1),
        "is_top": value is not None and value == top,
        "steer": fmt_signed(steer),
        "steer_top": steer is not None and steer == best_steer and count > 1,
        "rounds": fmt(row.mean_rounds, 1),
        "seconds": fmt_seconds(row.seconds_per_case),
        "metrics": [_metric_cell(row.metrics.get(m), m) for m in metric_names],
    }


def _metric_cell(summary: MetricSummary | None, name: str) -> dict[str, Any]:
    digits = 2 if name.startswith("judge_") else 3
    if summary is None:  # a metric only other models have
        return {"value": fmt(None, digits), "ci": None, "r1": None}
    return {"value": fmt(summary.mean, digits),
            "ci": (fmt(summary.ci_low, digits), fmt(summary.ci_high, digits))
            if summary.ci_low is not None else None,
            "r1": fmt(summary.round1) if not summary.judge else None}


def _category_view(categories: list[CategoryRow], models: list[str]) -> list[dict[str, Any]]:
    by_cat = {(c.model, c.category): c for c in categories}
    category_view = []
    for name in _category_names(categories):
        cells = []
        values = [by_cat[(m, name)].selection_final for m in models
                  if (m, name) in by_cat and by_cat[(m, name)].selection_final is not None]
        best_value = max(values) if values else None
        for m in models:
            c = by_cat.get((m, name))
            if c is None:
                cells.append(None)
                continue
            cells.append({"value": fmt(c.selection_final), "n": c.done,
                          "ci": (fmt(c.ci_low), fmt(c.ci_high)) if c.ci_low is not None else None,
                          "best": len(values) > 1 and c.selection_final == best_value})
        category_view.append({"category": name, "cells": cells})
    return category_view


def _progress_view(records: list[CaseRecord], models: list[str], colours: dict[str, str]
                   ) -> dict[str, Any]:
    """The mean best-ever selection score per round and model, as a table."""
    from repainter.report.plots import progress_series

    series = progress_series(records, models)
    max_rounds = max((len(s["round"]) for s in series.values()), default=0)
    progress_table = [{"model": m, "colour": colours[m],
                       "values": [fmt(v) for v in series[m]["mean"]]
                       + [""] * (max_rounds - len(series[m]["mean"]))}
                      for m in models if m in series]
    return {"progress_rounds": list(range(1, max_rounds + 1)), "progress_table": progress_table}


def _cases_view(run_dir: Path, store: RunStore, records: list[CaseRecord], light: bool,
                models: list[str], colours: dict[str, str], metric_order: list[str],
                max_cases: int, max_detailed: int) -> dict[str, Any]:
    """The case cards grouped by reference (``max_cases`` per page), licences and failures."""
    images = ReportImages(run_dir, run_dir / REPORT_DIR)
    groups: OrderedDict[str, list[CaseRecord]] = OrderedDict()
    for record in sorted(records, key=lambda r: (str(r.category or ""), str(r.case_id))):
        groups.setdefault(record.case_id, []).append(record)
    ordered = list(groups.items())
    per_page = max(1, max_cases)
    page_count = max(1, math.ceil(len(ordered) / per_page))
    pages = [{"number": n + 1, "href": page_file(n + 1), "first": n * per_page + 1,
              "last": min(len(ordered), (n + 1) * per_page)} for n in range(page_count)]

    def page_cases(number: int) -> list[dict[str, Any]]:
        """The case cards of one page (only page 1 details its first ``max_detailed``)."""
        start = (number - 1) * per_page
        views = []
        for index, (case_id, mine) in enumerate(ordered[start:start + per_page]):
            detailed = index < max_detailed and number == 1
            if detailed and light:  # full histories from the records themselves
                mine = [store.read_case_record(r.model, r.case_id) or r for r in mine]
            views.append(_case_view(case_id, mine, detailed, models, colours, metric_order,
                                    images, run_dir, store))
        return views

    licences: dict[str, int] = {}
    for mine in groups.values():
        name = next((r.license for r in mine if r.license), None)
        if name:
            licences[name] = licences.get(name, 0) + 1
    return {
        "licences": sorted(licences.items()),
        "cases": page_cases(1),
        "case_total": len(ordered),
        "pages": pages if page_count > 1 else [],
        "page": 1,
        "page_only": False,
        "page_cases": page_cases,
        "failures": _failures_view(records, store, colours),
    }


def _failures_view(records: list[CaseRecord], store: RunStore, colours: dict[str, str]
                   ) -> list[dict[str, Any]]:
    """Failed cases with their reasons, and the record files that could not be read."""
    failures = [{"model": r.model, "case_id": r.case_id, "anchor": "case-" + slug(r.case_id),
                 "category": r.category, "error": r.error or "(no reason recorded)",
                 "traceback": "".join(r.traceback or []) or None,
                 "colour": colours.get(r.model, "#888")}
                for r in records if not r.done]
    failures += [{"model": "-", "case_id": path, "anchor": "failures", "category": None,
                  "error": f"unreadable case record {store.unreadable_reasons.get(path, path)}: "
                  "skipped (the case is redone by the next run)", "traceback": None,
                  "colour": "#888"} for path in store.unreadable]
    return failures


def _facts_view(info: RunInfo, spec, records: list[CaseRecord], models: list[str],
                failed: int) -> dict[str, Any]:
    """The run's facts: status, counts, settings, timings and environment."""
    done = sum(1 for r in records if r.done)  # failed: failed records and unreadable files
    settings = info.settings or {}
    facts = [
        ("status", info.status),
        ("error", info.error if info.status != "finished" else None),
        ("failed cases", "; ".join(f"{g.count} x {g.kind}" for g in info.failures or [])),
        ("settings", f"preset {settings.get('preset') or 'none'}: {settings.get('why')}"
         if settings else None),
        ("references", len({r.case_id for r in records})),
        ("models", len(models)),
        ("case records", f"{done} done, {failed} failed"),
        ("rounds x variants", f"{spec.loop.rounds} x {spec.loop.variants}" if spec else None),
        ("selection", ", ".join(f"{k} {v:g}" for k, v in spec.selection.items()) if spec else None),
        ("MLLM", ", ".join(m.display_name for m in spec.mllms) if spec else None),
        ("wall time", fmt_seconds(info.wall_seconds) if info.wall_seconds else None),
        ("started", info.started_at),
        ("fingerprint", info.spec_fingerprint or (spec.fingerprint() if spec else None)),
        ("repainter", info.repainter_version),
    ]
    if info.cases is not None and info.cases.reused:
        facts.append(("reused from an earlier run", info.cases.reused))
    if info.adaptive is not None:
        from repainter.report.adaptive import adaptive_line

        facts.append(("adaptive budget", adaptive_line(info.adaptive)))
    facts += summary_facts(info.environment)
    return {"facts": [(k, v) for k, v in facts if v not in (None, "")]}


def _validity_view(run_dir: Path) -> dict[str, Any] | None:
    """What ``repainter meta-eval`` found about the metrics (RUN/validity.json), if it ran."""
    path = run_dir / "validity.json"
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    from repainter.report.validity import trust_table

    rows = trust_table(data)
    errors = list(dict.fromkeys(r["error"] for r in rows))
    metrics = list(dict.fromkeys(r["metric"] for r in rows))
    cells = {(r["metric"], r["error"]): r for r in rows}
    return {"errors": errors, "command": data.get("command"), "bench": data.get("bench"),
            "rows": [{"metric": m, "cells": [cells.get((m, e)) for e in errors]} for m in metrics]}


def _current_tables(store: RunStore, models: list[str], records: list[CaseRecord]):
    """The leaderboard, per-metric comparisons and categories of leaderboard.json where run.json
    says it was written from these very records (same digest), else None (compute them)."""
    digest = store.read_run_info().records_digest
    path = store.root / "leaderboard.json"
    if not digest or not path.exists():
        return None
    if digest != store.records_digest(models, [(r.model, r.case_id) for r in records]):
        return None
    try:
        saved = read_leaderboard(store.root)
    except (OSError, ValueError, RecordVersionError):  # pydantic's ValidationError is a ValueError
        return None
    if saved is None:
        return None
    return saved.models, saved.comparisons, saved.categories


#: An index of the fields the overview cards, failures and progress table need, one line per
#: record, with a digest of the record files it was made from: `repainter report` on an
#: unchanged run reads this one file instead of every record (full records only for the cards
#: that show whole histories). Each line is a CaseRecord (with its schema_version) without the
#: fields in _NOT_IN_CARDS; an index this repainter cannot read is rebuilt from the records.
CARD_INDEX = "cards.jsonl"
_NOT_IN_CARDS = ("rounds", "iut", "ground_truth", "draft_prompt", "initial_prompt", "t2i",
                 "mllm_usage")


def _folder_digest(run_dir: Path, spec) -> str:
    """Size and modification time of every record file, and the spec's models (one stat each)."""
    import hashlib

    digest = hashlib.sha256(
        "\n".join(t.display_name for t in spec.t2i).encode() if spec is not None else b"")
    for path in sorted((run_dir / "cases").glob("*/*.json")):
        info = path.stat()
        digest.update(f"{path.parent.name}/{path.name}:{info.st_size}:{info.st_mtime_ns}\n"
                      .encode())
    return digest.hexdigest()


def read_card_index(run_dir: Path, spec) -> list[CaseRecord] | None:
    """The light records of the card index, or None where it is missing or out of date (or
    holds a line this repainter cannot read: the index is then rebuilt from the records)."""
    path = run_dir / REPORT_DIR / CARD_INDEX
    try:
        with path.open("rb") as handle:
            header = json.loads(handle.readline() or b"{}")
            if header.get("digest") != _folder_digest(run_dir, spec):
                return None
            return [load_case_record(json.loads(line)) for line in handle if line.strip()]
    except (OSError, ValueError):  # pydantic's ValidationError and RecordVersionError included
        return None


def write_card_index(run_dir: Path, spec, records: list[CaseRecord]) -> None:
    lines = [json.dumps({"digest": _folder_digest(run_dir, spec)})]
    lines += [json.dumps({k: v for k, v in dump_record(r).items() if k not in _NOT_IN_CARDS},
                         ensure_ascii=False, allow_nan=False, default=str) for r in records]
    atomic_write_bytes(run_dir / REPORT_DIR / CARD_INDEX, ("\n".join(lines) + "\n").encode("utf-8"))


def _stored_description(run_dir: Path, case_id: str) -> ImageUnderstandingTree | None:
    """The shared description of a reference (for a card whose records carry none)."""
    path = run_dir / "descriptions" / f"{slug(case_id)}.json"
    if not path.exists():
        return None
    try:
        return ImageUnderstandingTree.model_validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None


def _case_view(case_id: str, mine: list[CaseRecord], detailed: bool, models: list[str],
               colours: dict[str, str], metric_order: list[str], images: ReportImages, run_dir: Path,
               store: RunStore) -> dict[str, Any]:
    """One reference's card: its reference, description and each model's outcome."""
    order = {m: i for i, m in enumerate(models)}
    mine.sort(key=lambda r: order.get(r.model, len(order)))
    first = next((r for r in mine if r.done), mine[0])
    iut = first.iut if first.iut is not None else _stored_description(run_dir, case_id)
    reference = first.reference or store.reference_relpath(case_id)
    return {
        "id": case_id,
        "anchor": "case-" + slug(case_id),
        "category": first.category,
        "license": next((r.license for r in mine if r.license), None),
        "source": next((r.source for r in mine if r.source), None),
        "reference": images(reference),
        "iut": _iut_view(iut),
        "models": [_model_case_view(r, images, colours.get(r.model, "#888"), metric_order,
                                    detailed) for r in mine],
        "detailed": detailed,
        "failed": any(not r.done for r in mine),
    }


def page_file(number: int) -> str:
    """The file of the report's page ``number`` (1 is index.html)."""
    return "index.html" if number == 1 else f"cases-{number}.html"


# -- rendering ---------------------------------------------------------------------------------


def template_environment() -> Environment:
    """The report pages' Jinja2 environment (autoescape on, strict undefined, ``fmt`` filter)."""
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.globals["metric_header"] = metric_header
    return env


def render_report(context: dict[str, Any]) -> str:
    """The report page for ``context`` (from :func:`build_report_context`)."""
    return template_environment().get_template("index.html.j2").render(**context)


def write_report(run_dir: str | Path, *, max_cases: int = MAX_CASES,
                 max_detailed: int = MAX_DETAILED_CASES,
                 records: list[CaseRecord] | None = None,
                 leaderboard: list[LeaderboardRow] | None = None) -> Path:
    """Write ``RUN/report/index.html`` (with plots and thumbnails) and, beyond ``max_cases``
    references, the further pages ``cases-2.html``, ...; return the index's path.

    Holds the run folder's lock (:func:`repainter.store.run_folder_lock`) while it writes.
    """
    from repainter.store import run_folder_lock

    run_dir = Path(run_dir)
    spec = _load_spec(run_dir)
    if spec is not None and spec.is_grid:  # an MLLM x T2I grid: its own page, sub-runs linked
        from repainter.report.grid import rebuild_grid_report

        return rebuild_grid_report(run_dir, spec)
    with run_folder_lock(run_dir, "report", create=False):
        context = build_report_context(run_dir, max_cases=max_cases, max_detailed=max_detailed,
                                       records=records, leaderboard=leaderboard)
        path = run_dir / REPORT_DIR / "index.html"
        atomic_write_bytes(path, render_report(context).encode("utf-8"))
        for page in context["pages"][1:]:  # one page at a time: memory stays one page's worth
            view = {**context, "cases": context["page_cases"](page["number"]),
                    "page": page["number"], "page_only": True}
            atomic_write_bytes(run_dir / REPORT_DIR / page["href"],
                               render_report(view).encode("utf-8"))
        for stale in (run_dir / REPORT_DIR).glob("cases-*.html"):  # an earlier, longer run's
            if stale.name not in {p["href"] for p in context["pages"]}:
                stale.unlink(missing_ok=True)
        if not context["light"]:  # made from the records themselves: index them for next time
            write_card_index(run_dir, _load_spec(run_dir), context["records"])
    return path


def _decision_view(decision: DecisionRecord | None, images) -> dict[str, Any] | None:
    """The retrieve-or-generate outcome of a case, for its card (None when not asked for)."""
    if decision is None:
        return None
    retrieved = decision.retrieved
    return {"choice": decision.choice, "rule": decision.rule,
            "metric": decision.metric, "margin": decision.margin,
            "generated_value": fmt(decision.generated_value),
            "retrieved_value": fmt(decision.retrieved_value),
            "truly_closer": decision.truly_closer, "correct": decision.correct,
            "retrieved_image": images(retrieved.image) if retrieved else None}
