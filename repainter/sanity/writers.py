"""sanity.json and SANITY.md in the run folder, and the leaderboard's sanity section.

SANITY.md is VALIDITY-style: the headline verdicts for the selection score, then per ladder a
table of tau [95% bootstrap interval over cases] per score and model, then the judge's agreement
with the selection score, what was left out, and the caveats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from repainter.images import atomic_write_bytes
from repainter.report.markdown import markdown_table, markdown_text
from repainter.report.sanity import (
    SANITY_JSON,
    SANITY_MD,
    refresh_leaderboard_section,
    selection_sentences,
    tau_text,
)
from repainter.store import write_json

CAVEATS = [
    "Rungs are ordered by construction: a poorer prompt says strictly less (nested drops, the "
    "same for every model), a stronger corruption damages more. A metric that does not order "
    "them cannot be trusted to rank renders of this model; one that does is necessary, not "
    "sufficient, for a trustworthy leaderboard.",
    "The sampler-budget ladder is an empirical check, not a requirement: distilled and turbo "
    "models are not monotone in steps (SDXL-Turbo is made for 1-4), so its tau never fails a "
    "metric.",
    "Metrics that score the render's recorded metadata (the bench's scene_truth) are not "
    "applicable to corruptions: the pixels change, the recorded scene does not.",
    "Tau is Kendall's tau-a of the case-mean rung scores against the rung order (ties count "
    "zero); its interval resamples cases (percentile bootstrap). Adjacent rungs: one-sided "
    "Wilcoxon signed-rank over cases, Holm-corrected within each ladder.",
]


def write_outputs(root: Path, data: dict[str, Any]) -> None:
    """sanity.json, SANITY.md, and the sanity section of an existing leaderboard.md."""
    write_json(root / SANITY_JSON, data)
    atomic_write_bytes(root / SANITY_MD, sanity_markdown(data).encode("utf-8"))
    refresh_leaderboard_section(root)


def _cell(stats: dict[str, Any] | None) -> str:
    if stats is None:
        return "-"
    adjacent = stats.get("adjacent") or []
    separated = sum(a["separated"] for a in adjacent)
    return f"{tau_text(stats)[4:]} {stats['verdict']} · {separated}/{len(adjacent)}"


def _ladder_table(ladder: dict[str, Any]) -> list[str]:
    models = list(ladder["models"])
    metrics = list(dict.fromkeys(m for entry in ladder["models"].values()
                                 for m in entry["metrics"]))
    rows = [[m] + [_cell(ladder["models"][model]["metrics"].get(m)) for model in models]
            for m in metrics]
    return markdown_table(["score"] + models, rows)


def _ladder_section(name: str, ladder: dict[str, Any]) -> list[str]:
    lines = ["", f"## {markdown_text(ladder['title'])}" + ("" if ladder["required"] else
                                                          " (empirical)"), ""]
    for model, entry in ladder["models"].items():
        lines.append(f"- {markdown_text(model)}: {entry['cases']} cases, rungs (best first): "
                     f"{markdown_text(', '.join(entry['rungs']))}")
    lines += ["", "Cells: tau [95% CI over cases], verdict, adjacent rungs separated.", ""]
    return lines + _ladder_table(ladder)


def _judge_section(data: dict[str, Any]) -> list[str]:
    agreement = data.get("judge_agreement") or {}
    if not agreement:
        return ["", "## Judge consistency", "",
                "Not measured (the judge is off: --judge or the spec's judge: true)."]
    rows = []
    for model, families in agreement.items():
        for family, stats in families.items():
            ci = stats.get("rate_ci")
            rate = "-" if stats["rate"] is None else f"{stats['rate']:.2f}"
            rows.append([model, family, str(stats["pairs"]),
                         rate + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else ""),
                         str(stats["judge_ties"])])
    return (["", "## Judge consistency", "",
             "How often the MLLM judge orders two rungs of a case the way the selection score "
             "does (pairs where either ties left out; judge ties counted apart), 95% CI over "
             "cases. The judge's own tau is the `judge` row of each ladder table.", ""]
            + markdown_table(["model", "ladders", "pairs", "agreement", "judge ties"], rows))


def _left_out(data: dict[str, Any]) -> list[str]:
    lines = []
    for model, ladders in (data.get("skipped_ladders") or {}).items():
        for ladder, why in ladders.items():
            lines.append(f"- {markdown_text(model)}: no {ladder} ladder: {markdown_text(why)}")
    for name, ladder in (data.get("ladders") or {}).items():
        for model, entry in ladder["models"].items():
            for case, why in entry["skipped"].items():
                lines.append(f"- {name} / {markdown_text(model)} / case "
                             f"{markdown_text(case)}: {markdown_text(why)}")
            for metric, why in entry["not_applicable"].items():
                lines.append(f"- {name} / {markdown_text(model)}: {markdown_text(metric)} not "
                             f"applicable: {markdown_text(why)}")
    unique = list(dict.fromkeys(lines))
    return (["", "## Left out", ""] + unique) if unique else []


def sanity_markdown(data: dict[str, Any]) -> str:
    spec = data.get("spec") or {}
    config = data.get("config") or {}
    lines = [f"# Metric sanity: {markdown_text(spec.get('name', ''))} on its own models", "",
             f"Generated by `{data.get('command') or 'repainter sanity'}` into this run folder; "
             "regenerate with it. Do not edit by hand.", "",
             f"- T2I models: {markdown_text(', '.join(spec.get('t2i') or []))}; MLLM "
             f"`{markdown_text(spec.get('mllm'))}`; metrics "
             f"{markdown_text(', '.join(spec.get('metrics') or []))}",
             f"- {len(data.get('cases') or [])} of {data.get('references_available')} references, "
             f"{config.get('rungs')} rungs, {config.get('renders')} render(s) per prompt rung, "
             f"seed {config.get('seed')}, judge {'on' if data.get('judge') else 'off'}; "
             f"{data.get('seconds')} s", "", "## Headline", ""]
    lines += [f"- {markdown_text(s)}" for s in selection_sentences(data)]
    for name, ladder in (data.get("ladders") or {}).items():
        lines += _ladder_section(name, ladder)
    lines += _judge_section(data) + _left_out(data)
    lines += ["", "## Caveats", ""] + [f"- {c}" for c in CAVEATS]
    return "\n".join(lines) + "\n"
