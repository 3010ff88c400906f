"""Repeated looks do not inflate false Fails: A/A sequences judged at many looks stay within alpha.

Small simulations (a generous alpha keeps them fast and the check meaningful); the benchmark runs the
full-size version (`make bench-judge`).
"""

from __future__ import annotations

import numpy as np

from gate.judge.stats.proportions import compare_ratios
from gate.judge.stats.ranks import mann_whitney_samples

ALPHA = 0.1
LOOKS = range(100, 2001, 100)


def test_rank_test_crossing_rate_over_twenty_looks_stays_below_alpha() -> None:
    rng = np.random.default_rng(11)
    crossed = 0
    runs = 300
    for _ in range(runs):
        s, c = np.log(rng.lognormal(0, 0.5, 2000)), np.log(rng.lognormal(0, 0.5, 2000))
        for n in LOOKS:
            rt = mann_whitney_samples(np.sort(c[:n]), np.sort(s[:n]), ALPHA, 1000, with_shift=False)
            if rt.significant_up:
                crossed += 1
                break
    assert crossed / runs <= ALPHA


def test_fixed_sample_test_at_the_same_alpha_would_cross_far_more_often() -> None:
    # The reason for always-valid bounds: a z test at 1.28 (one-sided 10 %) peeked at 20 times.
    rng = np.random.default_rng(12)
    crossed = 0
    runs = 300
    for _ in range(runs):
        s, c = rng.normal(0, 1, 2000), rng.normal(0, 1, 2000)
        for n in LOOKS:
            z = (c[:n].mean() - s[:n].mean()) / np.sqrt(2 / n)
            if z > 1.2816:
                crossed += 1
                break
    assert crossed / runs > 2 * ALPHA


def test_error_share_e_process_crossing_rate_stays_below_alpha() -> None:
    rng = np.random.default_rng(13)
    crossed = 0
    runs = 400
    for _ in range(runs):
        s_err = np.cumsum(rng.random(5000) < 0.01)
        c_err = np.cumsum(rng.random(5000) < 0.01)
        for n in range(250, 5001, 250):
            rc = compare_ratios(float(c_err[n - 1]), n, float(s_err[n - 1]), n, alpha=ALPHA)
            if rc.e_value >= 1 / ALPHA and rc.canary_share > rc.null_share:
                crossed += 1
                break
    assert crossed / runs <= ALPHA
