"""Adaptive (sequential) evaluation: stop adding references once every ranking step is settled.

References run in a fixed, seeded random order, ``budget.batch`` at a time (at least
``budget.min_cases``, at most ``budget.max_cases``). After each batch, every pair of interest
(every two T2I models; in an MLLM x T2I grid, every two MLLMs for a fixed T2I and every two T2I
models for a fixed MLLM) is tested with an anytime-valid sequential test, so looking after
every batch and stopping when it says so keeps the error rate of a "decided" pair at or below
``alpha`` (Ville's inequality), unlike re-running a fixed-n test after each batch.

The test is the **hedged capital process** of Waudby-Smith & Ramdas (2024), "Estimating means of
bounded random variables by betting", JRSS-B 86(1):1-27 (arXiv:2010.09686), Sec. 4, applied to
the paired differences: for references i = 1, 2, ... (in the run's order) where both models
finished, ``x_i = (clip(a_i - b_i, -1, 1) + 1) / 2`` lies in [0, 1] and "no difference" is the
null mean ``m = 1/2``. The wealth is ``max(theta K+_t, (1 - theta) K-_t)`` with
``K+-_t = prod_i (1 +- lambda_i (x_i - m))``; it follows ``betting_mart`` in the authors'
``confseq`` repository (``src/confseq/betting.py``) with its ``hedged_cs`` defaults: theta 1/2,
bets truncated at ``trunc_scale / m`` and ``trunc_scale / (1 - m)`` with trunc_scale 1/2, and the
predictable plug-in empirical-Bernstein bets of its ``lambda_predmix_eb``
(``src/confseq/betting_strategies.py``): ``lambda_t = sqrt(2 log(1/alpha) / (t log(1 + t)
sigma2_{t-1}))`` with prior mean 1/2, prior variance 1/4 and one pseudo-observation. A pair is
decided once the wealth reaches ``1/alpha``; its direction is the side whose capital grew.

Stopping decides only how many references run: a reference that ran keeps exactly what it
computed, and since the wealth is a function of the ordered differences, it is recomputed from
the stored records on resume; a larger ``max_cases`` continues where the run stopped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

import numpy as np

from repainter.report.adaptive import adaptive_markdown
from repainter.spec import BudgetSpec, RunSpec


def plug_in_bets(x: np.ndarray, alpha: float, prior_mean: float = 0.5,
                 prior_variance: float = 0.25, fake_obs: int = 1) -> np.ndarray:
    """Predictable plug-in empirical-Bernstein bets: lambda_t uses x_1..x_{t-1} only (as
    ``lambda_predmix_eb`` in confseq's ``src/confseq/betting_strategies.py``, ``fixed_n=None``).

    >>> plug_in_bets(np.array([0.5, 0.5]), 0.05).round(3).tolist()
    [5.88, 4.671]
    """
    t = np.arange(1, len(x) + 1)
    mu = (fake_obs * prior_mean + np.cumsum(x)) / (t + fake_obs)
    sigma2 = (fake_obs * prior_variance + np.cumsum((x - mu) ** 2)) / (t + fake_obs)
    sigma2_before = np.append(prior_variance, sigma2[:-1])
    with np.errstate(divide="ignore", invalid="ignore"):
        bets = np.sqrt(2 * math.log(1 / alpha) / (t * np.log(1 + t) * sigma2_before))
    return np.nan_to_num(bets, nan=0.0, posinf=0.0)


def hedged_wealth(differences: Sequence[float], alpha: float, theta: float = 0.5,
                  trunc_scale: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """The positive and negative capital processes of the paired ``differences`` (each in
    [-1, 1]) against "mean difference 0"; the hedged wealth is their theta-weighted maximum.

    >>> up, down = hedged_wealth([0.3] * 30, 0.05)
    >>> bool(0.5 * up[-1] >= 20), bool(down[-1] < 1)
    (True, True)
    """
    x = (np.clip(np.asarray(differences, dtype=np.float64), -1.0, 1.0) + 1.0) / 2.0
    m = 0.5
    bets = plug_in_bets(x, alpha)
    positive = np.minimum(bets, trunc_scale / m)
    negative = np.minimum(bets, trunc_scale / (1 - m))
    return np.cumprod(1 + positive * (x - m)), np.cumprod(1 - negative * (x - m))


@dataclass(frozen=True)
class PairDecision:
    model_a: str
    model_b: str
    #: References both models finished, in run order.
    n: int
    #: "a>b", "b>a" or None (undecided).
    decision: str | None
    #: References (pairs finished) after which the wealth first reached 1/alpha.
    decided_after: int | None
    wealth: float

    def as_dict(self) -> dict[str, Any]:
        return {"model_a": self.model_a, "model_b": self.model_b, "n": self.n,
                "decision": self.decision, "decided_after": self.decided_after,
                "wealth": self.wealth}


def sequential_decision(model_a: str, model_b: str, differences: Sequence[float], alpha: float,
                        theta: float = 0.5) -> PairDecision:
    """Decide ``a`` vs ``b`` from paired differences in run order, anytime-valid at ``alpha``.

    >>> sequential_decision("a", "b", [0.2] * 40, 0.05).decision
    'a>b'
    >>> sequential_decision("a", "b", [0.0] * 40, 0.05).decision is None
    True
    """
    if len(differences) == 0:
        return PairDecision(model_a, model_b, 0, None, None, 1.0)
    up, down = hedged_wealth(differences, alpha, theta)
    wealth = np.maximum(theta * up, (1 - theta) * down)
    crossed = np.flatnonzero(wealth >= 1 / alpha)
    if crossed.size == 0:
        return PairDecision(model_a, model_b, len(differences), None, None, float(wealth[-1]))
    first = int(crossed[0])
    direction = "a>b" if theta * up[first] >= (1 - theta) * down[first] else "b>a"
    return PairDecision(model_a, model_b, len(differences), direction, first + 1,
                        float(wealth[first]))


def pairs_of_interest(records: list[dict[str, Any]], models: list[str]) -> list[tuple[str, str]]:
    """Every two models; in a grid (records carry ``t2i`` and ``mllm``), only the pairs that
    share a T2I model (an MLLM ranking) or share an MLLM (a T2I ranking)."""
    axes = {r["model"]: (r.get("t2i"), r.get("mllm")) for r in records}
    pairs = []
    for a, b in combinations(models, 2):
        (ta, ma), (tb, mb) = axes.get(a, (None, None)), axes.get(b, (None, None))
        if ma is None or mb is None or ta == tb or ma == mb:
            pairs.append((a, b))
    return pairs


def paired_differences(records: list[dict[str, Any]], a: str, b: str, order: list[str],
                       metric: str) -> list[float]:
    """a - b on the references both finished, in ``order``."""
    scores: dict[str, dict[str, float]] = {a: {}, b: {}}
    for r in records:
        if r["model"] in scores and r.get("status") == "done":
            value = (r.get("final_scores") or {}).get(metric)
            if value is not None and math.isfinite(value):
                scores[r["model"]][r["case_id"]] = value
    return [scores[a][c] - scores[b][c] for c in order if c in scores[a] and c in scores[b]]


def decide_all(records: list[dict[str, Any]], models: list[str], order: list[str],
               budget: BudgetSpec) -> list[PairDecision]:
    """The sequential decision of every pair of interest over the references in ``order``."""
    return [sequential_decision(a, b, paired_differences(records, a, b, order, budget.metric),
                                budget.alpha)
            for a, b in pairs_of_interest(records, models)]


def reference_order(case_ids: list[str], seed: int) -> list[str]:
    """The fixed, seeded random order references are spent in.

    >>> reference_order(["a", "b", "c", "d"], 0) == reference_order(["a", "b", "c", "d"], 0)
    True
    """
    permutation = np.random.default_rng([seed, 17]).permutation(len(case_ids))
    return [case_ids[i] for i in permutation]


def adaptive_loop(order: list[str], budget: BudgetSpec,
                  run_batch: Callable[[list[str]], tuple[list[dict[str, Any]], list[str], Any]]
                  ) -> tuple[Any, dict[str, Any]]:
    """Spend references in ``order`` batch by batch until every pair of interest is decided.

    ``run_batch(ids)`` runs (or reuses) the references ``ids`` and returns (records, models,
    result); the loop returns the last result and the ``adaptive`` summary for run.json.
    """
    limit = min(len(order), budget.max_cases or len(order))
    used = min(budget.min_cases, limit)
    while True:
        records, models, result = run_batch(order[:used])
        decisions = decide_all(records, models, order[:used], budget)
        settled = bool(decisions) and all(d.decision for d in decisions)
        if settled or used >= limit:
            break
        used = min(used + budget.batch, limit)
    summary = {
        "method": "hedged capital process (Waudby-Smith & Ramdas 2024), predictable plug-in bets",
        "alpha": budget.alpha, "metric": budget.metric, "order_seed": None,
        "references_available": len(order), "references_limit": limit,
        "references_used": used, "stopped_early": settled and used < limit,
        "all_pairs_decided": settled,
        "references_saved": len(order) - used,
        "saved_fraction": round(1 - used / len(order), 4) if order else 0.0,
        "pairs": [d.as_dict() for d in decisions],
        "order": order[:used],
    }
    return result, summary


def run_adaptive(spec: RunSpec, on_event: Callable | None = None, *, run: Callable):
    """Run ``spec`` with its adaptive budget; returns the RunResult of the references used.

    ``run`` runs one batch of references (:func:`repainter.runner.run` with ``case_ids``, which
    calls this: passed in so that this module does not import the runner back).
    """
    from repainter.executors.prepare import selected_items
    from repainter.report.leaderboard import add_leaderboard_section
    from repainter.store import RunStore, run_folder_lock

    order = reference_order([item.id for item in selected_items(spec)], spec.seed)

    def run_batch(ids: list[str]):
        result = run(spec, on_event=on_event, case_ids=ids)
        return result.records, [row["model"] for row in result.leaderboard], result

    with run_folder_lock(spec.run_dir, "run"):
        result, summary = adaptive_loop(order, spec.budget, run_batch)
        summary["order_seed"] = spec.seed
        store = RunStore(spec.run_dir)
        info = {**store.read_run_info(), "adaptive": summary}
        store.write_run_info(info)
        result.info = info
        add_leaderboard_section(store.root,
                                {"adaptive": {k: v for k, v in summary.items() if k != "order"}},
                                adaptive_markdown(summary))
        _rewrite_report(spec, store.root)
    return result


def _rewrite_report(spec: RunSpec, root) -> None:
    """The report again, now with the adaptive line (the last batch wrote it without)."""
    import logging

    from repainter.report.html import write_report

    try:
        write_report(root)
    except Exception as exc:  # results are safe on disk; `repainter report` can retry
        logging.getLogger(__name__).warning("could not rewrite the report: %s", exc)
