"""Rank describers, and stop spending once the ranking is settled (issue 17) -> ADAPTIVE.md.

    python bench/adaptive_eval.py                        # the numbers in ADAPTIVE.md
    python bench/adaptive_eval.py --scenes 8 --sims 20 --out /tmp/A.md   # smoke check

**(a) Describer ranking.** An MLLM x T2I grid (``repainter.run`` with an ``mllm`` list, the
grid code path) of ``sim-describer`` s of decreasing perception quality (lower ``resolution``,
more ``noise``) with the default ``sim`` T2I model fixed, on the world's scenes, per seed; the
MLLM ranking (mean final ``scene_truth``) against the true describer order (Kendall tau).

**(b) Adaptive runs.** One full run of the ``zoo`` ladder (:func:`repainter.bench.sim.zoo.ladders`) on
the world's scenes and 3 near variants of each (128 references) stores every model's per-case
final ``scene_truth``. Each simulated comparison draws ``--draws`` references with replacement
from these 128 (i.i.d. from a population whose true means are the full-dataset means) and runs
:func:`repainter.adaptive.adaptive_loop` (the code path of ``budget: {mode: adaptive}``) on them.
A decided pair is an error when its direction disagrees with the full-dataset mean difference.
Scenarios: the whole zoo (every pair), two clearly separated models, and a sharp null (two
models' scores swapped at random per reference: true mean difference exactly 0, so every
decision is an error).
"""

from __future__ import annotations

import argparse
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path
from statistics import fmean

import numpy as np
from scipy.stats import kendalltau

from repainter import run
from repainter.adaptive import adaptive_loop
from repainter.bench.sim.zoo import ladders
from repainter.records import CaseRecord
from repainter.spec import BudgetSpec, build_spec

#: Describers best -> worst: (label, resolution, noise). sim-describer's default is 224 / 1.0.
DESCRIBERS = [("d0-224px-noise0", 224, 0.0), ("d1-224px-noise1", 224, 1.0),
              ("d2-96px-noise1.5", 96, 1.5), ("d3-64px-noise2.5", 64, 2.5),
              ("d4-40px-noise4", 40, 4.0)]
TRUTH = "scene_truth"


def base_spec(folder: Path, **values) -> dict:
    return {"name": "bench", "output_dir": str(folder), "metrics": [TRUTH],
            "selection": {TRUTH: 1.0}, "judge": False, **values}


def describer_ranking(scenes: int, seeds: list[int], rounds: int, variants: int, tmp: Path):
    mllms = [{"name": "sim-describer", "label": label,
              "params": {"resolution": res, "noise": noise}} for label, res, noise in DESCRIBERS]
    truth = [label for label, _, _ in DESCRIBERS]
    rows = []
    for seed in seeds:
        spec = build_spec(base_spec(tmp / f"describers-{seed}", mllm=mllms, t2i=["sim"],
                                    seed=seed, dataset={"limit": scenes},
                                    loop={"rounds": rounds, "variants": variants}))
        result = run(spec)
        means = {row.mllm: row.metrics[TRUTH].mean for row in result.leaderboard}
        tau = kendalltau([means[m] for m in truth], list(range(len(truth), 0, -1))).statistic
        rows.append((seed, tau, [round(means[m], 4) for m in truth]))
    return rows


def zoo_scores(scenes_variants: int, rounds: int, variants: int, tmp: Path):
    zoo = ladders()["zoo"]
    spec = build_spec(base_spec(tmp / "zoo", t2i=list(zoo.models),
                                dataset={"params": {"variants": scenes_variants}},
                                loop={"rounds": rounds, "variants": variants}))
    result = run(spec)
    models = [m["label"] for m in zoo.models]  # true order, best first
    scores = {m: {} for m in models}
    for r in result.records:
        if r.get("status") == "done":
            scores[r.model][r.case_id] = r.final_scores[TRUTH]
    cases = sorted(set.intersection(*(set(s) for s in scores.values())))
    return models, np.array([[scores[m][c] for c in cases] for m in models])


def simulate(matrix: np.ndarray, models: list[str], sims: int, draws: int, budget: BudgetSpec,
             seed0: int, swap_null: bool = False):
    """Adaptive comparisons on i.i.d. draws of references; per-simulation outcomes."""
    full_means = matrix.mean(axis=1)
    outcomes = []
    for sim in range(sims):
        rng = np.random.default_rng([seed0, sim])
        picks = rng.integers(0, matrix.shape[1], size=draws)
        drawn = matrix[:, picks].copy()
        if swap_null:  # exchange the two models' scores at random: mean difference exactly 0
            swap = rng.random(draws) < 0.5
            drawn[:, swap] = drawn[::-1, swap]
        ids = [f"r{k:04d}" for k in range(draws)]
        records = [CaseRecord(model=m, case_id=ids[k], status="done",
                              final_scores={TRUTH: float(drawn[i, k])})
                   for i, m in enumerate(models) for k in range(draws)]

        def run_batch(batch_ids, records=records):
            wanted = set(batch_ids)
            return [r for r in records if r.case_id in wanted], models, None

        _, summary = adaptive_loop(ids, budget, run_batch)
        used = summary["references_used"]
        index = {m: i for i, m in enumerate(models)}
        decided = [p for p in summary["pairs"] if p["decision"]]
        wrong = 0
        for p in decided:
            truth_sign = 0.0 if swap_null else np.sign(full_means[index[p["model_a"]]]
                                                       - full_means[index[p["model_b"]]])
            said = 1.0 if p["decision"] == "a>b" else -1.0
            wrong += said != truth_sign
        adaptive_means = drawn[:, :used].mean(axis=1)
        tau = (kendalltau(adaptive_means, full_means).statistic if len(models) > 2 else
               float(np.sign(adaptive_means[0] - adaptive_means[1])
                     == np.sign(full_means[0] - full_means[1])))
        outcomes.append({"used": used, "pairs": len(summary["pairs"]), "decided": len(decided),
                         "wrong": wrong, "all_decided": summary["all_pairs_decided"],
                         "tau": tau})
    return outcomes


def summarise(name: str, outcomes: list[dict], draws: int) -> dict:
    decided = sum(o["decided"] for o in outcomes)
    wrong = sum(o["wrong"] for o in outcomes)
    return {"scenario": name, "comparisons": len(outcomes),
            "pairs decided / tested": f"{decided} / {sum(o['pairs'] for o in outcomes)}",
            "decided-pair error rate": round(wrong / decided, 4) if decided else 0.0,
            "comparisons with any wrong decision": round(
                sum(o["wrong"] > 0 for o in outcomes) / len(outcomes), 4),
            "all pairs decided": round(fmean(o["all_decided"] for o in outcomes), 3),
            f"references used (mean of {draws})": round(fmean(o["used"] for o in outcomes), 1),
            "references saved": f"{100 * (1 - fmean(o['used'] for o in outcomes) / draws):.1f}%",
            "agreement with full ranking": round(fmean(o["tau"] for o in outcomes), 3)}


def table(rows: list[dict]) -> list[str]:
    keys = list(rows[0])
    return (["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            + ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=32, help="world scenes for (a)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--world-variants", type=int, default=3, help="near variants for (b)")
    parser.add_argument("--sims", type=int, default=100, help="simulated comparisons per scenario")
    parser.add_argument("--draws", type=int, default=128, help="references per comparison")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--out", default="ADAPTIVE.md")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        describers = describer_ranking(args.scenes, args.seeds, 2, 2, tmp)
        models, matrix = zoo_scores(args.world_variants, 1, 2, tmp)
    budget = BudgetSpec(mode="adaptive", min_cases=10, batch=10, max_cases=args.draws,
                        alpha=args.alpha, metric=TRUTH)
    means = matrix.mean(axis=1)
    apart = [0, len(models) - 1]  # the best and the worst of the zoo: clearly separated
    scenarios = [
        ("zoo, every pair", simulate(matrix, models, args.sims, args.draws, budget, 1)),
        (f"clearly separated: {models[0]} vs {models[-1]}",
         simulate(matrix[apart], [models[i] for i in apart], args.sims, args.draws, budget, 2)),
        (f"sharp null: {models[0]} / {models[1]} swapped at random",
         simulate(matrix[:2], models[:2], args.sims, args.draws, budget, 3, swap_null=True)),
    ]
    rows = [summarise(name, out, args.draws) for name, out in scenarios]
    total = sum(len(out) for _, out in scenarios)
    seconds = time.perf_counter() - started
    command = "python bench/adaptive_eval.py " + shlex.join(sys.argv[1:])
    lines = [
        "# Describer ranking and adaptive evaluation on the simulation bench (issue 17)", "",
        f"Command: `{command}` ({seconds:.0f} s on {platform.machine()} "
        f"{platform.python_version()}). Generated by bench/adaptive_eval.py; do not edit by "
        "hand. Method: see the script's docstring and `repainter/adaptive.py`.", "",
        "## (a) Describer ranking (MLLM x T2I grid, T2I `sim` fixed)", "",
        f"{args.scenes} world scenes, 2 rounds x 2 variants, selection = {TRUTH}. True order "
        "(best first): " + ", ".join(f"`{d[0]}`" for d in DESCRIBERS) + ".", "",
        "| seed | Kendall tau vs true order | mean final scene_truth (true order) |",
        "|---|---|---|",
        *[f"| {s} | {tau:.3f} | {m} |" for s, tau, m in describers], "",
        f"Mean tau: {fmean(t for _, t, _ in describers):.3f}.", "",
        "## (b) Adaptive runs (hedged capital process, Waudby-Smith & Ramdas 2024)", "",
        f"Zoo run: {matrix.shape[1]} references (world + {args.world_variants} near variants "
        f"each), 1 round x 2 variants; full-dataset means (true order): "
        + ", ".join(f"{m} {v:.4f}" for m, v in zip(models, means, strict=True)) + ".", "",
        f"{total} simulated comparisons: each draws {args.draws} references i.i.d. from those, "
        f"budget min 10, batch 10, max {args.draws}, alpha {args.alpha}.", "",
        *table(rows), "",
        f"Nominal alpha {args.alpha}: the decided-pair error rate must stay at or below it.",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
