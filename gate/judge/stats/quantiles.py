"""Distribution-free, always-valid confidence intervals for quantiles, from samples or from buckets.

At the true p-quantile q, the count of observations <= q is Binomial(n, p) at every n. A beta-binomial
mixture martingale over that count (Howard & Ramdas 2022, "Sequential estimation of quantiles") gives
the ranks [lo, hi] that stay plausible at all times; the order statistics at those ranks bound q. With
fixed n this reduces to the classic order-statistic interval (Thompson 1936; Hahn & Meeker 1991).

From a histogram the same ranks are mapped to bucket edges, so the interval is honest about the
resolution: a quantile is only known to lie inside its bucket.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from gate.judge.stats.sequential import beta_prior, prior_mass_above, side_threshold

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class QuantileInterval:
    """A point estimate and always-valid bounds for a quantile. Bounds may be +-inf (not enough data)."""

    p: float
    estimate: float
    lower: float
    upper: float
    n: float
    resolution_limited: bool = False
    """True when the bounds are bucket edges (the quantile is only known up to its bucket)."""


def rank_bounds(n: int, p: float, alpha: float, n_opt: float) -> tuple[int, int]:
    """Plausible values [lo, hi] of the count #(X <= q_p) after n observations (0 <= lo <= hi <= n).

    The order statistics X_(lo) and X_(hi + 1) then bound q_p (X_(0) = -inf, X_(n + 1) = +inf).
    """
    if n <= 0:
        return 0, 0
    a, b = beta_prior(p, n_opt, alpha)
    above = prior_mass_above(p, a, b)
    # Each bound one-sided at alpha (a Fail and a Pass each use one of them).
    thr_low, thr_high = side_threshold(alpha, 1.0 - above), side_threshold(alpha, above)
    sd = math.sqrt(n * p * (1.0 - p))
    width = int(10.0 * sd + 10.0 * math.log(1.0 / alpha) + 20.0)
    centre = round(n * p)
    lo_s, hi_s = max(0, centre - width), min(n, centre + width)
    s = np.arange(lo_s, hi_s + 1, dtype=np.float64)
    f = n - s
    # log e-value over candidate counts, vectorised (convex in s, so the accepted set is an interval).
    log_e = special.betaln(a + s, b + f) - special.betaln(a, b) - s * math.log(p) - f * math.log1p(-p)
    # A count below n p says F(q) < p: the "-" side of the prior; above n p the "+" side.
    thr = np.where(s < n * p, thr_low, thr_high)
    ok = np.flatnonzero(log_e < thr)
    if ok.size == 0:  # cannot happen for a proper prior, but never claim more than we know
        return 0, n
    lo, hi = int(s[ok[0]]), int(s[ok[-1]])
    # Widen to the search window's edges if the accepted set touches them (it then extends beyond).
    if lo == lo_s and lo_s > 0:
        lo = 0
    if hi == hi_s and hi_s < n:
        hi = n
    return lo, hi


def sample_quantile(sorted_values: FloatArray, p: float, alpha: float, n_opt: float) -> QuantileInterval:
    """Quantile interval from raw sorted values (the inverse empirical CDF as the estimate)."""
    n = int(sorted_values.size)
    if n == 0:
        return QuantileInterval(p, math.nan, -math.inf, math.inf, 0)
    lo, hi = rank_bounds(n, p, alpha, n_opt)
    est = float(sorted_values[min(n - 1, max(0, math.ceil(n * p) - 1))])
    lower = float(sorted_values[lo - 1]) if lo >= 1 else -math.inf
    upper = float(sorted_values[hi]) if hi < n else math.inf
    return QuantileInterval(p, est, lower, upper, n)


def bucket_of_rank(cumulative: FloatArray, rank: float) -> int:
    """Index of the bucket holding the rank-th smallest observation (1-based rank).

    Prometheus' counts come from ``increase()``, which extrapolates: the total is fractional (102.6
    requests), and an integer rank may exceed it (rank 103). Such a rank lies beyond every finite edge,
    so it is in the last (+Inf) bucket — never one past the end.
    """
    if cumulative.size == 0:
        raise ValueError("a histogram needs at least one (+Inf) bucket")
    return min(int(np.searchsorted(cumulative, rank, side="left")), int(cumulative.size) - 1)


def histogram_quantile(
    bounds: FloatArray, cumulative: FloatArray, p: float, alpha: float, n_opt: float, *, floor: float = 0.0
) -> QuantileInterval:
    """Quantile interval in bucket terms: the lower bound is the lower edge of the bucket holding rank lo.

    The estimate interpolates linearly inside the bucket, as Prometheus' histogram_quantile does; it is
    for display only, verdicts use the bounds.
    """
    n = float(cumulative[-1]) if cumulative.size else 0.0
    if n <= 0 or bounds.size != cumulative.size:
        return QuantileInterval(p, math.nan, -math.inf, math.inf, 0, resolution_limited=True)
    ni = round(n)
    lo, hi = rank_bounds(ni, p, alpha, n_opt)
    edges_low = np.concatenate(([floor], bounds[:-1]))
    lower = float(edges_low[bucket_of_rank(cumulative, lo)]) if lo >= 1 else -math.inf
    upper = float(bounds[bucket_of_rank(cumulative, hi + 1)]) if hi < ni else math.inf
    rank = max(1.0, p * n)
    k = bucket_of_rank(cumulative, rank)
    below = float(cumulative[k - 1]) if k > 0 else 0.0
    inside = float(cumulative[k]) - below
    top = float(bounds[k])
    if math.isinf(top):
        est = float(edges_low[k])  # Prometheus returns the last finite bound here, too
    else:
        frac = (rank - below) / inside if inside > 0 else 1.0
        est = float(edges_low[k] + (top - edges_low[k]) * frac)
    return QuantileInterval(p, est, lower, upper, n, resolution_limited=True)
