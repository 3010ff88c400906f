"""Mann-Whitney U and the Hodges-Lehmann shift, checked against scipy and direct computation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from gate.judge.stats import ranks


def test_u_statistic_equals_scipy() -> None:
    rng = np.random.default_rng(1)
    c, s = np.sort(rng.normal(0.2, 1, 700)), np.sort(rng.normal(0, 1, 900))
    rt = ranks.mann_whitney_samples(c, s, 0.01, 1000)
    u = stats.mannwhitneyu(c, s).statistic
    assert math.isclose(rt.auc * 700 * 900, u, rel_tol=1e-12)
    # z without continuity correction, as scipy computes it with method="asymptotic", use_continuity=False
    p = stats.mannwhitneyu(c, s, method="asymptotic", use_continuity=False, alternative="greater").pvalue
    assert math.isclose(stats.norm.sf(rt.z), p, rel_tol=1e-6)


def test_large_samples_are_sketched_without_losing_the_statistic() -> None:
    rng = np.random.default_rng(2)
    c, s = np.sort(rng.lognormal(0.05, 0.5, 60_000)), np.sort(rng.lognormal(0, 0.5, 50_000))
    rt = ranks.mann_whitney_samples(c, s, 0.01, 1000, with_shift=False)
    exact = stats.mannwhitneyu(c, s).statistic / (60_000 * 50_000)
    assert abs(rt.auc - exact) < 2e-4


def test_hodges_lehmann_is_the_median_of_pairwise_differences() -> None:
    rng = np.random.default_rng(3)
    c, s = np.sort(rng.normal(0.3, 1, 150)), np.sort(rng.normal(0, 1, 120))
    rt = ranks.mann_whitney_samples(c, s, 0.01, 1000)
    diffs = (c[:, None] - s[None, :]).ravel()
    assert rt.shift == pytest.approx(float(np.median(diffs)), abs=0.02)
    assert rt.shift_lower < rt.shift < rt.shift_upper


def test_shift_interval_matches_rank_inversion_at_the_same_critical_value() -> None:
    rng = np.random.default_rng(4)
    c, s = np.sort(rng.normal(0.0, 1, 200)), np.sort(rng.normal(0, 1, 200))
    rt = ranks.mann_whitney_samples(c, s, 0.01, 1000)
    diffs = np.sort((c[:, None] - s[None, :]).ravel())
    sd = math.sqrt(200 * 200 * 401 / 12)
    k = math.floor(200 * 200 / 2 - rt.boundary * sd)
    # the lower end is the k-th smallest pairwise difference (Bauer 1972), up to bisection precision
    assert rt.shift_lower == pytest.approx(float(diffs[k]), abs=0.01)
    assert rt.shift_upper == pytest.approx(float(diffs[-k - 1]), abs=0.01)


def test_bucket_counts_give_scipy_u_and_tie_corrected_z() -> None:
    rng = np.random.default_rng(5)
    edges = np.array([0.05, 0.1, 0.2, 0.4, 0.8, np.inf])
    c_raw, s_raw = rng.lognormal(np.log(0.12), 0.6, 800), rng.lognormal(np.log(0.1), 0.6, 900)
    cb = np.histogram(c_raw, bins=np.concatenate(([0], edges)))[0].astype(float)
    sb = np.histogram(s_raw, bins=np.concatenate(([0], edges)))[0].astype(float)
    rt = ranks.mann_whitney_buckets(cb, sb, 0.01, 1000)
    c_tied = np.repeat(np.arange(cb.size), cb.astype(int))
    s_tied = np.repeat(np.arange(sb.size), sb.astype(int))
    ref = stats.mannwhitneyu(c_tied, s_tied, method="asymptotic", use_continuity=False, alternative="greater")
    assert math.isclose(rt.auc * cb.sum() * sb.sum(), stats.mannwhitneyu(c_tied, s_tied).statistic)
    assert math.isclose(stats.norm.sf(rt.z), ref.pvalue, rel_tol=1e-6)


def test_empty_side_is_not_significant() -> None:
    rt = ranks.mann_whitney_samples(np.array([]), np.array([1.0, 2.0]), 0.01, 1000)
    assert not rt.significant_up
