"""The loop against best-of-N at equal render budget on every model: the analysis.

``bench/loop_vs_best_of_n.py`` runs the strategies (the real graph) on the models below and
writes ADAPTIVE_LOOP.md / .json with :func:`analyse` and :func:`comparison_lines`; ``repainter
meta-eval --loop-check ADAPTIVE_LOOP.json`` copies the same tables into VALIDITY.md, so the
loop's cost is reported where the rest of the bench's validity is, whatever its sign.

Per model: the mean ``scene_truth`` of each strategy's final answer, loop - best_of_n paired by
scene (each scene's difference averaged over seeds), a bootstrap CI and a sign-flip p-value,
with Holm's correction in two families fixed before any result was seen: the acceptance claim
(better on default and the wording models: :data:`WORDING`) and the safety check (worse on any
model).

>>> rows = analyse({"default": {"adaptive": {("a", 1): 0.9, ("b", 1): 0.8},
...                             "best_of_n": {("a", 1): 0.7, ("b", 1): 0.7}}}, ["adaptive"])
>>> round(rows["adaptive"]["default"]["difference"], 3)
0.15
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from repainter.report.stats import bootstrap_ci, holm, sign_flip_p_value

#: Models whose failures are about wording (the acceptance asks for a gain on these and default).
WORDING = {"default": {}, "vocabulary-0.35": {"vocabulary": 0.35},
           "order_drop-0.3": {"order_drop": 0.3}, "token_budget-24": {"token_budget": 24}}
#: The true fidelity the strategies are compared on.
TRUTH = "scene_truth"
#: Models of the ladders (repainter.bench.sim.zoo.ladders) the loop must not be worse on.
LADDERS = {
    "layout-1": {"spatial_error": 0.6},
    "layout-4": {"spatial_error": 0.6, "count_error": 0.3, "order_drop": 0.3, "token_budget": 24},
    "attributes-1": {"binding_leak": 0.6},
    "attributes-2": {"binding_leak": 0.6, "background_bias": 0.8},
    "attributes-3": {"binding_leak": 0.6, "background_bias": 0.8, "vocabulary": 0.2},
    "faithful": {"vocabulary": 1.0, "order_drop": 0.0, "binding_leak": 0.0, "count_error": 0.0,
                 "spatial_error": 0.0, "background_bias": 0.0, "style_bias": 0.0},
    "short-context": {"token_budget": 10},
    "biased": {"background_bias": 0.5, "style_bias": 0.6},
    "careless": {"order_drop": 0.4, "binding_leak": 0.5, "vocabulary": 0.3},
}

def compare(by_strategy: dict[str, dict], loop: str) -> dict[str, Any]:
    """loop - best_of_n, paired by scene (each scene's difference averaged over its seeds)."""
    a, b = by_strategy.get(loop, {}), by_strategy.get("best_of_n", {})
    keys = sorted(set(a) & set(b))
    per_scene: dict[str, list[float]] = {}
    for case, seed in keys:
        per_scene.setdefault(case, []).append(a[(case, seed)] - b[(case, seed)])
    diffs = [float(np.mean(v)) for v in per_scene.values()]
    ci = bootstrap_ci(diffs) or (None, None)
    return {"scenes": len(diffs), "loop": float(np.mean([a[k] for k in keys])),
            "best_of_n": float(np.mean([b[k] for k in keys])), "difference": float(np.mean(diffs)),
            "ci_low": ci[0], "ci_high": ci[1], "p": sign_flip_p_value(diffs)}


def analyse(results: dict[str, dict], loops: list[str]) -> dict[str, dict[str, dict]]:
    """loop strategy -> model -> comparison, with Holm's correction over two families fixed
    before any result was seen: the acceptance claim (``p_holm_claim``: the loop is better on
    default and every wording model, a family of those models) and the safety check
    (``p_holm``: worse on any model, a family of all models)."""
    out = {}
    for loop in loops:
        rows = {m: compare(by_strategy, loop) for m, by_strategy in results.items()}
        for model, adjusted in zip(rows, holm([r["p"] for r in rows.values()]), strict=True):
            rows[model]["p_holm"] = adjusted
        claim = [m for m in rows if m in WORDING]
        for model, adjusted in zip(claim, holm([rows[m]["p"] for m in claim]), strict=True):
            rows[model]["p_holm_claim"] = adjusted
        out[loop] = rows
    return out


def _verdict(row: dict) -> str:
    """better: Holm p < 0.05 in the claim's family (default and wording models) or over all
    models; worse: Holm p < 0.05 over all models; else n.s."""
    if row["difference"] > 0 and min(row.get("p_holm_claim", 1.0), row["p_holm"]) < 0.05:
        return "better"
    if row["difference"] < 0 and row["p_holm"] < 0.05:
        return "**worse**"
    return "n.s."


def comparison_lines(table: dict[str, dict[str, dict]]) -> list[str]:
    """Markdown: per loop, the per-model table, then issue 26's acceptance per loop."""
    lines = []
    for loop, rows in table.items():
        lines += [f"### {loop} - best_of_n", "",
                  "| model | group | loop | best_of_n | difference [95 % CI] | p | Holm p (claim) "
                  "| Holm p (all) | verdict |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for model, r in rows.items():
            group = "wording" if model in WORDING else "ladder"
            ci = ("" if r["ci_low"] is None else f" [{r['ci_low']:+.3f}, {r['ci_high']:+.3f}]")
            lines.append(f"| {model} | {group} | {r['loop']:.3f} | {r['best_of_n']:.3f} | "
                         f"{r['difference']:+.3f}{ci} | {r['p']:.3f} | "
                         f"{_fmt_p(r.get('p_holm_claim'))} | {r['p_holm']:.3f} | {_verdict(r)} |")
        lines.append("")
    lines += ["### Acceptance (issue 26)", "",
              "Better than best_of_n with Holm p < 0.05 on default and every wording model, and "
              "significantly worse on no model.", "",
              *(acceptance_line(loop, rows) for loop, rows in table.items())]
    return lines


def met(table: dict[str, dict[str, dict]]) -> list[str]:
    """The loops of ``table`` that meet issue 26's acceptance."""
    return [loop for loop, rows in table.items() if _acceptance(rows)[0]]


def _fmt_p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _acceptance(rows: dict[str, dict]) -> tuple[bool, list[str], list[str], list[str]]:
    """(met, the claim's models, those better than best_of_n, the models worse than it)."""
    claim = [m for m in WORDING if m in rows]
    wins = [m for m in claim if _verdict(rows[m]) == "better"]
    worse = [m for m, r in rows.items() if _verdict(r) == "**worse**"]
    return len(wins) == len(claim) and not worse, claim, wins, worse


def acceptance_text(loop: str, rows: dict[str, dict]) -> str:
    """Issue 26's acceptance: better (Holm p < 0.05) on default and every wording model, and
    significantly worse on none."""
    ok, claim, wins, worse = _acceptance(rows)
    return (f"{loop}: {'MET' if ok else 'NOT met'}: better than best_of_n on "
            f"{len(wins)} of {len(claim)} default/wording models ({', '.join(wins) or 'none'}); "
            f"significantly worse on {', '.join(worse) or 'none'}.")


def acceptance_line(loop: str, rows: dict[str, dict]) -> str:
    """:func:`acceptance_text` as a Markdown list item."""
    return f"- {acceptance_text(loop, rows)}"


def read_loop_check(path: str | Path) -> dict[str, Any]:
    """ADAPTIVE_LOOP.json (``{"meta", "table"}``), checked for the fields VALIDITY.md shows."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict) or not {"meta", "table"} <= set(data):
        raise ValueError(f"{path} is not a bench/loop_vs_best_of_n.py result (no meta/table)")
    return {"source": str(path), **data}


def loop_check_headline(data: dict[str, Any]) -> list[str]:
    """The acceptance line of each loop, for VALIDITY.md's headline."""
    check = data.get("loop_check")
    if not check:
        return []
    return [f"- Loop vs best_of_n on every model: {acceptance_text(loop, rows)}"
            for loop, rows in check["table"].items()]


def loop_check_section(data: dict[str, Any]) -> list[str]:
    """(f): the loop vs best-of-N on every model, as ``bench/loop_vs_best_of_n.py`` measured."""
    check = data.get("loop_check")
    if not check:
        return []
    meta = check["meta"]
    return ["", "## (f) The loop against best-of-N on every model", "",
            # the command's --conclusion (its prose reading) is in the file, not repeated here
            f"From `{check['source']}`, written by "
            f"`{str(meta['command']).split(' --conclusion ')[0]}` at commit "
            f"{str(meta['commit'])[:10]} ({meta['at']}): {meta['scenes']} stratified scenes x "
            f"seeds {meta['seeds']} (drawn from the commit hash; none was tuned on), "
            f"{meta['rounds']} x {meta['variants']} renders per case for every strategy. "
            "Values: mean scene_truth of the final answer; difference = loop - best_of_n paired "
            "by scene; sign-flip p; Holm over the claim's 4 models (claim) and over all models "
            "(all).", "", *comparison_lines(check["table"])]
