import numpy as np
import pytest
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


# -- multiple-comparison corrections, chunked resampling -------------------------------------

from repainter.report.stats import (  # noqa: E402
    CHUNK_ELEMENTS,
    adjust_p_values,
    benjamini_hochberg,
    corrected,
    holm,
)


def test_holm_by_hand():
    # sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06 monotone)
    assert holm([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.2]) == [0.2]


def test_benjamini_hochberg_by_hand():
    # p * m / rank: 0.01*4/1 = .04, 0.02*4/2 = .04, 0.03*4/3 = .04, 0.04*4/4 = .04
    assert benjamini_hochberg([0.03, 0.01, 0.04, 0.02]) == pytest.approx([0.04] * 4)
    # 0.001*3/1 = .003; 0.04*3/2 = .06; 0.05*3/3 = .05 -> step-up min keeps .05 for rank 2
    assert benjamini_hochberg([0.05, 0.001, 0.04]) == pytest.approx([0.05, 0.003, 0.05])
    with pytest.raises(ValueError, match="unknown correction"):
        adjust_p_values([0.1], "bonferroni-ish")


def test_correction_applies_to_the_family_and_is_named():
    a = {f"c{i}": 0.8 + 0.01 * (i % 3) for i in range(6)}
    b = {f"c{i}": 0.5 for i in range(6)}
    family = [paired_comparison("a", a, "b", b, "ssim"), paired_comparison("a", a, "c", a, "ssim"),
              paired_comparison("b", b, "c", a, "ssim")]
    fixed = corrected(family, "holm")
    assert [c.correction for c in fixed] == ["holm"] * 3
    assert [c.p_adjusted for c in fixed] == holm([c.p_value for c in family])
    # raw p 2/64 for six all-positive differences; Holm x3 for the smallest -> not below 0.05
    assert family[0].significant and not fixed[0].significant
    (single,) = corrected(family[:1], "holm")
    assert single.correction == "none" and single.p_adjusted == single.p_value


def _reference_bootstrap(values, resamples, seed, confidence=0.95):
    """The one-array bootstrap the chunked one must reproduce."""
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    return tuple(float(q) for q in np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2]))


def test_chunked_bootstrap_equals_the_one_array_reference():
    values = list(np.random.default_rng(1).normal(size=37))
    reference = _reference_bootstrap(values, 1000, seed=4)
    # 37 * 3 numbers per chunk: many uneven chunks, same stream, same interval
    assert bootstrap_ci(values, resamples=1000, seed=4, chunk_elements=111) == reference
    assert bootstrap_ci(values, resamples=1000, seed=4) == reference


def test_chunked_sign_flip_equals_the_one_array_reference():
    diffs = np.random.default_rng(2).normal(0.05, 1.0, size=40)
    rng = np.random.default_rng(0)
    signs = rng.choice((1.0, -1.0), size=(2000, diffs.size))
    extreme = np.abs((signs * diffs).mean(axis=1)) >= abs(diffs.mean()) - 1e-12
    reference = float((extreme.sum() + 1) / 2001)
    assert sign_flip_p_value(diffs, resamples=2000, chunk_elements=40 * 7) == reference


def test_large_n_runs_in_bounded_chunks():
    # 20,000 cases x 10,000 resamples would be 1.6 GB in one array; chunks hold CHUNK_ELEMENTS
    import tracemalloc

    values = np.random.default_rng(3).uniform(size=20_000)
    tracemalloc.start()  # numpy reports its allocations to tracemalloc
    try:
        low, high = bootstrap_ci(values, resamples=10_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20, peak
    assert low < values.mean() < high and high - low < 0.02
    assert sign_flip_p_value(values - 0.5, resamples=2_000) > 0.001
    assert CHUNK_ELEMENTS * 8 < 100 * 2**20
