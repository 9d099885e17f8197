import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from repainter.report.stats import bootstrap_ci, paired_comparison, sign_flip_p_value


def test_bootstrap_needs_two_values_and_ignores_non_finite():
    assert bootstrap_ci([1.0]) is None
    assert bootstrap_ci([1.0, float("nan")]) is None
    low, high = bootstrap_ci([1.0, 1.0, 1.0])
    assert low == high == 1.0


def test_bootstrap_is_seeded():
    values = list(np.linspace(0, 1, 20))
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(-1, 1), min_size=2, max_size=30))
def test_interval_contains_the_sample_mean(values):
    low, high = bootstrap_ci(values, resamples=500)
    assert low - 1e-9 <= float(np.mean(values)) <= high + 1e-9


def test_exact_sign_flip_counts_by_hand():
    # differences (1, 2): patterns ++ and -- reach |mean| 1.5; +- and -+ do not -> p = 2/4
    assert sign_flip_p_value([1.0, 2.0]) == 0.5
    assert sign_flip_p_value([]) == 1.0
    assert sign_flip_p_value([0.0, 0.0, 0.0]) == 1.0


def test_monte_carlo_branch_for_many_cases():
    rng = np.random.default_rng(0)
    clearly_better = rng.normal(0.1, 0.02, size=40)
    assert sign_flip_p_value(clearly_better) < 0.001
    noise = rng.normal(0.0, 1.0, size=40)
    assert sign_flip_p_value(noise) > 0.05


def test_paired_comparison_is_significant_only_with_evidence():
    a = {f"c{i}": 0.8 + i * 0.001 for i in range(12)}
    b = {f"c{i}": 0.5 for i in range(12)}
    result = paired_comparison("a", a, "b", b, "selection")
    assert result.n == 12 and result.significant and result.mean_difference > 0.29
    tie = paired_comparison("a", a, "b", a, "selection")
    assert not tie.significant
