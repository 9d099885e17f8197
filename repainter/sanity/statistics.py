"""The statistics of a sanity ladder: Kendall tau against the rung order, per case and pooled,
a bootstrap interval over cases, adjacent-rung paired tests with Holm's correction, and the
pairwise agreement of two scores.

A ladder's scores are a ``(cases, rungs)`` array, rungs best first (rung 0 is the most
informative prompt, the uncorrupted render, the pipeline's default steps). Tau is Kendall's
tau-a against that order: +1 when every case-mean rung scores below the rung above it, ties
count zero, so a metric that cannot tell two rungs apart is not rewarded.

>>> scores = np.array([[0.9, 0.7, 0.5], [0.8, 0.8, 0.4]])
>>> order_tau(scores.mean(axis=0))
1.0
>>> [round(t, 3) for t in case_taus(scores)]
[1.0, 0.667]
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.stats import wilcoxon


def order_tau(values: np.ndarray) -> float:
    """Tau-a of ``values`` (one per rung, best rung first) against the rung order; on a 2-D
    array, one tau per row."""
    values = np.asarray(values, dtype=np.float64)
    rungs = values.shape[-1]
    upper = np.triu_indices(rungs, k=1)
    # pair (i, j), i < j: rung i should score higher than rung j
    signs = np.sign(values[..., upper[0]] - values[..., upper[1]])
    return signs.mean(axis=-1) if values.ndim > 1 else float(signs.mean())


def case_taus(scores: np.ndarray) -> list[float]:
    """One tau per case (row)."""
    return [float(t) for t in order_tau(scores)]


def _percentiles(samples: np.ndarray, confidence: float) -> list[float]:
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [alpha, 1.0 - alpha])
    return [round(float(low), 4), round(float(high), 4)]


def bootstrap_pooled_tau(scores: np.ndarray, resamples: int, seed: int,
                         confidence: float = 0.95) -> list[float] | None:
    """Percentile interval of the pooled tau (tau of the case-mean rungs), cases resampled."""
    cases = scores.shape[0]
    if cases < 2:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, cases, size=(resamples, cases))
    means = scores[picks].mean(axis=1)  # (resamples, rungs)
    return _percentiles(order_tau(means), confidence)


def bootstrap_mean(values: np.ndarray, resamples: int, seed: int,
                   confidence: float = 0.95) -> list[float] | None:
    """Percentile interval of the mean of ``values`` (one per case), cases resampled."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    return _percentiles(means, confidence)


def holm(p_values: list[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order.

    >>> holm([0.01, 0.04, 0.03])
    [0.03, 0.06, 0.06]
    """
    order = np.argsort(p_values)
    adjusted = [0.0] * len(p_values)
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[index]))
        adjusted[index] = round(running, 6)
    return adjusted


def one_sided_paired_p(better: np.ndarray, worse: np.ndarray) -> float:
    """Wilcoxon signed-rank p that ``better`` scores higher than ``worse`` (paired by case);
    1.0 where every difference is zero or there are fewer than two cases."""
    differences = np.asarray(better, dtype=np.float64) - np.asarray(worse, dtype=np.float64)
    if differences.size < 2 or not np.any(differences):
        return 1.0
    return float(wilcoxon(differences, alternative="greater", zero_method="zsplit").pvalue)


def adjacent_tests(scores: np.ndarray, alpha: float) -> list[dict[str, Any]]:
    """Rung k against rung k + 1 for every k: mean difference, raw and Holm p, separated."""
    raw = [one_sided_paired_p(scores[:, k], scores[:, k + 1]) for k in range(scores.shape[1] - 1)]
    adjusted = holm(raw)
    return [{"rungs": [k, k + 1], "mean_difference": round(float(np.mean(scores[:, k] -
                                                                        scores[:, k + 1])), 4),
             "p": round(p, 6), "p_holm": q, "separated": bool(q < alpha)}
            for k, (p, q) in enumerate(zip(raw, adjusted, strict=True))]


def ladder_statistics(scores: np.ndarray, *, resamples: int, seed: int,
                      alpha: float) -> dict[str, Any]:
    """Everything reported for one metric on one ladder of one model."""
    per_case = np.asarray(case_taus(scores))
    means = scores.mean(axis=0)
    return {
        "cases": int(scores.shape[0]),
        "rung_means": [round(float(v), 4) for v in means],
        "tau": round(order_tau(means), 4),
        "tau_ci": bootstrap_pooled_tau(scores, resamples, seed),
        "tau_case_mean": round(float(per_case.mean()), 4),
        "tau_case_ci": bootstrap_mean(per_case, resamples, seed),
        "adjacent": adjacent_tests(scores, alpha),
    }


def pair_agreement(first: np.ndarray, second: np.ndarray) -> tuple[int, int, int]:
    """Over the rung pairs of one case: (pairs both order the same way, pairs both order,
    pairs where ``first`` ties). Pairs where ``second`` ties are left out."""
    upper = np.triu_indices(first.shape[-1], k=1)
    a = np.sign(first[upper[0]] - first[upper[1]])
    b = np.sign(second[upper[0]] - second[upper[1]])
    ordered = (a != 0) & (b != 0)
    return int(np.sum(ordered & (a == b))), int(np.sum(ordered)), int(np.sum((a == 0) & (b != 0)))


def agreement_statistics(counts: list[tuple[int, int, int]], *, resamples: int,
                         seed: int) -> dict[str, Any]:
    """Pooled pairwise agreement rate over cases, with an interval from resampling cases."""
    agree = np.array([c[0] for c in counts], dtype=np.float64)
    ordered = np.array([c[1] for c in counts], dtype=np.float64)
    ties = int(sum(c[2] for c in counts))
    result: dict[str, Any] = {"cases": len(counts), "pairs": int(ordered.sum()),
                              "judge_ties": ties, "rate": None, "rate_ci": None}
    if ordered.sum() == 0:
        return result
    result["rate"] = round(float(agree.sum() / ordered.sum()), 4)
    if len(counts) >= 2:
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, len(counts), size=(resamples, len(counts)))
        totals = ordered[picks].sum(axis=1)
        rates = agree[picks].sum(axis=1) / np.where(totals > 0, totals, 1)
        result["rate_ci"] = _percentiles(rates[totals > 0], 0.95)
    return result
