"""Always-valid (time-uniform) boundaries, so that looking every few seconds does not inflate errors.

Two mixtures, both nonnegative (super)martingales under the null, so Ville's inequality bounds the
chance of *ever* crossing 1/alpha by alpha, however often one looks:

* the two-sided normal mixture (Robbins 1970; Howard, Ramdas, McAuliffe, Sekhon 2021, eq. 14), for
  statistics that behave like a sum with intrinsic time (variance) ``v``: cross when
  ``|S| >= sqrt((v + rho) * log((v + rho) / (rho * alpha**2)))``. Applied to asymptotically normal
  statistics this is the asymptotic confidence sequence of Waudby-Smith et al. (2021) and the
  mixture SPRT of Johari, Koomen, Pekelis, Walsh (2017/2022);
* the beta-binomial mixture for Bernoulli streams (Robbins 1970; Howard et al. 2021 sec. 3.3), exact
  for any sample size: used for error ratios and for the ranks of quantiles.

``rho`` (the mixture's spread) tunes where the boundary is tightest; we tune it for the number of
observations a step is designed to need (``v_opt``), as Howard et al. recommend.
"""

from __future__ import annotations

import math
from functools import lru_cache


@lru_cache(maxsize=256)
def _best_ratio(alpha: float) -> float:
    """r = rho / v_opt minimising the normal-mixture boundary (in z units) at v = v_opt.

    d/dr of (1 + r) * (log(1 + 1/r) + 2 log(1/alpha)) vanishes where log(1 + 1/r) + 2 log(1/alpha) = 1/r.
    """
    big_l = 2.0 * math.log(1.0 / alpha)
    lo, hi = 1e-9, 10.0
    for _ in range(100):  # bisection on a monotone function: log(1+1/r) + L - 1/r increases in r
        mid = math.sqrt(lo * hi)
        if math.log1p(1.0 / mid) + big_l - 1.0 / mid < 0:
            lo = mid
        else:
            hi = mid
    return math.sqrt(lo * hi)


def mixture_rho(v_opt: float, alpha: float) -> float:
    """The normal mixture's precision parameter that makes the boundary tightest at intrinsic time v_opt."""
    return max(v_opt, 1e-12) * _best_ratio(alpha)


def normal_radius(v: float, alpha: float, v_opt: float) -> float:
    """Half-width, in the statistic's own (sum) scale, of the two-sided always-valid boundary at time v."""
    rho = mixture_rho(v_opt, alpha)
    return math.sqrt((v + rho) * math.log((v + rho) / (rho * alpha * alpha)))


def z_boundary(v: float, alpha: float, v_opt: float) -> float:
    """The always-valid boundary expressed as a z-score (what |S| / sqrt(v) must exceed)."""
    if v <= 0:
        return math.inf
    return normal_radius(v, alpha, v_opt) / math.sqrt(v)


def normal_mixture_e_value(z: float, v: float, alpha: float, v_opt: float) -> float:
    """The normal-mixture e-value (likelihood-ratio martingale) at z-score z and intrinsic time v.

    It is >= 1/alpha exactly when |z| crosses `z_boundary(v, alpha, v_opt)`.
    """
    if v <= 0:
        return 1.0
    rho = mixture_rho(v_opt, alpha)
    s2 = z * z * v
    log_e = 0.5 * math.log(rho / (v + rho)) + s2 / (2.0 * (v + rho))
    return math.exp(min(log_e, 700.0))


def log_betabinom_e(successes: float, trials: float, p: float, a: float, b: float) -> float:
    """log of the beta-binomial mixture martingale for H0: success probability p, prior Beta(a, b)."""
    s, f = successes, trials - successes
    if p <= 0.0:
        return math.inf if s > 0 else 0.0
    if p >= 1.0:
        return math.inf if f > 0 else 0.0
    return (
        _lbeta(a + s, b + f)
        - _lbeta(a, b)
        - (s * math.log(p) if s else 0.0)
        - (f * math.log1p(-p) if f else 0.0)
    )


def _lbeta(x: float, y: float) -> float:
    return math.lgamma(x) + math.lgamma(y) - math.lgamma(x + y)


def beta_prior(center: float, v_opt: float, alpha: float) -> tuple[float, float]:
    """A Beta prior centred on `center` whose spread matches the tuned normal mixture (rho = p(1-p)(c+1))."""
    center = min(max(center, 1e-6), 1 - 1e-6)
    var = center * (1.0 - center)
    rho = mixture_rho(v_opt * var, alpha)
    conc = max(rho / var - 1.0, 1.0)
    return center * conc, (1.0 - center) * conc


def betabinom_interval(
    successes: float, trials: float, alpha: float, a: float, b: float
) -> tuple[float, float]:
    """Always-valid confidence interval for a success probability: {p : mixture e-value < 1/alpha}.

    The log e-value is convex in p with its minimum near successes/trials, so each end is found by bisection.
    """
    if trials <= 0:
        return 0.0, 1.0
    thr = math.log(1.0 / alpha)
    phat = min(max((successes + a) / (trials + a + b), 1e-12), 1 - 1e-12)
    # The minimum of the e-value in p is at successes/trials; start both searches there.
    centre = min(max(successes / trials, 1e-15), 1 - 1e-15)

    def inside(p: float) -> bool:
        return log_betabinom_e(successes, trials, p, a, b) < thr

    if not inside(centre):  # the prior dominates (tiny samples): centre the search on the posterior mean
        centre = phat
        if not inside(centre):
            return centre, centre
    lo = 0.0
    if inside(1e-15):
        lo = 0.0
    else:
        x0, x1 = 1e-15, centre
        for _ in range(60):
            mid = math.sqrt(x0 * x1) if x0 > 0 else (x0 + x1) / 2
            if inside(mid):
                x1 = mid
            else:
                x0 = mid
        lo = x0
    hi = 1.0
    if not inside(1 - 1e-15):
        q0, q1 = 1.0 - centre, 1e-15  # search on 1-p in log space for precision near 1
        for _ in range(60):
            mid = math.sqrt(q0 * q1)
            if inside(1.0 - mid):
                q0 = mid
            else:
                q1 = mid
        hi = 1.0 - q1
    return lo, hi
