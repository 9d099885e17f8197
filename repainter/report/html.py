"""The HTML report of a run folder: one static page that opens offline.

    RUN/report/index.html        the page (inline CSS, no script, no network)
    RUN/report/cases-<n>.html    further pages of case cards, beyond MAX_CASES references
    RUN/report/plots/*.png       matplotlib (Agg) plots
    RUN/report/thumbs/...        downscaled copies of images larger than THUMB_SOURCE_MAX
    RUN/report/cards.jsonl       the card index (what an unchanged run's report is made from)

Images are referenced by relative paths into the run folder (``../references/...``,
``../images/...``), so the report works wherever the run folder is copied, as long as it stays
inside it. Every text that came from a model (IUT, prompts, critiques, judge rationale, errors) is
escaped by Jinja2's autoescape; the page never marks model text as safe, the word-level prompt
diffs are built from plain tokens that the template escapes, and a Content-Security-Policy meta
tag forbids scripts as a second line of defence.

This module puts the page together; its parts live beside it: :mod:`~repainter.report.diff`
(prompt word diffs), :mod:`~repainter.report.formatting` (numbers), :mod:`~repainter.report.assets`
(thumbnails, plots), :mod:`~repainter.report.tables` and :mod:`~repainter.report.card_index` (what
is reused from an earlier report), :mod:`~repainter.report.views` (leaderboard, comparisons,
facts) and :mod:`~repainter.report.cards` (the case cards).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from repainter.images import atomic_write_bytes
from repainter.record_index import collector_paused, read_slim_records
from repainter.records import CaseRecord, dump_record
from repainter.records.leaderboard import LeaderboardRow
from repainter.report.assets import REPORT_DIR, ReportImages, write_plots
from repainter.report.card_index import load_report_records, write_card_index
from repainter.report.cards import cases_view
from repainter.report.formatting import fmt
from repainter.report.labels import metric_header
from repainter.report.leaderboard import (
    build_category_table,
    build_leaderboard,
    build_metric_comparisons,
)
from repainter.report.plots import model_colour
from repainter.report.sanity import sanity_view
from repainter.report.tables import ReportTables, saved_tables
from repainter.report.views import facts_view, progress_view, tables_view, validity_view
from repainter.store import SPEC_FILE, RunStore

#: Names other modules import from here.
__all__ = ["MAX_CASES", "MAX_DETAILED_CASES", "REPORT_DIR", "ReportImages", "build_report_context",
           "compute_tables", "fmt", "render_report", "template_environment", "write_report"]

TEMPLATES = Path(__file__).parent / "templates"

#: References listed in the report (one collapsible card each); the rest are named only.
MAX_CASES = 1000
#: References whose card holds the full history (every round's prompt diff, candidates and
#: critique); later cards show the overview only, which keeps a 1000-case page to a few MB.
MAX_DETAILED_CASES = 150


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except OSError:
        return None


def _load_spec(run_dir: Path):
    from repainter.spec import SpecError, load_run_spec

    try:
        return load_run_spec(run_dir / SPEC_FILE)
    except (SpecError, OSError):  # a folder with a broken/missing spec still shows its records
        return None


@functools.lru_cache(maxsize=1)
def template_environment() -> Environment:
    """The report pages' Jinja2 environment (autoescape on, strict undefined, ``fmt`` filter);
    one per process, so that a template is compiled once, not once per page (Jinja reloads a
    template whose file changed)."""
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
    with run_folder_lock(run_dir, "report", create=False), collector_paused():
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
        if context["records_from"] != "index":  # made from the records: index them for next time
            write_card_index(run_dir, _load_spec(run_dir), context["records"])
    return path


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
    records, records_from = load_report_records(store, spec, records)
    models = [t.display_name for t in spec.t2i] if spec is not None else []
    models += sorted({r.model for r in records} - set(models))
    records = [r for r in records if r.model in models]
    colours = {m: model_colour(i) for i, m in enumerate(models)}
    metric_order = [m.display_name for m in spec.metrics] if spec is not None else []
    correction = spec.correction if spec is not None else "holm"
    tables = saved_tables(store, models, records)
    if tables is None:
        if records_from == "index":  # computing needs what the card index leaves out (rounds)
            records, records_from = read_slim_records(store), "slim"
            records = [r for r in records if r.model in models]
        tables = compute_tables(records, models, leaderboard, correction)
    plots = write_plots(run_dir, records, models, tables)
    info = store.read_run_info()
    light = records_from != "full"  # the detailed cards read the records' files
    cases = cases_view(run_dir, store, records, light, models, colours, metric_order,
                       max_cases, max_detailed)
    return {
        "title": f"{spec.name} · dataset {spec.dataset.name}" if spec else run_dir.name,
        "warnings": info.warnings,
        "run_dir": str(run_dir),
        "models": [{"name": m, "colour": colours[m]} for m in models],
        **tables_view(tables, models, colours),
        "validity": validity_view(run_dir),
        "sanity": sanity_view(run_dir),
        "plots": plots,
        **progress_view(records, models, colours),
        **cases,
        "max_cases": max_cases,
        "records": records,
        "light": light,
        "records_from": records_from,
        "max_detailed": max_detailed,
        "rescored": info.rescored or [],
        "spec_yaml": _read_text(run_dir / SPEC_FILE),
        "run_json": json.dumps(dump_record(info), indent=2, ensure_ascii=False)
        if (run_dir / "run.json").exists() else None,
    } | facts_view(info, spec, records, models, failed=len(cases["failures"]))


def compute_tables(records: list[CaseRecord], models: list[str],
                   leaderboard: list[LeaderboardRow] | None, correction: str) -> ReportTables:
    """The tables computed from full records (``leaderboard``: rows the caller already built)."""
    rows = leaderboard if leaderboard is not None else (
        build_leaderboard(records, models) if records else [])
    categories = build_category_table(records) if records else []
    by_metric = build_metric_comparisons(records, rows, correction) if records else {}
    return ReportTables(rows, by_metric, categories, saved=False)
