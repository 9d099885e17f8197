"""Confidence intervals and paired significance tests for leaderboards.

Both are non-parametric and seeded, so a leaderboard is reproducible to the last digit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

#: Up to this many paired cases the sign-flip test enumerates all 2**n flips (exact p-value).
EXACT_PERMUTATION_LIMIT = 16


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean; None for fewer than two values.

    Example:
        >>> low, high = bootstrap_ci([0.5, 0.6, 0.7, 0.8])
        >>> low < 0.65 < high
        True
    """
    data = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if data.size < 2:
        return None
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedComparison:
    model_a: str
    model_b: str
    metric: str
    n: int
    mean_difference: float  # mean of (a - b) over the cases both finished
    ci: tuple[float, float] | None  # bootstrap interval of that mean
    p_value: float  # two-sided sign-flip permutation test
    significant: bool  # p_value < alpha

    def as_dict(self) -> dict:
        return {
            "model_a": self.model_a, "model_b": self.model_b, "metric": self.metric, "n": self.n,
            "mean_difference": self.mean_difference,
            "ci_low": self.ci[0] if self.ci else None, "ci_high": self.ci[1] if self.ci else None,
            "p_value": self.p_value, "significant": self.significant,
        }


def sign_flip_p_value(differences: Sequence[float], *, resamples: int = 20_000, seed: int = 0) -> float:
    """Two-sided p-value of "mean difference is 0" by flipping the signs of paired differences.

    Exact (all 2**n sign patterns) for n <= EXACT_PERMUTATION_LIMIT, else Monte Carlo with the
    observed pattern counted (so p is never 0).

    Example:
        >>> sign_flip_p_value([0.1, 0.2, 0.15, 0.3, 0.25, 0.2])  # all positive: 2 of 64 patterns
        0.03125
    """
    diffs = np.asarray(differences, dtype=np.float64)
    n = diffs.size
    if n == 0:
        return 1.0
    observed = abs(diffs.mean())
    if n <= EXACT_PERMUTATION_LIMIT:
        signs = np.array(list(product((1.0, -1.0), repeat=n)))
        extreme = np.abs((signs * diffs).mean(axis=1)) >= observed - 1e-12
        return float(extreme.mean())
    rng = np.random.default_rng(seed)
    signs = rng.choice((1.0, -1.0), size=(resamples, n))
    extreme = np.abs((signs * diffs).mean(axis=1)) >= observed - 1e-12
    return float((extreme.sum() + 1) / (resamples + 1))


def paired_comparison(
    model_a: str, scores_a: dict[str, float], model_b: str, scores_b: dict[str, float],
    metric: str, *, alpha: float = 0.05, seed: int = 0,
) -> PairedComparison:
    """Compare two models on the cases (keys) both have a finite score for."""
    shared = sorted(k for k in scores_a.keys() & scores_b.keys()
                    if np.isfinite(scores_a[k]) and np.isfinite(scores_b[k]))
    diffs = [scores_a[k] - scores_b[k] for k in shared]
    mean = float(np.mean(diffs)) if diffs else float("nan")
    p = sign_flip_p_value(diffs, seed=seed)
    return PairedComparison(model_a, model_b, metric, len(diffs), mean,
                            bootstrap_ci(diffs, seed=seed), p, bool(diffs) and p < alpha)
