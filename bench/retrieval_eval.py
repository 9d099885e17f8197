"""Retrieve-or-generate decisions against the ground truth (issue 7); writes RETRIEVAL.md.

    python bench/retrieval_eval.py                       # the full table, then RETRIEVAL.md
    python bench/retrieval_eval.py --limit 4 --rounds 1 --out /tmp/RETRIEVAL.md   # smoke check

The real graph through the public API (``repainter.run``): the 32 world scenes are the
references; several T2I models of different fidelity (the procedural model, faithful or blind to
one attribute) and a ``retrieval`` model (method ``scene``, leave-one-out) over a gallery of the
world with ``K`` near variants of every scene (``{name: world, params: {variants: K}}``: one
object moved / recoloured / reshaped / resized, two colours swapped, another background, one
object dropped / added) run the same loop; the ``decision`` node then lets the retriever answer
each generator's best prompt and a rule (``metric``: the selection score; ``mllm``: the built-in
``scene-analyst`` judge) picks the answer. One run per rule; both share one cache, so their
loops, renders and retrieved images are the same and only the rule differs.

Accuracy is the leaderboard's own (:func:`repainter.report.leaderboard.build_leaderboard`:
decisions whose choice is the image with the higher object F1 against the ground-truth scene,
over the cases where the two differ). "Always generate" / "always retrieve" are the same column
over the same records with the choice forced.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import repainter  # noqa: E402
from repainter.bench.world.dataset import WorldDataset  # noqa: E402
from repainter.images import image_sha256, load_image  # noqa: E402
from repainter.records import CaseRecord, DecisionRecord  # noqa: E402
from repainter.records.leaderboard import DecisionSummary  # noqa: E402
from repainter.report.leaderboard import build_leaderboard  # noqa: E402
from repainter.spec import build_spec  # noqa: E402

RULES = ("metric", "mllm")
RETRIEVER = "retrieval"
#: (label, procedural ``ignore`` list, what the model gets wrong).
GENERATORS: list[tuple[str, list[str], str]] = [
    ("procedural", [], "faithful: draws what the prompt says"),
    ("colourblind", ["color"], "random object colours"),
    ("shape-blind", ["shape"], "random shapes"),
    ("position-blind", ["position"], "random positions"),
    ("size-blind", ["size"], "random sizes (small / medium / large)"),
    ("background-blind", ["background"], "always a white background"),
]


def generator_components(labels: list[str] | None = None) -> list[dict[str, Any]]:
    chosen = [g for g in GENERATORS if labels is None or g[0] in labels]
    return [{"name": "procedural", "label": label, "params": {"ignore": ignore}}
            for label, ignore, _ in chosen]


def gallery_spec(gallery_variants: int) -> dict[str, Any]:
    return {"name": "world", "params": {"variants": gallery_variants}}


def spec_for(run_dir: Path, rule: str, generators: list[dict[str, Any]], *, limit: int | None,
             rounds: int, variants: int, gallery_variants: int, cache_dir: Path) -> Any:
    retriever = {"name": "retrieval", "label": RETRIEVER,
                 "params": {"gallery": gallery_spec(gallery_variants), "method": "scene",
                            "cache_dir": False}}
    return build_spec({
        "name": run_dir.name, "output_dir": str(run_dir),
        "dataset": {"name": "world", "limit": limit},
        "t2i": [*generators, retriever],
        "metrics": ["ssim", "color_histogram", "object_f1"],
        "selection": {"ssim": 0.5, "color_histogram": 0.5},
        "loop": {"rounds": rounds, "variants": variants},
        "judge": True,
        "decision": {"retriever": RETRIEVER, "rule": rule, "metric": "selection", "margin": 0.0},
        "runtime": {"cache_dir": str(cache_dir)},
    })


def _forced(records: list[CaseRecord], choice: str) -> list[CaseRecord]:
    """The records with every decision's choice set to ``choice`` (and judged like the node)."""
    out = []
    for record in records:
        decision = record.decision
        if decision is not None:
            truth = decision.truly_closer
            decision = decision.model_copy(update={
                "choice": choice, "correct": None if truth in (None, "tie") else truth == choice})
        out.append(record.model_copy(update={"decision": decision}))
    return out


def _retrieved_item(run_dir: Path, decision: DecisionRecord, by_hash: dict[str, str]) -> str:
    image = load_image(run_dir / decision.retrieved.image).convert("RGB")
    return by_hash.get(image_sha256(image), "?")


def _relation(case_id: str, item: str, kinds: dict[str, tuple[str, str]]) -> str:
    """What the retrieved gallery item is to the reference: its variant (by kind) or not."""
    if item == case_id:
        return "the reference itself (leave-one-out failed)"
    parent, kind = kinds.get(item, (item, ""))
    if parent == case_id:
        return f"variant: {kind}"
    return "variant of another scene" if kind else "another scene"


def _accuracy(board: dict[str, DecisionSummary | None], model: str) -> float | None:
    """The leaderboard's decision accuracy of ``model`` (None where it decided nothing)."""
    decision = board.get(model)
    return decision.accuracy if decision is not None else None


def evaluate(rule: str, work: Path, *, generators: list[dict[str, Any]] | None = None,
             limit: int | None = None, rounds: int = 2, variants: int = 2,
             gallery_variants: int = 2, cache_dir: Path | None = None) -> dict[str, Any]:
    """One run with decision ``rule``: a row per generator and a record per (generator, case)."""
    generators = generators if generators is not None else generator_components()
    run_dir = work / f"k{gallery_variants}-{rule}"
    # one cache for every run: the generators' loops are replayed, not redone
    spec = spec_for(run_dir, rule, generators, limit=limit, rounds=rounds, variants=variants,
                    gallery_variants=gallery_variants, cache_dir=cache_dir or work / "cache")
    started = time.perf_counter()
    result = repainter.run(spec)
    wall = time.perf_counter() - started
    gallery = WorldDataset(variants=gallery_variants)
    kinds = gallery.variant_kinds()
    by_hash = {image_sha256(item.load().image.convert("RGB")): item.id for item in gallery.items()}
    decided = [r for r in result.records if r.decision is not None]
    boards = {name: {row.model: row.decision for row in build_leaderboard(records)}
              for name, records in (("rule", decided), ("generate", _forced(decided, "generated")),
                                    ("retrieve", _forced(decided, "retrieved")))}
    cases = []
    for record in decided:
        d = record.decision
        item = _retrieved_item(run_dir, d, by_hash)
        cases.append({
            "model": record.model, "case_id": record.case_id, "category": record.category,
            "choice": d.choice, "truly_closer": d.truly_closer, "correct": d.correct,
            "generated_value": d.generated_value, "retrieved_value": d.retrieved_value,
            "generated_f1": record.best.scores.get("object_f1"),
            "retrieved_f1": (d.retrieved.scores or {}).get("object_f1"),
            "retrieved_item": item, "relation": _relation(record.case_id, item, kinds),
        })
    rows = []
    for component in generators:
        model = component["label"]
        mine = [c for c in cases if c["model"] == model]
        lead = boards["rule"].get(model) or DecisionSummary(cases=0)
        rows.append({
            "rule": rule, "model": model, "cases": lead.cases,
            "retrieved_share": lead.retrieved_share,
            "ties": sum(c["truly_closer"] == "tie" for c in mine),
            "unknown": sum(c["truly_closer"] is None for c in mine),
            "judged": lead.judged_cases,
            "accuracy": lead.accuracy,
            "always_generate": _accuracy(boards["generate"], model),
            "always_retrieve": _accuracy(boards["retrieve"], model),
            "truth_retrieved": sum(c["truly_closer"] == "retrieved" for c in mine),
            "truth_generated": sum(c["truly_closer"] == "generated" for c in mine),
        })
    return {"rule": rule, "gallery_variants": gallery_variants, "rows": rows, "cases": cases,
            "wall_s": round(wall, 1), "failed": len(result.failed), "run_dir": str(run_dir)}


# -- report ------------------------------------------------------------------------------------

NOTES_MARK = "<!-- notes: hand-written below this line, kept when the file is regenerated -->"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


def decision_table(results: list[dict[str, Any]]) -> list[str]:
    out = ["| generator | rule | cases | retrieved chosen | GT: generated closer / retrieved "
           "closer / tie | judged | **decision accuracy** | always generate | always retrieve |",
           "|---|---|---:|---:|---|---:|---:|---:|---:|"]
    for label, _, _ in GENERATORS:
        for result in results:
            for r in (r for r in result["rows"] if r["model"] == label):
                out.append(
                    f"| {label} | {r['rule']} | {r['cases']} | {_pct(r['retrieved_share'])} | "
                    f"{r['truth_generated']} / {r['truth_retrieved']} / {r['ties']} | "
                    f"{r['judged']} | **{_pct(r['accuracy'])}** | {_pct(r['always_generate'])} | "
                    f"{_pct(r['always_retrieve'])} |")
    return out


def pooled(result: dict[str, Any]) -> dict[str, Any]:
    """One run's judged cases of every generator pooled: accuracy over all of them."""
    cases = result["cases"]
    judged = [c for c in cases if c["correct"] is not None]
    return {"rule": result["rule"], "gallery_variants": result["gallery_variants"],
            "cases": len(cases), "judged": len(judged),
            "retrieved_share": _mean([float(c["choice"] == "retrieved") for c in cases]),
            "accuracy": _mean([float(c["correct"]) for c in judged]),
            "always_generate": _mean([float(c["truly_closer"] == "generated") for c in judged]),
            "always_retrieve": _mean([float(c["truly_closer"] == "retrieved") for c in judged])}


def pooled_table(results: list[dict[str, Any]]) -> list[str]:
    out = ["| gallery variants K | rule | cases | retrieved chosen | judged | **decision accuracy** "
           "| always generate | always retrieve |", "|---:|---|---:|---:|---:|---:|---:|---:|"]
    for p in (pooled(r) for r in results):
        out.append(f"| {p['gallery_variants']} | {p['rule']} | {p['cases']} | "
                   f"{_pct(p['retrieved_share'])} | {p['judged']} | **{_pct(p['accuracy'])}** | "
                   f"{_pct(p['always_generate'])} | {_pct(p['always_retrieve'])} |")
    return out


def _values(results: list[dict[str, Any]], rule: str, model: str, side: str) -> str:
    values = [c[f"{side}_value"] for r in results if r["rule"] == rule
              for c in r["cases"] if c["model"] == model]
    return _num(_mean(values), 3 if rule == "metric" else 2)


def retrieval_table(results: list[dict[str, Any]]) -> list[str]:
    """Per generator: what retrieval returned, and how the two images fare by each measure."""
    out = ["| generator | object F1 generated / retrieved | selection generated / retrieved | "
           "judge (2-10) generated / retrieved | retrieved item (count) |", "|---|---|---|---|---|"]
    cases = results[0]["cases"] if results else []
    for label, _, _ in GENERATORS:
        mine = [c for c in cases if c["model"] == label]
        if not mine:
            continue
        kinds = Counter(c["relation"] for c in mine)
        out.append(f"| {label} | {_num(_mean([c['generated_f1'] for c in mine]))} / "
                   f"{_num(_mean([c['retrieved_f1'] for c in mine]))} | "
                   f"{_values(results, 'metric', label, 'generated')} / "
                   f"{_values(results, 'metric', label, 'retrieved')} | "
                   f"{_values(results, 'mllm', label, 'generated')} / "
                   f"{_values(results, 'mllm', label, 'retrieved')} | "
                   + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items(), key=lambda kv: -kv[1]))
                   + " |")
    return out


def confusion_table(results: list[dict[str, Any]]) -> list[str]:
    """Per rule: choice x ground truth, over every generator's cases."""
    out = ["| rule | chose generated, GT generated | chose generated, GT retrieved | chose "
           "retrieved, GT retrieved | chose retrieved, GT generated | chose generated, GT tie | "
           "chose retrieved, GT tie | rule values equal |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for result in results:
        count = Counter((c["choice"], c["truly_closer"]) for c in result["cases"])
        equal = sum(c["generated_value"] == c["retrieved_value"] for c in result["cases"])
        out.append(f"| {result['rule']} | {count['generated', 'generated']} | "
                   f"{count['generated', 'retrieved']} | {count['retrieved', 'retrieved']} | "
                   f"{count['retrieved', 'generated']} | {count['generated', 'tie']} | "
                   f"{count['retrieved', 'tie']} | {equal} |")
    return out


MARGINS = {"metric": (-0.02, 0.0, 0.02, 0.05, 0.1), "mllm": (-1.0, 0.0, 1.0, 2.0)}


def with_margin(result: dict[str, Any], margin: float) -> dict[str, Any]:
    """Share retrieved and accuracy had the rule used ``margin``, from the recorded rule values.

    The choice is the node's (retrieved only if its value exceeds the generated one by more
    than the margin); nothing is re-run. Accuracy is over the judged cases, pooled
    (``accuracy``) and per generator (``per_model``).
    """
    def right(case: dict[str, Any]) -> float:
        wins = case["retrieved_value"] > case["generated_value"] + margin
        return float((case["truly_closer"] == "retrieved") == wins)

    judged = [c for c in result["cases"] if c["correct"] is not None]
    return {"retrieved_share": _mean([float(c["retrieved_value"] > c["generated_value"] + margin)
                                      for c in result["cases"]]),
            "accuracy": _mean([right(c) for c in judged]),
            "per_model": {label: _mean([right(c) for c in judged if c["model"] == label])
                          for label, _, _ in GENERATORS}}


def margin_table(results: list[dict[str, Any]]) -> list[str]:
    out = ["| rule | margin | retrieved chosen | accuracy (judged cases) | "
           + " | ".join(label for label, _, _ in GENERATORS) + " |",
           "|---|---:|---:|---:|" + "---:|" * len(GENERATORS)]
    for result in results:
        for margin in MARGINS[result["rule"]]:
            m = with_margin(result, margin)
            out.append(f"| {result['rule']} | {margin:+g} | {_pct(m['retrieved_share'])} | "
                       f"{_pct(m['accuracy'])} | "
                       + " | ".join(_pct(m["per_model"][label]) for label, _, _ in GENERATORS)
                       + " |")
    return out


def render(results: list[dict[str, Any]], sweep: list[dict[str, Any]], params: dict[str, Any],
           command: str, total_wall: float) -> str:
    """The report: ``results`` (one run per rule at the main K) in full, ``sweep`` pooled."""
    machine = (f"{platform.platform()}, {platform.machine()}, Python "
               f"{platform.python_version()}, {os.cpu_count()} CPUs")
    runs = [*results, *sweep]
    k = params["gallery_variants"]
    lines = [
        "# Retrieve or generate: decisions against the ground truth",
        "",
        "Reproduce (regenerates this file; the notes at the end are kept):",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Machine: {machine}. Generated {datetime.now(UTC).isoformat(timespec='seconds')} in "
        f"{total_wall:.0f} s (runs: "
        + ", ".join(f"K={r['gallery_variants']} `{r['rule']}` {r['wall_s']:.0f} s" for r in runs)
        + f"; failed cases: {sum(r['failed'] for r in runs)}).",
        "",
        "Setting: the built-in world's "
        f"{params['limit'] or 32} scenes as references; loop {params['rounds']} rounds x "
        f"{params['variants']} variants, `scene-analyst` MLLM, selection `ssim` + "
        "`color_histogram` (0.5 / 0.5), `object_f1` scored. Retriever: `{name: retrieval, "
        f"params: {{gallery: {{name: world, params: {{variants: {k}}}}}, method: scene}}}}` "
        "(leave-one-out: a case never retrieves its own scene, but may retrieve one of its K "
        "near variants, each of which changes one thing: an object moved / recoloured / "
        "reshaped / resized, two colours swapped, the background, an object dropped / added). "
        "The decision node lets the retriever answer each generator's best prompt and picks by "
        "`rule: metric` (selection score) or `rule: mllm` (the judge's aesthetic + semantic, "
        "2-10), margin 0: the retrieved image wins only when strictly better.",
        "",
        "Generators (the `procedural` backend; `ignore` makes it draw that attribute at random):",
        "",
        *[f"* `{label}`: `ignore: {json.dumps(ignore)}` - {what}" for label, ignore, what in GENERATORS],
        "",
        "Columns: *GT* is which image has the higher object F1 against the ground-truth scene "
        "(`decision.truly_closer`; object F1 compares objects' shape, colour, place and size, "
        "not the background or style); *judged* the cases where the two differ; *decision "
        "accuracy* the leaderboard's `decision_accuracy` (choice = GT closer, over judged "
        "cases); *always generate / retrieve* the same column with the choice forced.",
        "",
        f"## Decision accuracy per generator and rule (K = {k})",
        "",
        *decision_table(results),
        "",
        "## Pooled over the generators, by gallery size",
        "",
        "K near variants of each scene in the gallery (K = 0: the plain 32-scene world).",
        "",
        *pooled_table(sorted(runs, key=lambda r: (r["gallery_variants"], r["rule"]))),
        "",
        f"## Choice against the ground truth (all generators, K = {k})",
        "",
        *confusion_table(results),
        "",
        f"## What retrieval returned and how each measure sees it (K = {k})",
        "",
        "Means over the cases; *retrieved item* is the gallery item whose pixels the retrieved "
        "image has. Retrieval answers each generator's own best prompt, so the items can differ "
        "a little between generators.",
        "",
        *retrieval_table(results),
        "",
        f"## What another margin would change (K = {k}, recomputed, not re-run)",
        "",
        "The same recorded rule values with another `decision.margin`: pooled accuracy over the "
        "judged cases and per generator (margin 0 is the table above).",
        "",
        *margin_table(results),
        "",
        NOTES_MARK,
    ]
    return "\n".join(lines) + "\n"


def write_report(path: Path, text: str) -> None:
    """Write ``text``, keeping any hand-written notes below the notes marker of the old file."""
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if NOTES_MARK in old:
            text = text.split(NOTES_MARK, 1)[0] + NOTES_MARK + old.split(NOTES_MARK, 1)[1]
    path.write_text(text, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=None, help="references (default: all 32)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--variants", type=int, default=2, help="prompt variants per round")
    parser.add_argument("--gallery-variants", type=int, default=2,
                        help="near variants of each scene in the retrieval gallery (K)")
    parser.add_argument("--sweep", type=int, nargs="*", default=[0, 4],
                        help="other K, reported pooled only")
    parser.add_argument("--rules", nargs="+", choices=RULES, default=list(RULES))
    parser.add_argument("--out", type=Path, default=ROOT / "RETRIEVAL.md")
    parser.add_argument("--json", type=Path, default=None, help="also write rows and cases as JSON")
    parser.add_argument("--keep", type=Path, default=None, help="keep the run folders here")
    args = parser.parse_args(argv)
    command = "python bench/retrieval_eval.py" + "".join(
        f" {shlex.quote(a)}" for a in (argv if argv is not None else sys.argv[1:]))
    params = {"limit": args.limit, "rounds": args.rounds, "variants": args.variants,
              "gallery_variants": args.gallery_variants}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="repainter-retrieval-") as tmp:
        work = args.keep or Path(tmp)
        results, sweep = [], []
        for k in [args.gallery_variants, *(k for k in args.sweep if k != args.gallery_variants)]:
            for rule in args.rules:
                result = evaluate(rule, work, **{**params, "gallery_variants": k})
                (results if k == args.gallery_variants else sweep).append(result)
                for r in result["rows"]:
                    print(f"K={k} {rule:6s} {r['model']:18s} cases {r['cases']:3d} retrieved "
                          f"{_pct(r['retrieved_share']):>4s} ties {r['ties']:3d} accuracy "
                          f"{_pct(r['accuracy']):>4s} (always generate "
                          f"{_pct(r['always_generate'])}, always retrieve "
                          f"{_pct(r['always_retrieve'])})", flush=True)
    total = time.perf_counter() - started
    write_report(args.out, render(results, sweep, params, command, total))
    if args.json:
        args.json.write_text(json.dumps([*results, *sweep], indent=2, default=str))
    print(f"wrote {args.out} ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
