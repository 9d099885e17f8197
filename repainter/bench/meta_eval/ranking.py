"""Ranking validity: does a metric order a ladder's models the way their true quality does?

For one ladder (models best -> worst) and one metric, every case gives one score per model
(oriented so higher = closer to the reference). From the case x model matrix:

- Kendall's tau between the models' mean scores and the true order, with a percentile bootstrap
  interval over cases (``bootstrap_tau``);
- for each adjacent pair of rungs, a paired two-sided sign-flip test on the per-case differences:
  the pair is *separated* when the better rung scores higher and p < alpha (uncorrected: each
  adjacent step is its own question).

Example:
    >>> import numpy as np
    >>> m = np.array([[0.9, 0.7, 0.5], [0.8, 0.6, 0.55], [0.95, 0.65, 0.4]])
    >>> true_order_tau(m)
    1.0
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from repainter.bench.meta_eval.degradations import kendall_tau
from repainter.records import CaseRecord
from repainter.report.stats import sign_flip_p_value


def final_score(record: CaseRecord, metric: str) -> float | None:
    """The metric's score at the candidate the loop picked (None: not measured)."""
    return record.final_scores.get(metric)


def best_rendered(record: CaseRecord, metric: str) -> float | None:
    """The metric's best score over every candidate the loop rendered, as if the loop had
    picked by it (an ideal re-pick: it tells "the loop never rendered it" apart from "the
    selection did not pick it"). Assumes higher is better; None where no candidate has it."""
    values = [c.scores[metric] for rnd in record.rounds for c in rnd.candidates
              if c.scores.get(metric) is not None]
    return max(values) if values else None


def case_matrix(records: list[CaseRecord], models: Sequence[str], metric: str,
                higher_is_better: bool = True, value_of: Callable[[CaseRecord, str], float | None]
                = final_score) -> tuple[list[str], np.ndarray]:
    """(case ids, cases x models array) of final scores (or ``value_of``) on the cases every
    model finished."""
    by_model: dict[str, dict[str, float]] = {m: {} for m in models}
    for record in records:
        value = value_of(record, metric)  # None: not measured (records hold no NaN)
        if record.done and record.model in by_model and value is not None:
            by_model[record.model][record.case_id] = value if higher_is_better else -value
    cases = sorted(set.intersection(*(set(v) for v in by_model.values()))) if models else []
    return cases, np.array([[by_model[m][c] for m in models] for c in cases], dtype=np.float64)


def true_order_tau(matrix: np.ndarray) -> float:
    """Tau between the column means and the column order (column 0 = best); 0 if all tie."""
    if matrix.size == 0:
        return float("nan")
    tau = kendall_tau(np.arange(matrix.shape[1])[::-1], matrix.mean(axis=0))
    return 0.0 if math.isnan(tau) else tau


def bootstrap_tau(matrix: np.ndarray, *, resamples: int = 1000, seed: int = 0,
                  confidence: float = 0.95) -> tuple[float, float] | None:
    """Percentile interval of ``true_order_tau`` over case resamples."""
    n = matrix.shape[0]
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    taus = [true_order_tau(matrix[rng.integers(0, n, size=n)]) for _ in range(resamples)]
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(taus, [alpha, 1.0 - alpha])
    return float(low), float(high)


def adjacent_separation(matrix: np.ndarray, models: Sequence[str], *, alpha: float = 0.05,
                        seed: int = 0) -> list[dict[str, Any]]:
    """For each adjacent pair (better, worse): mean difference, the standard deviation of the
    per-case differences (what the bench's power at its size follows from), p-value, separated
    or not."""
    rows = []
    for i in range(matrix.shape[1] - 1):
        diffs = matrix[:, i] - matrix[:, i + 1]
        mean = float(diffs.mean()) if diffs.size else float("nan")
        p = sign_flip_p_value(diffs, seed=seed)
        rows.append({"better": models[i], "worse": models[i + 1], "n": int(diffs.size),
                     "mean_difference": mean, "p_value": p,
                     "sd_difference": float(diffs.std(ddof=1)) if diffs.size > 1 else None,
                     "separated": bool(diffs.size and mean > 0 and p < alpha)})
    return rows


def ladder_validity(per_seed_records: dict[int, list[dict[str, Any]]], models: Sequence[str],
                    metrics: dict[str, bool], *, resamples: int = 1000,
                    value_of: Callable[[CaseRecord, str], float | None] = final_score,
                    ) -> dict[str, dict[str, Any]]:
    """Per metric (label -> higher_is_better): tau on the seed-averaged cases with its bootstrap
    interval, tau per seed and its mean, and the adjacent-rung separation table. ``value_of``
    reads a record's value (default: the score of the loop's pick)."""
    out = {}
    for metric, higher in metrics.items():
        matrices = {seed: case_matrix(records, models, metric, higher, value_of)
                    for seed, records in per_seed_records.items()}
        shared = sorted(set.intersection(*(set(cases) for cases, _ in matrices.values())))
        if not shared:
            continue
        aligned = [m[[cases.index(c) for c in shared]] for cases, m in matrices.values()]
        averaged = np.mean(aligned, axis=0)
        ci = bootstrap_tau(averaged, resamples=resamples)
        per_seed = [true_order_tau(m) for _, m in matrices.values()]
        adjacent = adjacent_separation(averaged, models)
        per_seed_adjacent = [adjacent_separation(m, models) for _, m in matrices.values()]
        out[metric] = {
            "cases": len(shared),
            "tau": true_order_tau(averaged),
            "tau_ci_low": ci[0] if ci else None, "tau_ci_high": ci[1] if ci else None,
            "tau_per_seed": per_seed,
            "tau_seed_mean": float(np.mean(per_seed)),
            "adjacent": adjacent,
            "adjacent_separated": float(np.mean([a["separated"] for a in adjacent])),
            # how often an adjacent pair is separated within a single seed's run
            "adjacent_separated_per_seed": float(np.mean(
                [a["separated"] for rows in per_seed_adjacent for a in rows])),
        }
    return out
