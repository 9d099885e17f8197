"""validity.json -> VALIDITY.md, and the "which metric to trust for which error" table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from repainter.bench.meta_eval.check_seeds import seed_history_lines
from repainter.bench.meta_eval.loop_check import loop_check_headline, loop_check_section
from repainter.bench.meta_eval.renderers import second_renderer_headline, second_renderer_section
from repainter.images import atomic_write_bytes
from repainter.report.markdown import markdown_table, markdown_text
from repainter.report.validity import TRUSTED, WEAK, fmt_value, trust_table
from repainter.store import write_json


def _signed(value: float | None) -> str:
    return "-" if value is None else f"{value:+.4f}"


def _p(value: float | None) -> str:
    return "-" if value is None else ("<0.001" if value < 0.001 else f"{value:.3g}")


def _quality_note(ladder: dict[str, Any]) -> str:
    """'; true quality a 0.72 > b 0.67 (gap 0.056, min 0.025) ...' where the bench knows it."""
    quality, gaps = ladder.get("true_quality"), ladder.get("gaps")
    if not quality or not gaps:
        return ""
    steps = [f"{fmt_value(quality[0], 3)}"] + [
        f"{fmt_value(q, 3)} (gap {fmt_value(g['gap'], 3)}{'' if g['meets'] else ' < min'})"
        for q, g in zip(quality[1:], gaps)]
    return f"; true quality {' > '.join(steps)}, minimum gap {gaps[0]['minimum']:g}"


def _ladder_sections(ladders: dict[str, Any], truth: str | None,
                     true_order: str | None = None) -> list[str]:
    names = list(ladders)
    metrics = list(dict.fromkeys(m for ladder in ladders.values() for m in ladder["metrics"]))
    lines = ["## (a) Ranking validity on ladders", ""]
    if true_order:
        lines += [true_order, ""]
    for name, ladder in ladders.items():
        # a ladder given as data names and describes itself: text, never HTML
        lines.append(f"- **{markdown_text(name)}** ("
                     f"{'nested' if ladder['nested'] else 'non-nested'}, "
                     f"{len(ladder['models'])} models, best first"
                     + ("" if ladder.get("required", True) else "; stress ladder, not required")
                     + f"): {markdown_text(ladder['description'])}" + _quality_note(ladder))
    lines += ["", "Kendall tau between each metric's ranking of the models and the true order "
              "(1 = perfect): tau on the cases' seed-averaged scores [95% bootstrap CI over "
              "cases]; in brackets after it, the mean of the per-seed taus.", ""]
    # (row label, the row's result on one ladder); the last row is a diagnostic, not a metric
    entries = [(metric + (" (truth)" if metric == truth else ""),
                lambda ladder, metric=metric: ladder["metrics"].get(metric)) for metric in metrics]
    if truth and any(ladder.get("best_rendered") for ladder in ladders.values()):
        entries.append((f"{truth} at each case's best render (ideal re-pick)",
                        lambda ladder: ladder.get("best_rendered")))
    rows = []
    for label, result_of in entries:
        cells = [label]
        for name in names:
            r = result_of(ladders[name])
            cells.append("-" if r is None else f"{r['tau']:.2f} [{fmt_value(r['tau_ci_low'], 2)}, "
                         f"{fmt_value(r['tau_ci_high'], 2)}] (seeds {r['tau_seed_mean']:.2f})")
        rows.append(cells)
    lines += markdown_table(["metric", *names], rows)
    lines += ["", "Adjacent rungs separated: the better rung scores higher with a paired "
              "sign-flip p < 0.05 (uncorrected), on seed-averaged cases / within one seed's run "
              "(mean over seeds).", ""]
    rows = []
    for label, result_of in entries:
        cells = [label.removesuffix(" (truth)")]
        for name in names:
            r = result_of(ladders[name])
            cells.append("-" if r is None else
                         f"{_separated(r)} / {r['adjacent_separated_per_seed']:.2f}")
        rows.append(cells)
    lines += markdown_table(["metric", *names], rows)
    return lines


def _degradation_section(deg: dict[str, Any]) -> list[str]:
    kinds = deg["kinds"]
    lines = ["", "## (b) Controlled degradations of real references", "",
             f"{deg['images']} reference(s) ({deg['references']}) at {deg['size']} px, damaged at "
             f"strengths {', '.join(f'{s:g}' for s in deg['strengths'])}; per metric and kind, "
             "Kendall tau between strength and dissimilarity, mean over images (1 = every "
             "stronger damage scored less similar; 0 = blind to it).", ""]
    rows = [[metric, *[fmt_value(r["kinds"][k]["tau"], 2) for k in kinds], fmt_value(r["all"], 2)]
            for metric, r in deg["metrics"].items()]
    return lines + markdown_table(["metric", *kinds, "mean"], rows)


def _baseline_section(base: dict[str, Any], truth: str | None) -> list[str]:
    labels = list(base["means"])
    metrics = list(next(iter(base["means"].values())).keys()) if labels else []
    lines = ["", "## (c) The loop against baselines at equal render budget", "",
             f"T2I model `{json.dumps(base['model'])}`; {base['cases']} cases x seeds "
             f"{base['seeds']}; {base['budget_renders']} renders per case for refine, best_of_n "
             "and the oracle (one_shot: 1). refine = the critique-and-revise loop; best_of_n = the "
             "initial prompt with distinct seeds, no feedback; one_shot = the initial description's "
             "prompt once" + ("; oracle = the ground-truth scene's prompt" if base["oracle"] else "")
             + ". Means of the seed-averaged cases:", ""]
    rows = [[m + (" (truth)" if m == truth else ""), *[fmt_value(base["means"][lab].get(m)) for lab in labels]]
            for m in metrics]
    lines += markdown_table(["metric", *labels], rows)
    lines += ["", f"Paired tests (sign-flip on seed-averaged cases; per metric, Holm across all "
              f"{len(labels) * (len(labels) - 1) // 2} pairs of the {len(labels)} entries; the "
              "pairs with refine shown), reported whatever their sign:", ""]
    rows = []
    for metric, family in base["tests"].items():
        for c in family:
            rows.append([metric, f"{c['model_a']} - {c['model_b']}", str(c["n"]),
                         _signed(c["mean_difference"]),
                         f"[{fmt_value(c['ci_low'], 4)}, {fmt_value(c['ci_high'], 4)}]", _p(c["p_value"]),
                         _p(c["p_adjusted"]), "yes" if c["significant"] else "no"])
    return lines + markdown_table(["metric", "difference", "n", "mean", "95% CI", "p", "p (Holm)",
                           "significant"], rows)


def _seed_section(ladders: dict[str, Any]) -> list[str]:
    lines = ["", "## (d) Seed sensitivity", "",
             "Spread of each model's mean over seeds (SD) next to its single-seed bootstrap "
             "standard error (SE = 95% CI width / 3.92); a ratio above 1 means a single-seed "
             "interval understates the uncertainty. Median and max over the ladders' models.", ""]
    merged: dict[str, list[dict[str, Any]]] = {}
    for ladder in ladders.values():
        for metric, r in ladder["seed_sensitivity"].items():
            merged.setdefault(metric, []).append(r)
    rows = [[metric, fmt_value(max(r["median_seed_sd"] for r in rs), 4), fmt_value(max(r["max_seed_sd"] for r in rs), 4),
             fmt_value(max(r["median_ratio"] for r in rs), 2), fmt_value(max(r["max_ratio"] for r in rs), 2)]
            for metric, rs in merged.items()]
    return lines + markdown_table(["metric", "seed SD (median)", "seed SD (max)", "SD/SE (median)",
                           "SD/SE (max)"], rows)


def _separated(result: dict[str, Any]) -> str:
    """"k/n": how many of a result's n adjacent pairs are separated (seed-averaged cases)."""
    pairs = len(result["adjacent"])
    return f"{round(result['adjacent_separated'] * pairs)}/{pairs}"


def _acceptance_lines(ladders: dict[str, Any], truth: str | None, label: str) -> list[str]:
    """The issue's acceptance on a set of ladders: selection tau >= TRUSTED on each (mean over
    seeds) and the truth metric separating every adjacent rung."""
    sel = [ladder["metrics"].get("selection", {}).get("tau_seed_mean") for ladder in ladders.values()]
    ok = all(t is not None and t >= TRUSTED for t in sel)
    lines = [f"- {label} ({', '.join(ladders)}): default selection score, tau per ladder (mean "
             f"over seeds): {', '.join(fmt_value(t, 2) for t in sel)}: "
             + ("meets" if ok else "does NOT meet") + f" tau >= {TRUSTED} on every ladder."]
    if truth:
        seps = [ladder["metrics"].get(truth) for ladder in ladders.values()]
        all_sep = all(s is not None and s["adjacent_separated"] == 1.0 for s in seps)
        lines.append(f"- {label}: truth metric `{truth}` " + ("separates" if all_sep else "does NOT separate")
                     + " every adjacent rung (seed-averaged cases): "
                     + ", ".join(_separated(s) for s in seps if s) + ".")
    return lines


def _resolution_line(ladders: dict[str, Any], truth: str | None) -> list[str]:
    """The smallest true-quality gap the truth metric separated, and the largest it did not."""
    seen, missed = [], []
    for ladder in ladders.values():
        result = ladder["metrics"].get(truth or "")
        for gap, row in zip(ladder.get("gaps") or [], (result or {}).get("adjacent") or []):
            (seen if row["separated"] else missed).append((gap["gap"], ladder.get("nested", False)))
    if not seen and not missed:
        return []
    parts = []
    for nested, kind in ((True, "nested"), (False, "non-nested")):
        ok = [g for g, n in seen if n == nested]
        bad = [g for g, n in missed if n == nested]
        if ok or bad:
            parts.append(f"{kind} pairs: smallest true-quality gap separated "
                         f"{fmt_value(min(ok), 3) if ok else '-'}, largest not separated "
                         f"{fmt_value(max(bad), 3) if bad else '-'}")
    return [f"- Resolution of `{truth}` at this size: " + "; ".join(parts) + "."]


def _step(ladder: dict[str, Any], worse: int) -> str:
    """What rung ``worse`` changes against the rung above (nested: the raised rates)."""
    params = ladder.get("params")
    if not params:
        return ""
    above, below = params[worse - 1], params[worse]
    changed = {k: v for k, v in below.items() if above.get(k) != v} if ladder.get("nested") else below
    return " (" + ", ".join(f"{k} {v}" for k, v in changed.items()) + ")" if changed else ""


def _misses(ladders: dict[str, Any], truth: str | None) -> list[str]:
    """Where the default selection falls short of TRUSTED: the adjacent pairs it does not
    separate that the truth metric does, with both differences."""
    lines = []
    for name, ladder in ladders.items():
        sel, true = ladder["metrics"].get("selection"), ladder["metrics"].get(truth or "")
        if not sel or not true or sel["tau_seed_mean"] >= TRUSTED:
            continue
        pairs = [f"{s['better']} > {s['worse']}{_step(ladder, k + 1)}: {truth} "
                 f"{_signed(t['mean_difference'])} (p {_p(t['p_value'])}), selection "
                 f"{_signed(s['mean_difference'])} (p {_p(s['p_value'])})"
                 for k, (s, t) in enumerate(zip(sel["adjacent"], true["adjacent"]))
                 if t["separated"] and not s["separated"]]
        if pairs:
            lines.append(f"- On `{name}` the default selection misses what the truth metric "
                         "separates: " + "; ".join(pairs) + ".")
    return lines


def _truth_misses(ladders: dict[str, Any], truth: str | None) -> list[str]:
    """The adjacent pairs the truth metric of the loop's picks does not separate: their gap in
    true quality (one oracle render) next to the difference the loop left (it repairs some
    failures, so a gap can shrink below what the bench resolves)."""
    lines = []
    for name, ladder in ladders.items():
        true = ladder["metrics"].get(truth or "")
        gaps = ladder.get("gaps") or []
        if not true:
            continue
        pairs = [f"{t['better']} > {t['worse']}{_step(ladder, k + 1)}: true-quality gap "
                 f"{fmt_value(gaps[k]['gap'], 3) if k < len(gaps) else '-'}, {truth} of the "
                 f"loop's picks {_signed(t['mean_difference'])} (p {_p(t['p_value'])})"
                 for k, t in enumerate(true["adjacent"]) if not t["separated"]]
        if pairs:
            lines.append(f"- On `{name}` the truth metric does not separate: " + "; ".join(pairs)
                         + ".")
    return lines


def _best_rendered_line(ladders: dict[str, Any], truth: str | None, label: str) -> list[str]:
    """Whether the truth metric separates every adjacent rung at each case's best render (the
    loop's candidates re-picked by the truth itself): a pair separated here but not at the
    loop's picks is lost by the selection, not by the loop."""
    found = {name: lad["best_rendered"] for name, lad in ladders.items() if lad.get("best_rendered")}
    if not truth or not found:
        return []
    counts = [_separated(r) for r in found.values()]
    every = all(r["adjacent_separated"] == 1.0 for r in found.values())
    return [f"- {label} ({', '.join(found)}): truth metric `{truth}` at each case's best render "
            "(the loop's candidates re-picked by the truth, an ideal pick) "
            + ("separates" if every else "does NOT separate")
            + " every adjacent rung: " + ", ".join(counts) + "."]


def _fallback(ladders: dict[str, Any], truth: str | None) -> list[str]:
    """The issue's fallback: which measured metric reaches TRUSTED on every required ladder."""
    taus: dict[str, list[float]] = {}
    for ladder in ladders.values():
        for metric, r in ladder["metrics"].items():
            taus.setdefault(metric, []).append(r["tau_seed_mean"])
    able = [m for m, ts in taus.items() if m not in (truth, "selection") and min(ts) >= TRUSTED]
    if "selection" in taus and min(taus["selection"]) >= TRUSTED:
        return []
    return ["- Metrics of this run that reach tau >= "
            f"{TRUSTED} on every required ladder: " + (", ".join(able) if able else
                                                          "none, so no measured metric can "
                                                          "replace the default selection") + "."]


def _headline(data: dict[str, Any], truth: str | None) -> list[str]:
    lines = ["## Headline", ""]
    ladders = data.get("ladders") or {}
    if ladders:
        required = {n: lad for n, lad in ladders.items() if lad.get("required", True)}
        stress = {n: lad for n, lad in ladders.items() if not lad.get("required", True)}
        if required:
            lines += _acceptance_lines(required, truth, "Required ladders")
            lines += (_misses(required, truth) + _truth_misses(required, truth)
                      + _best_rendered_line(required, truth, "Required ladders")
                      + _fallback(required, truth))
        if stress:
            lines += _acceptance_lines(stress, truth, "Stress ladders (not required)")
        lines += _resolution_line(ladders, truth)
        best = {}
        for ladder in (required or ladders).values():
            for metric, r in ladder["metrics"].items():
                best.setdefault(metric, []).append(r["tau_seed_mean"])
        ranked = sorted(((min(v), m) for m, v in best.items() if m != truth), reverse=True)
        if ranked:
            lines.append(f"- Worst {'required ' if required else ''}ladder's tau by metric: "
                         + ", ".join(f"{m} {t:.2f}" for t, m in ranked) + ".")
    base = data.get("baselines")
    if base and truth:
        family = base["tests"].get(truth, [])
        for c in family:
            lines.append(f"- {truth}: {c['model_a']} - {c['model_b']} = {_signed(c['mean_difference'])} "
                         f"(Holm p {_p(c['p_adjusted'])}).")
    lines += second_renderer_headline(data) + loop_check_headline(data)
    deg = data.get("degradations")
    if deg:
        lines.append("- Degradations, mean tau over kinds: " + ", ".join(
            f"{m} {fmt_value(r['all'], 2)}" for m, r in deg["metrics"].items()) + ".")
    return lines


def validity_markdown(data: dict[str, Any]) -> str:
    config = data.get("config") or {}
    truth = config.get("truth")
    bench = data.get("bench")
    lines = ["# VALIDITY: how far repainter's scores and loop can be trusted", "",
             "Generated by `repainter meta-eval` (repainter/bench/meta_eval/); regenerate with the "
             "command below. Do not edit by hand.", "",
             f"- Command: `{data.get('command') or 'repainter.bench.meta_eval(...)'}`",
             f"- Bench: {bench}" + (" (the simulation bench `repainter.bench.sim` was NOT installed: "
                                    "procedural ladders of the built-in world; its truth metric "
                                    "`object_f1` shares the describer's detector, so this is weaker "
                                    "evidence)" if bench == "procedural" else ""),
             f"- Sizes: {config.get('scenes')} scenes, seeds {config.get('seeds')}, "
             f"{config.get('rounds')} rounds x {config.get('variants')} variants; MLLM "
             f"`{(config.get('mllm') or {}).get('name')}`; truth metric `{truth}`; "
             f"wall time {data.get('seconds')} s.", ""]
    lines += _headline(data, truth)
    lines.append("")
    if data.get("ladders"):
        lines += _ladder_sections(data["ladders"], truth, data.get("true_order"))
    if data.get("degradations"):
        lines += _degradation_section(data["degradations"])
    if data.get("baselines"):
        lines += _baseline_section(data["baselines"], truth)
    if data.get("ladders"):
        lines += _seed_section(data["ladders"])
    lines += second_renderer_section(data, truth) + loop_check_section(data)
    rows = trust_table(data)
    if rows:
        lines += ["", "## Which metric to trust for which kind of error", "",
                  f"Ladders: mean tau over seeds (see (a) for what each ladder varies); "
                  f"degradations: mean tau over images. trustworthy: tau >= {TRUSTED}; weak: >= "
                  f"{WEAK}; else not trustworthy.", ""]
        lines += markdown_table(["metric", "kind of error", "tau", "verdict"],
                        [[r["metric"], r["error"], r["tau"], r["verdict"]] for r in rows])
    lines += seed_history_lines(config)[:-1]  # fresh seeds or not: which seeds tuned what
    return "\n".join(lines) + "\n"


def write_validity(data: dict[str, Any], config) -> Path:
    """Write validity.json and VALIDITY.md; with ``config.run_dir``, add validity.json to that
    run folder and rebuild its HTML report. Returns VALIDITY.md's path."""
    path = Path(config.validity_path) if config.validity_path else Path(config.output_dir) / "VALIDITY.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path.with_name("validity.json"), data)
    atomic_write_bytes(path, validity_markdown(data).encode("utf-8"))
    if config.run_dir:
        run_dir = Path(config.run_dir)
        shutil.copyfile(path.with_name("validity.json"), run_dir / "validity.json")
        from repainter.report.html import write_report

        write_report(run_dir)
    return path
