"""Error ratios: Clopper-Pearson against scipy, always-valid intervals, the conditional comparison."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from gate.judge.stats import proportions as pr


@pytest.mark.parametrize(("k", "n"), [(0, 50), (3, 1000), (40, 400), (100, 100)])
def test_clopper_pearson_equals_scipy(k: int, n: int) -> None:
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    lo, hi = pr.clopper_pearson(k, n, 0.05)
    assert math.isclose(lo, ci.low, abs_tol=1e-12) and math.isclose(hi, ci.high, abs_tol=1e-12)


def test_zero_errors_bound_the_ratio_from_above_only() -> None:
    ri = pr.ratio_interval(0, 20_000, 0.01, 1000, 0.001)
    assert ri.lower == 0.0
    assert ri.upper < 0.001


def test_sparse_errors_one_vs_nine_are_significant_only_with_enough_evidence() -> None:
    # 0 vs 9 errors in 2,000 requests each: the canary's share of errors is 9/9.
    rc = pr.compare_ratios(9, 2000, 0, 2000, alpha=0.01)
    assert rc.canary_share == 1.0 and math.isinf(rc.rate_ratio)
    assert rc.e_value >= 1 / 0.01
    weak = pr.compare_ratios(2, 2000, 0, 2000, alpha=0.01)
    assert weak.e_value < 1 / 0.01


def test_equal_rates_give_no_evidence_and_a_ratio_interval_around_one() -> None:
    rc = pr.compare_ratios(50, 10_000, 50, 10_000, alpha=0.01)
    assert rc.e_value < 1.0
    assert rc.ratio_lower < 1.0 < rc.ratio_upper
