"""The records, leaderboard and report page of an MLLM x T2I grid, read from its sub-runs.

The part of :mod:`repainter.mllm_grid` that readers need (``RunResult.load``, ``repainter report``)
without the part that runs a grid (which needs the runner).
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from repainter.records import CaseRecord
from repainter.records.leaderboard import GridRanking, GridSection, LeaderboardRow
from repainter.report.adaptive import adaptive_line
from repainter.report.leaderboard import (
    add_leaderboard_section,
    build_comparisons,
    build_leaderboard,
    format_cell,
    markdown_table,
    markdown_text,
    write_leaderboard,
)
from repainter.spec import ComponentSpec, RunSpec
from repainter.store import RunStore, run_folder_lock, slug

GRID_SUBFOLDER = "mllm"


def cell_label(t2i: str, mllm: str) -> str:
    """The grid cell's model label.

    >>> cell_label("sdxl", "gpt-4o")
    'sdxl@gpt-4o'
    """
    return f"{t2i}@{mllm}"


def child_dir(root: Path, mllm: ComponentSpec) -> Path:
    return root / GRID_SUBFOLDER / slug(mllm.display_name)


def grid_records(spec: RunSpec, case_ids: list[str] | None = None) -> list[CaseRecord]:
    """Every sub-run's records of the spec's models (and ``case_ids``), tagged with the cell."""
    t2i = {t.display_name for t in spec.t2i}
    wanted = set(case_ids) if case_ids is not None else None
    records = []
    for mllm in spec.mllms:
        folder = child_dir(spec.run_dir, mllm)
        for record in RunStore(folder).records():
            if record.model not in t2i or (wanted is not None and record.case_id not in wanted):
                continue
            records.append(record.model_copy(update={
                "t2i": record.model, "mllm": mllm.display_name,
                "model": cell_label(record.model, mllm.display_name),
                "run_subdir": str(folder.relative_to(spec.run_dir))}))
    return records


def build_grid_leaderboard(spec: RunSpec, records: list[CaseRecord],
                           usage: dict[str, dict[str, Any]]
                           ) -> tuple[list[LeaderboardRow], GridSection]:
    """The full grid's rows, and its section: the MLLM ranking per T2I model, the T2I ranking
    per MLLM (each with paired tests), and each MLLM's token use and cost."""
    t2i = [t.display_name for t in spec.t2i]
    mllms = [m.display_name for m in spec.mllms]
    rows = grid_rows(spec, records)

    def ranking(key: str, value: str) -> GridRanking:  # key: "t2i" or "mllm"
        mine = [r for r in rows if getattr(r, key) == value]
        recs = [r for r in records if getattr(r, key) == value]
        return GridRanking(ranking=[r.model_copy(update={"rank": i}) for i, r in enumerate(mine, 1)],
                           comparisons=build_comparisons(recs, mine, correction=spec.correction))

    return rows, GridSection(mllm_by_t2i={t: ranking("t2i", t) for t in t2i},
                             t2i_by_mllm={m: ranking("mllm", m) for m in mllms},
                             mllm_usage=usage)


def write_grid_leaderboard(spec: RunSpec, records: list[CaseRecord],
                           usage: dict[str, dict[str, Any]]
                           ) -> tuple[list[LeaderboardRow], GridSection]:
    """leaderboard.{json,csv,md} of the grid cells, then the MLLM axis appended."""
    rows, section = build_grid_leaderboard(spec, records, usage)
    write_leaderboard(rows, spec.run_dir, records, correction=spec.correction)
    add_leaderboard_section(spec.run_dir, grid_markdown(rows, section), grid=section)
    return rows, section


def grid_table(rows: list[LeaderboardRow], section: GridSection) -> tuple[list[str], list[list[str]]]:
    """Header and rows: T2I models down, MLLMs across, mean final selection score."""
    mllms = list(section.t2i_by_mllm)
    cells = {(r.t2i, r.mllm): r.selection.mean for r in rows}
    table = [[t] + [format_cell(cells.get((t, m))) for m in mllms] for t in section.mllm_by_t2i]
    return ["T2I \\ MLLM", *mllms], table


def _ranking_rows(ranking: GridRanking, key: str) -> list[list[str]]:
    return [[str(r.rank), getattr(r, key), str(r.done), format_cell(r.selection.mean),
             format_cell(r.mllm_tokens_per_case), format_cell(r.mllm_cost_usd)]
            for r in ranking.ranking]


def _comparison_rows(ranking: GridRanking) -> list[list[str]]:
    return [[c.model_a, c.model_b, str(c.n), format_cell(c.mean_difference),
             f"{c.p_value:.2g}", str(c.significant)] for c in ranking.comparisons.tests]


def grid_markdown(cells: list[LeaderboardRow], section: GridSection) -> str:
    """The MLLM axis for people: the grid, the rankings with paired tests, the MLLMs' usage."""
    header, rows = grid_table(cells, section)
    lines = ["## MLLM x T2I grid (mean final selection score)", "", *markdown_table(header, rows)]
    rank_head = ["rank", "model", "done", "selection final", "MLLM tokens/case", "MLLM cost USD"]
    test_head = ["model_a", "model_b", "n", "mean difference", "p (sign flip)", "significant"]
    for title, part, key in (("MLLMs ranked for T2I", "mllm_by_t2i", "mllm"),
                             ("T2I models ranked for MLLM", "t2i_by_mllm", "t2i")):
        for fixed, ranking in getattr(section, part).items():
            lines += ["", f"### {title} {markdown_text(fixed)}", "",
                      *markdown_table(rank_head, _ranking_rows(ranking, key))]
            if ranking.comparisons.tests:
                lines += ["", *markdown_table(test_head, _comparison_rows(ranking))]
    usage_keys = sorted({k for u in section.mllm_usage.values() for k in u})
    if usage_keys:
        lines += ["", "## MLLM usage (whole run)", "",
                  *markdown_table(["mllm", *usage_keys],
                             [[m, *(format_cell(u.get(k)) for k in usage_keys)]
                              for m, u in section.mllm_usage.items()])]
    return "\n".join(lines) + "\n"


def _html_table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def write_grid_report(root: Path, cells: list[LeaderboardRow], section: GridSection) -> Path:
    """report/index.html of the grid: the grid table, the MLLM ranking per T2I, links to sub-runs."""
    from repainter.images import atomic_write_bytes

    header, rows = grid_table(cells, section)
    parts = ["<!doctype html><meta charset='utf-8'><title>repainter grid</title>",
             "<style>td,th{border:1px solid #ccc;padding:2px 6px}table{border-collapse:collapse}"
             "</style><h1>MLLM x T2I grid</h1><p>Mean final selection score.</p>",
             _html_table(header, rows)]
    adaptive = RunStore(root).read_run_info().adaptive
    if adaptive:
        parts.append(f"<p>Adaptive budget: {html.escape(adaptive_line(adaptive))}.</p>")
    rank_head = ["rank", "MLLM", "done", "selection final", "MLLM tokens/case", "MLLM cost USD"]
    for t2i, ranking in section.mllm_by_t2i.items():
        parts.append(f"<h2>MLLMs ranked for {html.escape(t2i)}</h2>")
        parts.append(_html_table(rank_head, _ranking_rows(ranking, "mllm")))
        if ranking.comparisons.tests:
            parts.append(_html_table(["a", "b", "n", "mean diff", "p", "significant"],
                                     _comparison_rows(ranking)))
    links = "".join(f"<li><a href='../{GRID_SUBFOLDER}/{html.escape(slug(m))}/report/index.html'>"
                    f"{html.escape(m)}</a></li>" for m in section.t2i_by_mllm)
    parts.append(f"<h2>Per-MLLM reports</h2><ul>{links}</ul>")
    path = root / "report" / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, "\n".join(parts).encode("utf-8"))
    return path


def rebuild_grid_report(root: str | Path, spec: RunSpec) -> Path:
    """``repainter report`` on a grid folder: the grid page from the sub-runs' records."""
    root = Path(root)
    with run_folder_lock(root, "report", create=False):
        info = RunStore(root).read_run_info()
        rows, section = build_grid_leaderboard(spec, grid_records(spec), info.mllm_usage or {})
        return write_grid_report(root, rows, section)


def grid_rows(spec: RunSpec, records: list[CaseRecord]) -> list[LeaderboardRow]:
    """Leaderboard rows of every cell, best first, with their ``t2i`` and ``mllm``."""
    cells = {cell_label(t.display_name, m.display_name): (t.display_name, m.display_name)
             for m in spec.mllms for t in spec.t2i}
    rows = build_leaderboard(records, list(cells))
    for row in rows:
        row.t2i, row.mllm = cells[row.model]
    return rows
