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

from scipy import special


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


def one_sided_alpha(alpha: float) -> float:
    """The two-sided level whose boundary bounds one side at level alpha.

    The two-sided mixture is the average of two half-normal mixtures, M = (M+ + M-) / 2, and M- <= 1
    while the statistic is positive; so M >= (1/alpha + 1) / 2 implies M+ >= 1/alpha, whose chance of
    ever happening is at most alpha (Ville). A Fail only ever uses the upper side and a Pass only the
    other bound, so each error is controlled at alpha while the boundary is that of ~2 alpha.
    """
    return 2.0 * alpha / (1.0 + alpha)


def upper_e_value(z: float, v: float, alpha: float, v_opt: float) -> float:
    """Half-normal mixture e-value for "larger than under the null" at z-score z and intrinsic time v.

    M+ = 2 sqrt(rho / (v + rho)) exp(S^2 / (2 (v + rho))) Phi(S / sqrt(v + rho)), S = z sqrt(v).
    """
    if v <= 0:
        return 1.0
    rho = mixture_rho(v_opt, one_sided_alpha(alpha))
    s = z * math.sqrt(v)
    w = v + rho
    log_phi = _log_norm_cdf(s / math.sqrt(w))
    log_e = math.log(2.0) + 0.5 * math.log(rho / w) + s * s / (2.0 * w) + log_phi
    return math.exp(min(log_e, 700.0))


def _log_norm_cdf(x: float) -> float:
    if x > -30:
        return math.log(0.5 * math.erfc(-x / math.sqrt(2.0)))
    return -0.5 * x * x - math.log(-x) - 0.5 * math.log(2 * math.pi)  # Mills-ratio asymptote


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


def side_threshold(alpha: float, side_mass: float) -> float:
    """log threshold for the two-sided beta-binomial mixture M so that one side is tested at level alpha.

    Split the prior at the null p: M = w+ M+ + w- M-, each part a test martingale. While the data lie on
    the + side, M- <= 1 (the likelihood ratio is below 1 for every alternative on the other side), so
    M >= w+ / alpha + w- implies M+ >= 1 / alpha, which happens with probability at most alpha (Ville).
    """
    w = min(max(side_mass, 1e-12), 1.0)
    return math.log(w / alpha + (1.0 - w))


def prior_mass_above(p: float, a: float, b: float) -> float:
    """P(pi > p) under the Beta(a, b) prior."""
    return float(special.betaincc(a, b, p))


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
    """Always-valid bounds for a success probability, each end one-sided at level alpha.

    p is excluded when the mixture e-value against it crosses the side's threshold (`side_threshold`),
    which depends on the prior mass beyond p. A first pass with the two-sided threshold log(1/alpha)
    finds ends further out; the side thresholds taken there are at least those at the final ends
    (the mass beyond p shrinks as p moves out), so the second pass is conservative and needs no special
    function inside the bisection. The log e-value is convex in p with its minimum at successes/trials.
    """
    if trials <= 0:
        return 0.0, 1.0
    s, f = successes, trials - successes
    const = _lbeta(a + s, b + f) - _lbeta(a, b)
    centre = min(max(s / trials, 1e-15), 1 - 1e-15)
    two_sided = math.log(1.0 / alpha)
    lo1, hi1 = _ends(s, f, const, centre, thr_lo=two_sided, thr_hi=two_sided)
    thr_lo = side_threshold(alpha, prior_mass_above(lo1, a, b)) if lo1 > 0 else two_sided
    thr_hi = side_threshold(alpha, 1.0 - prior_mass_above(hi1, a, b)) if hi1 < 1 else two_sided
    return _ends(s, f, const, centre, thr_lo=thr_lo, thr_hi=thr_hi)


def _ends(
    s: float, f: float, const: float, centre: float, *, thr_lo: float, thr_hi: float
) -> tuple[float, float]:
    def log_e(p: float) -> float:
        return const - (s * math.log(p) if s else 0.0) - (f * math.log1p(-p) if f else 0.0)

    lo = 0.0
    if log_e(1e-15) >= thr_lo:
        x0, x1 = 1e-15, centre  # outside, inside; bisect in log space for precision near 0
        for _ in range(40):
            mid = math.sqrt(x0 * x1)
            if log_e(mid) < thr_lo:
                x1 = mid
            else:
                x0 = mid
        lo = x0
    hi = 1.0
    if log_e(1 - 1e-15) >= thr_hi:
        q0, q1 = 1.0 - centre, 1e-15  # on 1 - p: inside, outside
        for _ in range(40):
            mid = math.sqrt(q0 * q1)
            if log_e(1.0 - mid) < thr_hi:
                q0 = mid
            else:
                q1 = mid
        hi = 1.0 - q1
    return lo, hi
