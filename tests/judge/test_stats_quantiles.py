"""Order-statistic and bucket-edge quantile intervals."""

from __future__ import annotations

import math

import numpy as np

from gate.judge.stats import quantiles as qu


def test_rank_bounds_bracket_n_p_and_shrink_relative_to_n() -> None:
    lo, hi = qu.rank_bounds(1000, 0.95, 0.01, 1000)
    assert lo < 950 < hi
    lo2, hi2 = qu.rank_bounds(100_000, 0.95, 0.01, 1000)
    assert (hi2 - lo2) / 100_000 < (hi - lo) / 1000


def test_too_few_samples_for_a_p99_give_an_unbounded_upper_end() -> None:
    x = np.sort(np.random.default_rng(0).lognormal(0, 0.4, 50))
    qi = qu.sample_quantile(x, 0.99, 0.01, 1000)
    assert math.isinf(qi.upper)


def test_sample_quantile_interval_covers_the_truth_at_every_look() -> None:
    # 300 sequences, looks at 20 sample sizes: the true p95 must be inside at all looks in >= 1 - alpha.
    rng = np.random.default_rng(1)
    alpha, truth = 0.1, float(np.exp(0.4 * 1.6448536269514722))
    misses = 0
    for _ in range(300):
        x = rng.lognormal(0, 0.4, 4000)
        for n in range(200, 4001, 200):
            qi = qu.sample_quantile(np.sort(x[:n]), 0.95, alpha, 1000)
            if not qi.lower <= truth <= qi.upper:
                misses += 1
                break
    assert misses / 300 <= alpha


def test_histogram_interval_uses_bucket_edges() -> None:
    bounds = np.array([0.1, 0.2, 0.5, 1.0, np.inf])
    cumulative = np.array([500.0, 900.0, 990.0, 1000.0, 1000.0])
    qi = qu.histogram_quantile(bounds, cumulative, 0.95, 0.01, 1000)
    assert qi.resolution_limited
    assert qi.lower in (0.1, 0.2) and qi.upper in (0.5, 1.0)
    # Prometheus' histogram_quantile interpolation: rank 950 in (0.2, 0.5] holding 90 → 0.2 + 0.3 * 50/90
    assert math.isclose(qi.estimate, 0.2 + 0.3 * 50 / 90)


def test_quantile_in_the_inf_bucket_has_no_upper_bound() -> None:
    bounds = np.array([0.1, np.inf])
    qi = qu.histogram_quantile(bounds, np.array([10.0, 1000.0]), 0.95, 0.01, 1000)
    assert qi.lower == 0.1 and math.isinf(qi.upper)
