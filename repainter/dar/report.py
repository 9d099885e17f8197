"""DAR output: ``dar.jsonl`` (one row per dialogue turn), ``dar_summary.json``, ``dar.md`` and
an HTML page ``report/dar.html`` with the per-turn Hits@K table (cumulative, as ChatIR counts
it, and at each turn alone), the Hits@10 curve with and
without generated images, every dialogue's queries, renders and ranks, and the failures.

The page is rendered with the run report's Jinja2 environment (autoescape on, no script, the
same Content-Security-Policy): queries come from an MLLM and dialogues from manifests, so every
value is escaped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from repainter.dar.run import DARResult
from repainter.images import atomic_write_bytes
from repainter.records.dar import HITS_AT, dump_record

#: Dialogues shown with their renders on the HTML page (the rest are listed in dar.jsonl).
MAX_CASES_SHOWN = 60


def summary_markdown(summary: dict[str, Any]) -> str:
    """The per-turn table: cumulative Hits@K as ChatIR counts it (``H@K``), Hits@10 at the turn
    alone (``H@10 turn``) and the mean rank, by text alone and with generated images."""
    head = ["turn", "cases"]
    for mode in ("text", "fused"):
        head += [f"{mode} H@{k}" for k in HITS_AT] + [f"{mode} H@10 turn", f"{mode} mean rank"]
    lines = [f"# DAR (alpha={summary['alpha']}, images/turn={summary['images_per_turn']}, "
             f"gallery={summary['gallery_size']}, cases={summary['cases']}, "
             f"failed={summary.get('failed', 0)})", "",
             "text = text score only; fused = with generated images. H@K: cumulative Hits@K as "
             "ChatIR's eval.py counts it (target in the top K at this turn or before, over all "
             "dialogues); H@10 turn: at this turn alone, over the dialogues that reach it", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for t in summary["turns"]:
        cells = [str(t["turn"]), str(t["cases"])]
        for mode in ("text", "fused"):
            cells += [_fraction(t[mode].get(f"hits@{k}")) for k in HITS_AT]
            cells.append(_fraction(t[mode]["hits@10_per_turn"]))
            cells.append(f"{t[mode]['mean_rank']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def plot_hits(summary: dict[str, Any], path: str | Path, k: int = 10) -> bool:
    """Cumulative Hits@k per turn (ChatIR's), text only vs. with generated images; False if
    nothing to plot."""
    from matplotlib.figure import Figure

    from repainter.report.plots import model_colour, save_figure, style_axes

    turns = summary["turns"]
    if not turns:
        return False
    fig = Figure(figsize=(6.4, 3.4))
    ax = fig.add_subplot()
    x = [t["turn"] for t in turns]
    for i, (mode, label) in enumerate((("text", "text only"), ("fused", "with generated images"))):
        ax.plot(x, [t[mode][f"hits@{k}"] for t in turns], marker="o", color=model_colour(i),
                label=label)
    ax.set_xticks(x)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("turn (0 = caption only)")
    ax.set_ylabel(f"Hits@{k} (cumulative)")
    ax.set_title(f"Hits@{k} per dialogue turn (gallery of {summary['gallery_size']})", fontsize=10)
    style_axes(ax)
    ax.legend(frameon=False, fontsize=8)
    save_figure(fig, Path(path))
    return True


def _case_views(result: DARResult, images) -> list[dict[str, Any]]:
    cases: dict[str, list] = {}
    for r in sorted(result.records, key=lambda r: (r.case, r.turn)):
        cases.setdefault(r.case, []).append(r)
    views = []
    for case, rows in list(cases.items())[:MAX_CASES_SHOWN]:
        views.append({
            "case": case, "target": rows[0].target,
            "turns": [{"turn": r.turn, "query": r.query, "rank_text": r.rank_text,
                       "rank_fused": r.rank_fused, "top": r.top_fused,
                       "images": [images(p) for p in r.images]} for r in rows],
        })
    return views


def render_dar_page(result: DARResult, out_dir: Path) -> str:
    import yaml

    from repainter.report.html import ReportImages, template_environment

    summary = result.summary()
    report_dir = out_dir / "report"
    has_plot = plot_hits(summary, report_dir / "dar_hits.png")
    spec = result.config.get("spec")
    context = {
        "title": f"DAR · {spec.get('name', 'dar') if isinstance(spec, dict) else 'dar'}",
        "summary": summary, "hits_at": HITS_AT, "has_plot": has_plot,
        "cases": _case_views(result, ReportImages(out_dir, report_dir)),
        "hidden": max(0, len({r.case for r in result.records}) - MAX_CASES_SHOWN),
        "spec_yaml": yaml.safe_dump(spec, sort_keys=False) if spec else None,
        "config_json": json.dumps({k: v for k, v in result.config.items() if k != "spec"},
                                  indent=2, default=str),
    }
    return template_environment().get_template("dar.html.j2").render(**context)


def write_dar(result: DARResult, out_dir: str | Path) -> dict[str, Path]:
    """Write ``dar.jsonl``, ``dar_summary.json``, ``dar.md`` and ``report/dar.html``.

    The first two are typed, versioned records (:mod:`repainter.records.dar`):
    :func:`repainter.dar.read_result` reads them back, migrating older versions.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"jsonl": out / "dar.jsonl", "summary": out / "dar_summary.json",
             "markdown": out / "dar.md", "html": out / "report" / "dar.html"}
    atomic_write_bytes(paths["jsonl"], "".join(
        json.dumps(dump_record(r), ensure_ascii=False, allow_nan=False) + "\n"
        for r in result.records).encode("utf-8"))
    summary = dump_record(result.summary_record())
    atomic_write_bytes(paths["summary"], (json.dumps(summary, indent=2, default=str, allow_nan=False)
                                          + "\n").encode("utf-8"))
    atomic_write_bytes(paths["markdown"], summary_markdown(summary).encode("utf-8"))
    atomic_write_bytes(paths["html"], render_dar_page(result, out).encode("utf-8"))
    return paths
