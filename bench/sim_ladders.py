"""Which weight-free selection score ranks simulated T2I models in their true order? (issue 11)

    python bench/sim_ladders.py                     # 16 scenes, 3 seeds, 3 x 3 loop -> SIM_LADDERS.md
    python bench/sim_ladders.py --scenes 4 --seeds 0 --rounds 1 --out /tmp/SIM.md   # smoke check

For each ladder of :func:`repainter.bench.sim.zoo.ladders` (two nested ladders, one failure rate raised
per rung, and the non-nested zoo ordered by :func:`~repainter.bench.sim.zoo.true_quality`) and each
seed, the real graph runs (``repainter.run``): the world's scenes (a stratified subset,
:func:`repainter.bench.sim.zoo.stratified_scenes`) as references, the ladder's ``sim`` models, the ``sim-describer``,
the spec's default selection score; every candidate is scored by every candidate selection score.

* **tau** (:func:`scipy.stats.kendalltau`) between a score's leaderboard order (mean over cases
  of the score at the candidate it selects) and the true order, mean over seeds. The loop ran
  with the spec's default selection (``RunSpec().selection``); for another score the best
  candidate is re-picked among the stored ones (``repainter rescore --reselect`` does the same),
  so its critiques followed the default's choices.
* **separation**: adjacent rungs compared on the final ``scene_truth`` with the paired sign-flip
  test (:func:`repainter.report.stats.sign_flip_p_value`, p < 0.05), per seed and pooled.
* **loop vs one-shot vs best-of-N**: ``scene_truth`` of the first render of the first prompt
  (the one-shot description at the describer's one resolution, one render), of the best of
  N = rounds x variants renders of that prompt with N seeds picked by the default selection (no
  feedback, the loop's render budget), and of the loop's final pick; paired sign-flip p-values
  over cases x seeds. A quick check: ``repainter meta-eval`` holds the formal baselines.
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import kendalltau

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import repainter  # noqa: E402
from repainter.backends.base import Reference  # noqa: E402
from repainter.bench.sim.zoo import ladders, stratified_scenes, true_quality  # noqa: E402
from repainter.images import load_image  # noqa: E402
from repainter.records import dump_record  # noqa: E402
from repainter.registry import METRICS  # noqa: E402
from repainter.report.stats import sign_flip_p_value  # noqa: E402
from repainter.spec import RunSpec, build_spec  # noqa: E402
from repainter.store import RunStore  # noqa: E402

#: Candidate weight-free selection scores: label -> {metric: weight} over stored metric scores.
CANDIDATES = {
    "ssim+color_histogram": {"ssim": 0.5, "color_histogram": 0.5},
    "ssim": {"ssim": 1.0},
    "color_histogram": {"color_histogram": 1.0},
    "psnr": {"psnr": 1.0},
    "lab_layout": {"lab_layout": 1.0},
    "texture_energy": {"texture_energy": 1.0},
    "lab_layout+texture_energy 1:1": {"lab_layout": 1.0, "texture_energy": 1.0},
    "lab_layout+texture_energy 1:2": {"lab_layout": 1.0, "texture_energy": 2.0},
    "lab_layout+texture_energy 3:1": {"lab_layout": 3.0, "texture_energy": 1.0},
    "region_match": {"region_match": 1.0},
    "region_match+texture_energy 1:1": {"region_match": 1.0, "texture_energy": 1.0},
}
#: Metrics scored post hoc on the stored images (not in the run's spec).
EXTRA_METRICS = ("psnr",)


def run_ladder(ladder, seed: int, scenes: Path, out: Path, rounds: int, variants: int) -> list[dict]:
    spec = build_spec({
        "name": f"{ladder.name}-s{seed}", "output_dir": str(out / f"{ladder.name}-s{seed}"),
        "dataset": {"name": "world", "params": {"path": str(scenes)}},
        "t2i": [dict(m) for m in ladder.models], "seed": seed, "judge": False,
        "loop": {"rounds": rounds, "variants": variants},
    })
    repainter.run(spec)
    store = RunStore(spec.run_dir)
    # plain copies: the analysis below annotates them (extra metrics, best-of-n truth)
    records = [dump_record(r) for r in store.records() if r.done]
    extra = {name: METRICS.create(name) for name in EXTRA_METRICS}
    best_of_n(records, ladder, store.root, rounds * variants)
    for record in records:
        reference = load_image(store.root / record["reference"])
        candidates = [c for rnd in record["rounds"] for c in rnd["candidates"] if c.get("image")]
        images = [load_image(store.root / c["image"]) for c in candidates]
        for name, metric in extra.items():
            prepared = metric.prepare(Reference(record["case_id"], reference))
            for c, v in zip(candidates, metric.score(prepared, images), strict=True):
                c["scores"][name] = metric.similarity(float(v))
    return records


def best_of_n(records: list[dict], ladder, store_root: Path, n: int) -> None:
    """Adds ``best_of_n_truth`` to each record: ``scene_truth`` of the best (by the default
    selection) of n renders of the loop's first prompt with n seeds, no feedback, equal budget."""
    from repainter.bench.sim.t2i import SimT2I
    from repainter.bench.sim.truth import scene_truth

    params = {m["label"]: m["params"] for m in ladder.models}
    weights = dict(RunSpec().selection)
    metrics = {name: METRICS.create(name) for name in weights}
    for record in records:
        reference = Reference(record["case_id"], load_image(store_root / record["reference"]))
        renders = SimT2I(**params[record["model"]]).generate(
            [record["initial_prompt"]] * n, [1_000_003 * k + 17 for k in range(n)])
        values = np.zeros(n)
        for name, w in weights.items():
            metric = metrics[name]
            scores = metric.score(metric.prepare(reference), [r.image for r in renders])
            values += w * np.array([metric.similarity(v) for v in scores])
        best = renders[int(np.argmax(values))]
        record["best_of_n_truth"] = scene_truth(record["ground_truth"], best.metadata["drawn_scene"])


def _pick(record: dict, weights: dict[str, float]) -> dict:
    candidates = [c for rnd in record["rounds"] for c in rnd["candidates"] if c.get("scores")]
    return max(candidates, key=lambda c: sum(w * c["scores"][m] for m, w in weights.items()))


def _value(c: dict, weights: dict[str, float]) -> float:
    return sum(w * c["scores"][m] for m, w in weights.items()) / sum(weights.values())


def analyse_ladder(ladder, records_by_seed: dict[int, list[dict]]) -> dict[str, Any]:
    labels = [m["label"] for m in ladder.models]
    true_rank = list(range(len(labels)))  # best first
    out: dict[str, Any] = {"models": labels, "nested": ladder.nested,
                           "true_quality": {m["label"]: round(true_quality(m["params"]), 4)
                                            for m in ladder.models},
                           "tau": {}, "separation": {}, "means": {}, "loop": {}}
    for name, weights in {**CANDIDATES, "scene_truth (truth)": {"scene_truth": 1.0}}.items():
        taus, means = [], []
        for records in records_by_seed.values():
            by_model = {m: [r for r in records if r["model"] == m] for m in labels}
            if name.endswith("(truth)"):  # truth at the default selection's pick
                mean = [np.mean([r["best"]["scores"]["scene_truth"] for r in by_model[m]])
                        for m in labels]
            else:
                mean = [np.mean([_value(_pick(r, weights), weights) for r in by_model[m]])
                        for m in labels]
            taus.append(kendalltau(true_rank, [-v for v in mean]).statistic)
            means.append(mean)
        out["tau"][name] = {"mean": round(float(np.mean(taus)), 3),
                            "per_seed": [round(float(t), 3) for t in taus]}
        out["means"][name] = [round(float(v), 4) for v in np.mean(means, axis=0)]
    for a, b in zip(labels, labels[1:]):
        per_seed, pooled = [], []
        for records in records_by_seed.values():
            ta = {r["case_id"]: r["best"]["scores"]["scene_truth"] for r in records if r["model"] == a}
            tb = {r["case_id"]: r["best"]["scores"]["scene_truth"] for r in records if r["model"] == b}
            diffs = [ta[k] - tb[k] for k in sorted(ta.keys() & tb.keys())]
            pooled += diffs
            per_seed.append(sign_flip_p_value(diffs) if diffs else 1.0)
        p_pooled = sign_flip_p_value(pooled) if pooled else 1.0
        out["separation"][f"{a} > {b}"] = {
            "mean_diff": round(float(np.mean(pooled)), 4), "p_pooled": round(p_pooled, 5),
            "separated_pooled": bool(np.mean(pooled) > 0 and p_pooled < 0.05),
            "p_per_seed": [round(p, 4) for p in per_seed]}
    for m in labels:
        rows = [r for recs in records_by_seed.values() for r in recs if r["model"] == m]
        one_shot = [r["rounds"][0]["candidates"][0]["scores"]["scene_truth"] for r in rows]
        final = [r["best"]["scores"]["scene_truth"] for r in rows]
        best_n = [r["best_of_n_truth"] for r in rows]
        out["loop"][m] = {"one_shot": round(float(np.mean(one_shot)), 4),
                          "best_of_n": round(float(np.mean(best_n)), 4),
                          "loop_final": round(float(np.mean(final)), 4),
                          "p_loop_vs_one_shot": round(sign_flip_p_value(np.subtract(final, one_shot)), 5),
                          "p_loop_vs_best_of_n": round(sign_flip_p_value(np.subtract(final, best_n)), 5)}
    return out


def markdown(results: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = ["# Selection scores on the simulation bench (issue 11)", "",
             f"Command: `{meta['command']}` ({meta['scenes']} scenes, seeds {meta['seeds']}, "
             f"{meta['rounds']} x {meta['variants']} loop, {meta['seconds']:.0f} s on "
             f"{meta['machine']}). Generated by bench/sim_ladders.py; do not edit by hand.", ""]
    for name, res in results.items():
        lines += [f"## {name} ({'nested' if res['nested'] else 'non-nested'})", "",
                  "True order (best first) and true quality (oracle prompts): "
                  + ", ".join(f"{m} {q}" for m, q in res["true_quality"].items()), "",
                  "| score | tau (mean over seeds) | tau per seed | leaderboard means (true order) |",
                  "|---|---|---|---|"]
        for score, tau in res["tau"].items():
            lines.append(f"| {score} | {tau['mean']} | {tau['per_seed']} | {res['means'][score]} |")
        lines += ["", "| adjacent rungs | mean scene_truth diff | p pooled | separated | p per seed |",
                  "|---|---|---|---|---|"]
        for pair, sep in res["separation"].items():
            lines.append(f"| {pair} | {sep['mean_diff']} | {sep['p_pooled']} | "
                         f"{'yes' if sep['separated_pooled'] else 'no'} | {sep['p_per_seed']} |")
        lines += ["", "| model | scene_truth one-shot (1 render) | best-of-N, no feedback | loop final "
                  "| p loop vs one-shot | p loop vs best-of-N |", "|---|---|---|---|---|---|"]
        for m, row in res["loop"].items():
            lines.append(f"| {m} | {row['one_shot']} | {row['best_of_n']} | {row['loop_final']} | "
                         f"{row['p_loop_vs_one_shot']} | {row['p_loop_vs_best_of_n']} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", type=int, default=3)
    parser.add_argument("--ladders", nargs="+", default=None)
    parser.add_argument("--work", default="runs/sim-ladders")
    parser.add_argument("--out", default=str(ROOT / "SIM_LADDERS.md"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    scenes = stratified_scenes(args.scenes, work / "scenes.jsonl")
    default = RunSpec()
    if dict(default.selection) not in CANDIDATES.values():
        CANDIDATES["default selection"] = dict(default.selection)
    results = {}
    for name, ladder in ladders().items():
        if args.ladders and name not in args.ladders:
            continue
        by_seed = {seed: run_ladder(ladder, seed, scenes, work, args.rounds, args.variants)
                   for seed in args.seeds}
        results[name] = analyse_ladder(ladder, by_seed)
        print(json.dumps({name: results[name]["tau"]}, indent=None), flush=True)
    meta = {"command": "python bench/sim_ladders.py " + shlex.join(sys.argv[1:] if argv is None else argv),
            "scenes": args.scenes, "seeds": args.seeds, "rounds": args.rounds,
            "variants": args.variants, "seconds": time.perf_counter() - started,
            "machine": f"{platform.machine()} {platform.python_version()}",
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "default_selection": dict(default.selection)}
    Path(args.out).write_text(markdown(results, meta))
    Path(args.out).with_suffix(".json").write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    print(f"wrote {args.out} in {meta['seconds']:.0f} s")


if __name__ == "__main__":
    main()
