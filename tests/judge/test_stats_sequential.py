"""Always-valid boundaries: shape, consistency between boundary and e-value, and time-uniform error control."""

from __future__ import annotations

import math

import numpy as np

from gate.judge.stats import sequential as sq


def test_boundary_is_tightest_near_the_design_time_and_grows_slowly_after() -> None:
    alpha = 0.005
    zs = {v: sq.z_boundary(v, alpha, 500) for v in (50, 500, 5000, 50000)}
    assert zs[500] < zs[50]
    assert zs[500] < zs[5000] < zs[50000]
    # Fixed-sample one-sided z at alpha is ~2.58; the price of looking at any time is a modest increase.
    assert 3.0 < zs[500] < 4.5


def test_one_sided_boundary_implies_half_normal_e_value_beyond_one_over_alpha() -> None:
    alpha = 0.0025
    for v in (20.0, 500.0, 10_000.0):
        b = sq.z_boundary(v, sq.one_sided_alpha(alpha), 500)
        assert sq.upper_e_value(b, v, alpha, 500) >= 1 / alpha * 0.999
        assert sq.upper_e_value(-b, v, alpha, 500) < 1.0


def test_random_walk_under_the_null_rarely_ever_crosses() -> None:
    # 2,000 paths of 2,000 steps, a look at every step: the crossing rate must stay below alpha.
    rng = np.random.default_rng(0)
    alpha = 0.05
    paths = np.cumsum(rng.standard_normal((2000, 2000)), axis=1)
    t = np.arange(1, 2001, dtype=float)
    bound = np.array([sq.normal_radius(v, sq.one_sided_alpha(alpha), 200) for v in t])
    crossed = (paths >= bound).any(axis=1).mean()
    assert crossed <= alpha


def test_betabinom_interval_is_wider_than_clopper_pearson_and_contains_the_estimate() -> None:
    from gate.judge.stats.proportions import clopper_pearson

    a, b = sq.beta_prior(0.01, 1000, 0.01)
    lo, hi = sq.betabinom_interval(12, 1000, 0.01, a, b)
    cp_lo, cp_hi = clopper_pearson(12, 1000, 0.02)
    assert lo <= 0.012 <= hi
    assert lo <= cp_lo and hi >= cp_hi


def test_side_threshold_reduces_to_log_one_over_alpha_when_all_prior_mass_is_on_that_side() -> None:
    assert math.isclose(sq.side_threshold(0.01, 1.0), math.log(100))
    assert sq.side_threshold(0.01, 0.5) < math.log(100)
