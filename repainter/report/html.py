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
from pathlib import Path, PurePosixPath
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from PIL import Image

from repainter.environment import summary_facts
from repainter.images import atomic_write_bytes
from repainter.report.labels import metric_header
from repainter.report.leaderboard import (
    build_category_table,
    build_leaderboard,
    build_metric_comparisons,
    correction_note,
)
from repainter.report.plots import (
    model_colour,
    plot_categories,
    plot_progress,
    sparkline_points,
)
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


_Images = ReportImages  # the name this module's views use


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


def _metric_columns(rows: list[dict[str, Any]]) -> list[str]:
    names = sorted({k[: -len("_ci_low")] for row in rows for k in row if k.endswith("_ci_low")}
                   - {"selection_final"})
    judge = [n for n in names if n.startswith("judge_")]
    return [n for n in names if n not in judge] + judge


def _score_items(scores: dict[str, Any], order: list[str]) -> list[tuple[str, str]]:
    keys = [k for k in order if k in scores] + sorted(k for k in scores if k not in order)
    return [(k, fmt(scores[k], 1 if k.startswith("judge_") else 3)) for k in keys]


def _iut_view(iut: Any) -> dict[str, Any] | None:
    if not isinstance(iut, dict):
        return None
    features = iut.get("global_features") or {}
    objects = []
    for obj in iut.get("objects") or []:
        if not isinstance(obj, dict):
            continue
        attributes = [(k, v) for k, v in (obj.get("attributes") or {}).items() if v not in ("", None)]
        objects.append({"name": obj.get("name"), "type": obj.get("type"), "attributes": attributes})
    relationships = []
    for rel in iut.get("relationships") or []:
        if isinstance(rel, dict):
            relationships.append(" ".join(str(v) for v in rel.values() if v not in ("", None)))
        else:
            relationships.append(str(rel))
    return {
        "description": iut.get("global_description"),
        "features": [(k, v) for k, v in features.items() if v not in ("", None)] if isinstance(features, dict) else [],
        "objects": objects,
        "relationships": relationships,
    }


def _critique_view(critique: Any) -> dict[str, Any] | None:
    if not isinstance(critique, dict):
        return None
    differences = []
    for d in critique.get("differences") or []:
        if isinstance(d, dict):
            differences.append({"aspect": d.get("aspect"), "description": d.get("description"),
                                "change": d.get("change")})
        else:
            differences.append({"aspect": None, "description": str(d), "change": None})
    return {"summary": critique.get("summary"), "differences": differences}


def _model_case_view(record: dict[str, Any], images: _Images, colour: str,
                     metric_order: list[str], detailed: bool = True) -> dict[str, Any]:
    best = record.get("best") or {}
    round1 = record.get("round1_best") or {}
    rounds = []
    previous_prompt = record.get("initial_prompt")
    for rnd in (record.get("rounds") or []) if detailed else []:
        prompt = rnd.get("prompt")
        composed = not rounds and prompt == record.get("initial_prompt")
        diff = word_diff(previous_prompt, prompt) if previous_prompt is not None and not composed else None
        candidates = []
        for cand in rnd.get("candidates") or []:
            is_best = (cand.get("round"), cand.get("variant")) == (best.get("round"), best.get("variant"))
            candidates.append({
                "variant": cand.get("variant"),
                "image": images(cand.get("image")),
                "seed": cand.get("seed"),
                "selection": fmt(cand.get("selection")),
                "scores": _score_items(cand.get("scores") or {}, metric_order),
                "round_best": cand.get("variant") == rnd.get("round_best"),
                "best": is_best,
                "invalid": cand.get("invalid_reason") or (f"flagged: {cand['flagged']}" if cand.get("flagged") else None),
                "prompt": cand.get("prompt"),
                "diff": compact_diff(word_diff(prompt, cand.get("prompt")))
                if cand.get("prompt") != prompt else None,
            })
        rounds.append({
            "round": rnd.get("round"),
            "prompt": prompt,
            "composed": composed,
            "diff": diff,
            "changed": diff is not None and any(op != "eq" for op, _ in diff),
            "stats": diff_stats(diff) if diff else {"ins": 0, "del": 0},
            "round_best_selection": fmt(rnd.get("round_best_selection")),
            "best_ever_selection": fmt(rnd.get("best_ever_selection")),
            "candidates": candidates,
            "critique": _critique_view(rnd.get("critique")),
            "revised_prompt": rnd.get("revised_prompt"),
            "diff_revised": word_diff(prompt, rnd.get("revised_prompt")) if rnd.get("revised_prompt") else None,
        })
        previous_prompt = prompt
    judgement = record.get("judgement") if isinstance(record.get("judgement"), dict) else None
    final = record.get("final_scores") or {}
    curve = record.get("best_ever_by_round") or []
    return {
        "model": record.get("model"),
        "colour": colour,
        "status": record.get("status"),
        "error": record.get("error"),
        "traceback": record.get("traceback"),
        "best_image": images(best.get("image")),
        "best_round": best.get("round"),
        "best_variant": best.get("variant"),
        "best_prompt": best.get("prompt"),
        "round1_image": images(round1.get("image")),
        "round1_selection": fmt(round1.get("selection")),
        "selection": final.get("selection"),
        "selection_text": fmt(final.get("selection")),
        "gain": fmt_signed(final["selection"] - round1["selection"])
        if final.get("selection") is not None and round1.get("selection") is not None else None,
        "final_scores": _score_items({k: v for k, v in final.items() if k != "selection"}, metric_order),
        "round1_scores": dict(_score_items(round1.get("scores") or {}, metric_order)),
        "judgement": judgement,
        "decision": _decision_view(record.get("decision"), images),
        "sparkline": sparkline_points(curve),
        "curve": [fmt(v) for v in curve],
        "stop_reason": record.get("stop_reason"),
        "draft_prompt": record.get("draft_prompt"),
        "initial_prompt": record.get("initial_prompt"),
        "rounds": rounds,
        "seconds": fmt_seconds(sum((record.get("timings") or {}).values())) if record.get("timings") else None,
        "rescored": record.get("rescored"),
    }


def build_report_context(run_dir: str | Path, *, max_cases: int = MAX_CASES,
                         max_detailed: int = MAX_DETAILED_CASES,
                         records: list[dict[str, Any]] | None = None,
                         leaderboard: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Everything the template shows, from the files of a run folder.

    ``records`` / ``leaderboard``: already read / computed by the caller (the end of a run), so
    they are not read or computed again. Cases beyond ``max_cases`` go to further pages
    (``context["pages"]``; :func:`write_report` writes them).
    """
    run_dir = Path(run_dir)
    report_dir = run_dir / REPORT_DIR
    store = RunStore(run_dir)
    spec = _load_spec(run_dir)
    light = False
    if records is None:  # the card index holds what the overview cards need, if it is current
        records = read_card_index(run_dir, spec)
        light = records is not None
        records = records if light else store.records()
    models = [t.display_name for t in spec.t2i] if spec is not None else []
    models += sorted({r["model"] for r in records} - set(models))
    records = [r for r in records if r.get("model") in models]
    colours = {m: model_colour(i) for i, m in enumerate(models)}
    metric_order = [m.display_name for m in spec.metrics] if spec is not None else []

    correction = spec.correction if spec is not None else "holm"
    saved = _current_tables(store, models, records)
    if saved is not None:  # leaderboard.json was written from exactly these records
        rows, by_metric, categories = saved
    else:
        rows = leaderboard if leaderboard is not None else (
            build_leaderboard(records, models) if records else [])
        categories = build_category_table(records) if records else []
        by_metric = build_metric_comparisons(records, rows, correction) if records else {}
    comparisons = by_metric.get("selection", [])
    metric_names = _metric_columns(rows)

    # leaderboard view
    finals = [r["selection_final"] for r in rows if r.get("selection_final") is not None]
    lo = min([r["selection_final_ci_low"] or r["selection_final"] for r in rows
              if r.get("selection_final") is not None] or [0.0])
    scale_low = max(0.0, math.floor((lo - 0.02) * 20) / 20) if finals else 0.0
    top = max(finals or [1.0])
    best_steer = max([r["steerability"] for r in rows if r.get("steerability") is not None] or [None],
                     key=lambda v: -math.inf if v is None else v)
    board = []
    for row in rows:
        value = row.get("selection_final")
        width = 0.0
        if value is not None and top > scale_low:
            width = max(0.0, min(100.0, (value - scale_low) / (max(1.0, top) - scale_low) * 100))
        board.append({
            "rank": row["rank"], "model": row["model"], "colour": colours.get(row["model"], "#888"),
            "cases": row["cases"], "done": row["done"], "failed": row["failed"],
            "r1": fmt(row.get("selection_round1")), "final": fmt(row.get("selection_final")),
            "ci": (fmt(row["selection_final_ci_low"]), fmt(row["selection_final_ci_high"]))
            if row.get("selection_final_ci_low") is not None else None,
            "bar": round(width, 1),
            "is_top": value is not None and value == top,
            "steer": fmt_signed(row.get("steerability")),
            "steer_top": row.get("steerability") is not None and row.get("steerability") == best_steer and len(rows) > 1,
            "rounds": fmt(row.get("mean_rounds"), 1),
            "seconds": fmt_seconds(row.get("seconds_per_case")),
            "metrics": [
                {"value": fmt(row.get(m), 2 if m.startswith("judge_") else 3),
                 "ci": (fmt(row[f"{m}_ci_low"], 2 if m.startswith("judge_") else 3),
                        fmt(row[f"{m}_ci_high"], 2 if m.startswith("judge_") else 3))
                 if row.get(f"{m}_ci_low") is not None else None,
                 "r1": fmt(row.get(f"{m}_round1")) if f"{m}_round1" in row else None}
                for m in metric_names
            ],
        })
    def comparison_view(family: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [{
            "a": c["model_a"], "b": c["model_b"], "n": c["n"],
            "diff": fmt_signed(c["mean_difference"]) if c["n"] else "–",
            "ci": (fmt_signed(c["ci_low"]), fmt_signed(c["ci_high"]))
            if c.get("ci_low") is not None else None,
            "p": fmt_p(c["p_value"]), "p_adjusted": fmt_p(c.get("p_adjusted")),
            "significant": c["significant"],
            "colour_a": colours.get(c["model_a"], "#888"), "colour_b": colours.get(c["model_b"], "#888"),
        } for c in family]

    metric_families = [{"metric": metric, "note": correction_note(family),
                        "rows": comparison_view(family)}
                       for metric, family in by_metric.items() if family and metric != "selection"]

    category_names = sorted({c["category"] for c in categories})
    by_cat = {(c["model"], c["category"]): c for c in categories}
    category_view = []
    for name in category_names:
        cells = []
        values = [by_cat[(m, name)]["selection_final"] for m in models
                  if (m, name) in by_cat and by_cat[(m, name)]["selection_final"] is not None]
        best_value = max(values) if values else None
        for m in models:
            c = by_cat.get((m, name))
            if c is None:
                cells.append(None)
                continue
            cells.append({"value": fmt(c["selection_final"]), "n": c["done"],
                          "ci": (fmt(c["ci_low"]), fmt(c["ci_high"])) if c["ci_low"] is not None else None,
                          "best": len(values) > 1 and c["selection_final"] == best_value})
        category_view.append({"category": name, "cells": cells})

    # plots
    plots = []

    def plotted(name: str, draw) -> bool:
        """Draw a plot, unless it was drawn after leaderboard.json was written from these very
        records (then it shows them already)."""
        path = report_dir / "plots" / name
        tables = run_dir / "leaderboard.json"
        current = (saved is not None and path.exists()
                   and path.stat().st_mtime_ns >= tables.stat().st_mtime_ns)
        return current or draw(path)

    if records:
        if plotted("progress.png", lambda path: plot_progress(records, models, path)):
            plots.append({"src": "plots/progress.png", "alt": "best-ever selection score per round"})
        if len(category_names) > 1 and plotted(
                "categories.png", lambda path: plot_categories(categories, models, path)):
            plots.append({"src": "plots/categories.png", "alt": "final selection score by category"})
    progress_table = []
    from repainter.report.plots import progress_series

    series = progress_series(records, models)
    max_rounds = max((len(s["round"]) for s in series.values()), default=0)
    for m in models:
        if m in series:
            progress_table.append({"model": m, "colour": colours[m],
                                   "values": [fmt(v) for v in series[m]["mean"]]
                                   + [""] * (max_rounds - len(series[m]["mean"]))})

    # cases, grouped by reference, max_cases per page
    images = _Images(run_dir, report_dir)
    groups: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for record in sorted(records, key=lambda r: (str(r.get("category") or ""), str(r["case_id"]))):
        groups.setdefault(record["case_id"], []).append(record)
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
                mine = [store.read_case_record(r["model"], r["case_id"]) or r for r in mine]
            views.append(_case_view(case_id, mine, detailed, models, colours, metric_order,
                                    images, run_dir, store))
        return views

    cases = page_cases(1)

    failures = [{"model": r["model"], "case_id": r["case_id"], "anchor": "case-" + slug(r["case_id"]),
                 "category": r.get("category"), "error": r.get("error") or "(no reason recorded)",
                 "traceback": "".join(r.get("traceback") or []) or None,
                 "colour": colours.get(r["model"], "#888")}
                for r in records if r.get("status") != "done"]
    failures += [{"model": "-", "case_id": path, "anchor": "failures", "category": None,
                  "error": f"unreadable case record {path}: skipped (the case is redone by the "
                  "next run)", "traceback": None, "colour": "#888"} for path in store.unreadable]

    licences: dict[str, int] = {}
    for mine in groups.values():
        name = next((r.get("license") for r in mine if r.get("license")), None)
        if name:
            licences[name] = licences.get(name, 0) + 1

    info = store.read_run_info()
    cases_info = info.get("cases") or {}
    facts = [
        ("status", info.get("status")),
        ("references", len(groups)),
        ("models", len(models)),
        ("case records", (f"{sum(1 for r in records if r.get('status') == 'done')} done, "
                          f"{len(failures)} failed")),
        ("rounds x variants", f"{spec.loop.rounds} x {spec.loop.variants}" if spec else None),
        ("selection", ", ".join(f"{k} {v:g}" for k, v in spec.selection.items()) if spec else None),
        ("MLLM", ", ".join(m.display_name for m in spec.mllms) if spec else None),
        ("wall time", fmt_seconds(info.get("wall_seconds")) if info.get("wall_seconds") else None),
        ("started", info.get("started_at")),
        ("fingerprint", info.get("spec_fingerprint") or (spec.fingerprint() if spec else None)),
        ("repainter", info.get("repainter_version")),
    ]
    if cases_info.get("reused"):
        facts.append(("reused from an earlier run", cases_info["reused"]))
    if info.get("adaptive"):
        from repainter.report.adaptive import adaptive_line

        facts.append(("adaptive budget", adaptive_line(info["adaptive"])))
    facts += summary_facts(info.get("environment"))
    return {
        "title": f"{spec.name} · dataset {spec.dataset.name}" if spec else run_dir.name,
        "warnings": info.get("warnings") or [],
        "run_dir": str(run_dir),
        "facts": [(k, v) for k, v in facts if v not in (None, "")],
        "licences": sorted(licences.items()),
        "models": [{"name": m, "colour": colours[m]} for m in models],
        "board": board,
        "metric_names": metric_names,
        "comparisons": comparison_view(comparisons),
        "comparison_note": correction_note(comparisons) if comparisons else "",
        "metric_families": metric_families,
        "validity": _validity_view(run_dir),
        "category_models": [{"name": m, "colour": colours[m]} for m in models],
        "categories": category_view,
        "plots": plots,
        "progress_rounds": list(range(1, max_rounds + 1)),
        "progress_table": progress_table,
        "cases": cases,
        "case_total": len(ordered),
        "pages": pages if page_count > 1 else [],
        "page": 1,
        "page_only": False,
        "page_cases": page_cases,
        "max_cases": max_cases,
        "records": records,
        "light": light,
        "max_detailed": max_detailed,
        "failures": failures,
        "rescored": info.get("rescored") or [],
        "spec_yaml": _read_text(run_dir / SPEC_FILE),
        "run_json": json.dumps(info, indent=2, ensure_ascii=False) if info else None,
    }


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


def _current_tables(store: RunStore, models: list[str], records: list[dict[str, Any]]):
    """The leaderboard, per-metric comparisons and categories of leaderboard.json where run.json
    says it was written from these very records (same digest), else None (compute them)."""
    digest = store.read_run_info().get("records_digest")
    path = store.root / "leaderboard.json"
    if not digest or not path.exists():
        return None
    if digest != store.records_digest(models, [(r["model"], r["case_id"]) for r in records]):
        return None
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
        return saved["models"], saved["metric_comparisons"], saved["categories"]
    except (OSError, ValueError, KeyError):
        return None


#: An index of the fields the overview cards, failures and progress table need, one line per
#: record, with a digest of the record files it was made from: `repainter report` on an
#: unchanged run reads this one file instead of every record (full records only for the cards
#: that show whole histories).
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


def read_card_index(run_dir: Path, spec) -> list[dict[str, Any]] | None:
    """The light records of the card index, or None where it is missing or out of date."""
    path = run_dir / REPORT_DIR / CARD_INDEX
    try:
        with path.open("rb") as handle:
            header = json.loads(handle.readline() or b"{}")
            if header.get("digest") != _folder_digest(run_dir, spec):
                return None
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, ValueError):
        return None


def write_card_index(run_dir: Path, spec, records: list[dict[str, Any]]) -> None:
    lines = [json.dumps({"digest": _folder_digest(run_dir, spec)})]
    lines += [json.dumps({k: v for k, v in r.items() if k not in _NOT_IN_CARDS},
                         ensure_ascii=False, allow_nan=False, default=str) for r in records]
    atomic_write_bytes(run_dir / REPORT_DIR / CARD_INDEX, ("\n".join(lines) + "\n").encode("utf-8"))


def _case_view(case_id: str, mine: list[dict[str, Any]], detailed: bool, models: list[str],
               colours: dict[str, str], metric_order: list[str], images: _Images, run_dir: Path,
               store: RunStore) -> dict[str, Any]:
    """One reference's card: its reference, description and each model's outcome."""
    order = {m: i for i, m in enumerate(models)}
    mine.sort(key=lambda r: order.get(r["model"], len(order)))
    first = next((r for r in mine if r.get("status") == "done"), mine[0])
    iut = first.get("iut")
    if iut is None:
        path = run_dir / "descriptions" / f"{slug(case_id)}.json"
        if path.exists():
            try:
                iut = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                iut = None
    reference = first.get("reference") or store.reference_relpath(case_id)
    return {
        "id": case_id,
        "anchor": "case-" + slug(case_id),
        "category": first.get("category"),
        "license": next((r.get("license") for r in mine if r.get("license")), None),
        "source": next((r.get("source") for r in mine if r.get("source")), None),
        "reference": images(reference),
        "iut": _iut_view(iut),
        "models": [_model_case_view(r, images, colours.get(r["model"], "#888"), metric_order,
                                    detailed) for r in mine],
        "detailed": detailed,
        "failed": any(r.get("status") != "done" for r in mine),
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
                 records: list[dict[str, Any]] | None = None,
                 leaderboard: list[dict[str, Any]] | None = None) -> Path:
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


def _decision_view(decision: Any, images) -> dict[str, Any] | None:
    """The retrieve-or-generate outcome of a case, for its card (None when not asked for)."""
    if not isinstance(decision, dict):
        return None
    retrieved = decision.get("retrieved") or {}
    return {"choice": decision.get("choice"), "rule": decision.get("rule"),
            "metric": decision.get("metric"), "margin": decision.get("margin"),
            "generated_value": fmt(decision.get("generated_value")),
            "retrieved_value": fmt(decision.get("retrieved_value")),
            "truly_closer": decision.get("truly_closer"), "correct": decision.get("correct"),
            "retrieved_image": images(retrieved.get("image"))}
