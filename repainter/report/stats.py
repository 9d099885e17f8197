"""Confidence intervals, paired significance tests and multiple-comparison corrections.

All are non-parametric and seeded, so a leaderboard is reproducible to the last digit. Resamples
are drawn in chunks of at most ``CHUNK_ELEMENTS`` numbers, so memory stays bounded for any number
of cases (n = 20,000 cases x 10,000 resamples needs a few MB, not 1.6 GB); numpy's generator
gives the same stream chunked or not, so a chunked interval equals the one-array interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import product

import numpy as np

#: Up to this many paired cases the sign-flip test enumerates all 2**n flips (exact p-value).
EXACT_PERMUTATION_LIMIT = 16
#: Most random numbers drawn at once by the bootstrap and the sign-flip test (8 MB of float64).
CHUNK_ELEMENTS = 1 << 20
#: Multiple-comparison corrections by name: Holm (family-wise error) and Benjamini-Hochberg (FDR).
CORRECTIONS = ("holm", "bh", "none")


def _chunks(total: int, row_length: int, chunk_elements: int = CHUNK_ELEMENTS):
    """Row counts that add up to ``total``, each chunk holding at most ``chunk_elements`` numbers."""
    rows = max(1, chunk_elements // max(1, row_length))
    for start in range(0, total, rows):
        yield min(rows, total - start)


def bootstrap_means(data: np.ndarray, resamples: int, rng: np.random.Generator,
                    chunk_elements: int = CHUNK_ELEMENTS) -> np.ndarray:
    """Means of ``resamples`` bootstrap resamples of ``data``, drawn chunk by chunk."""
    means = np.empty(resamples, dtype=np.float64)
    done = 0
    for rows in _chunks(resamples, data.size, chunk_elements):
        means[done:done + rows] = data[rng.integers(0, data.size, size=(rows, data.size))].mean(axis=1)
        done += rows
    return means


def bootstrap_ci(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0,
    chunk_elements: int = CHUNK_ELEMENTS,
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
    means = bootstrap_means(data, resamples, np.random.default_rng(seed), chunk_elements)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def sign_flip_p_value(differences: Sequence[float], *, resamples: int = 20_000, seed: int = 0,
                      chunk_elements: int = CHUNK_ELEMENTS) -> float:
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
    extreme = 0
    for rows in _chunks(resamples, n, chunk_elements):
        signs = rng.choice((1.0, -1.0), size=(rows, n))
        extreme += int((np.abs((signs * diffs).mean(axis=1)) >= observed - 1e-12).sum())
    return float((extreme + 1) / (resamples + 1))


@dataclass(frozen=True)
class PairedComparison:
    model_a: str
    model_b: str
    metric: str
    n: int
    mean_difference: float  # mean of (a - b) over the cases both finished
    ci: tuple[float, float] | None  # bootstrap interval of that mean
    p_value: float  # two-sided sign-flip permutation test (uncorrected)
    significant: bool  # p_adjusted < alpha
    p_adjusted: float | None = None  # after the family's multiple-comparison correction
    correction: str = "none"

    def as_dict(self) -> dict:
        return {
            "model_a": self.model_a, "model_b": self.model_b, "metric": self.metric, "n": self.n,
            # None, not NaN, where the two share no scored case (JSON has no NaN)
            "mean_difference": self.mean_difference if np.isfinite(self.mean_difference) else None,
            "ci_low": self.ci[0] if self.ci else None, "ci_high": self.ci[1] if self.ci else None,
            "p_value": self.p_value,
            "p_adjusted": self.p_value if self.p_adjusted is None else self.p_adjusted,
            "correction": self.correction, "significant": self.significant,
        }


def paired_comparison(
    model_a: str, scores_a: dict[str, float], model_b: str, scores_b: dict[str, float],
    metric: str, *, alpha: float = 0.05, seed: int = 0,
) -> PairedComparison:
    """Compare two models on the cases (keys) both have a finite score for (uncorrected)."""
    shared = sorted(k for k in scores_a.keys() & scores_b.keys()
                    if scores_a[k] is not None and scores_b[k] is not None
                    and np.isfinite(scores_a[k]) and np.isfinite(scores_b[k]))
    diffs = [scores_a[k] - scores_b[k] for k in shared]
    mean = float(np.mean(diffs)) if diffs else float("nan")
    p = sign_flip_p_value(diffs, seed=seed)
    return PairedComparison(model_a, model_b, metric, len(diffs), mean,
                            bootstrap_ci(diffs, seed=seed), p, bool(diffs) and p < alpha)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (controls the family-wise error rate).

    Example:
        >>> holm([0.01, 0.04, 0.03])  # sorted 0.01 x3, 0.03 x2, 0.04 x1, made monotone
        [0.03, 0.06, 0.06]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return [round(a, 15) for a in adjusted]


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (controls the false discovery rate).

    Example:
        >>> benjamini_hochberg([0.01, 0.04, 0.03])  # 0.01*3/1, min(0.03*3/2, 0.04*3/3)
        [0.03, 0.04, 0.04]
    """
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i], reverse=True)
    adjusted = [0.0] * m
    running = 1.0
    for position, i in enumerate(order):
        rank = m - position
        running = min(running, p_values[i] * m / rank)
        adjusted[i] = min(1.0, running)
    return [round(a, 15) for a in adjusted]


def adjust_p_values(p_values: Sequence[float], correction: str = "holm") -> list[float]:
    """Adjusted p-values by ``correction`` (holm | bh | none)."""
    if correction == "holm":
        return holm(p_values)
    if correction == "bh":
        return benjamini_hochberg(p_values)
    if correction == "none":
        return list(p_values)
    raise ValueError(f"unknown correction {correction!r}; known: {', '.join(CORRECTIONS)}")


def corrected(comparisons: Sequence[PairedComparison], correction: str = "holm",
              *, alpha: float = 0.05) -> list[PairedComparison]:
    """Apply ``correction`` across one family of comparisons (e.g. all pairs on one metric).

    A family of one pair needs no correction; it is then named "none".
    """
    from dataclasses import replace

    if len(comparisons) < 2:
        correction = "none"
    adjusted = adjust_p_values([c.p_value for c in comparisons], correction)
    return [replace(c, p_adjusted=p, correction=correction, significant=c.n > 0 and p < alpha)
            for c, p in zip(comparisons, adjusted, strict=True)]
