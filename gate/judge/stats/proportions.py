"""Error ratios: always-valid intervals for one ratio, and a comparison of two that works for rare errors.

One ratio: the beta-binomial mixture interval (anytime-valid), reported beside the fixed-sample
Clopper-Pearson interval (Clopper & Pearson 1934) for reference.

Two ratios (canary vs stable): conditioned on the total number of errors K, under equal error rates
each error is the canary's with probability pi0 = n_c / (n_c + n_s) (the exact conditional test behind
Fisher's and the Poisson rate comparison; Lindon, Sanden & Shirikian 2022 use the same idea sequentially
for software canaries). A beta-binomial mixture over that stream is an e-process, so the comparison is
valid at every look and exact for sparse errors — where Kayenta's rank test on per-interval error counts
is blind (Kayenta issue #426).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import special

from gate.judge.stats.sequential import beta_prior, betabinom_interval, log_betabinom_e, prior_mass_above


@dataclass(frozen=True)
class RatioInterval:
    """An error ratio with its always-valid and its fixed-sample (Clopper-Pearson) interval."""

    errors: float
    total: float
    estimate: float
    lower: float
    upper: float
    cp_lower: float
    cp_upper: float


def ratio_interval(
    errors: float, total: float, alpha: float, n_opt: float, center: float, *, reference: bool = True
) -> RatioInterval:
    """Always-valid interval for errors / total; the mixture prior is centred where decisions are made.

    `reference` adds the fixed-sample Clopper-Pearson interval (for display; nan without it).
    """
    a, b = beta_prior(center, n_opt, alpha)
    lo, hi = betabinom_interval(errors, total, alpha, a, b)
    cp_lo, cp_hi = clopper_pearson(errors, total, alpha) if reference else (math.nan, math.nan)
    est = errors / total if total > 0 else math.nan
    return RatioInterval(errors, total, est, lo, hi, cp_lo, cp_hi)


def clopper_pearson(errors: float, total: float, alpha: float) -> tuple[float, float]:
    """Exact two-sided (fixed-sample) binomial interval."""
    if total <= 0:
        return 0.0, 1.0
    k, n = round(errors), round(total)
    lo = 0.0 if k == 0 else float(special.betaincinv(k, n - k + 1, alpha / 2))
    hi = 1.0 if k == n else float(special.betaincinv(k + 1, n - k, 1 - alpha / 2))
    return lo, hi


@dataclass(frozen=True)
class RatioComparison:
    """Canary vs stable error ratios, conditioned on the errors seen."""

    canary: float
    stable: float
    rate_ratio: float
    """canary ratio / stable ratio (inf when stable had none)."""
    ratio_lower: float
    ratio_upper: float
    e_value: float
    """One-sided evidence that the canary errs more (lower bound of an e-process); >= 1/alpha: significant."""
    canary_share: float
    null_share: float


def compare_ratios(
    canary_errors: float,
    canary_total: float,
    stable_errors: float,
    stable_total: float,
    *,
    alpha: float,
    k_opt: float = 30.0,
) -> RatioComparison:
    """Always-valid comparison of two error ratios via the canary's share of all errors."""
    k = canary_errors + stable_errors
    pi0 = canary_total / (canary_total + stable_total)
    a, b = beta_prior(pi0, k_opt, alpha)
    log_e = log_betabinom_e(canary_errors, k, pi0, a, b) if k > 0 else 0.0
    # One-sided evidence for "the canary takes more than its share": M+ >= (M - w-) / w+ (see side_threshold).
    w_up = prior_mass_above(pi0, a, b)
    e_up = max(0.0, (math.exp(min(log_e, 700.0)) - (1.0 - w_up)) / w_up) if k > 0 else 1.0
    lo, hi = betabinom_interval(canary_errors, k, alpha, a, b) if k > 0 else (0.0, 1.0)
    odds = stable_total / canary_total

    def to_ratio(share: float) -> float:
        # share / (1 - share) is the odds of an error being the canary's; scaled by exposure, the rate ratio.
        return math.inf if share >= 1.0 else share / (1.0 - share) * odds

    c_rate = canary_errors / canary_total
    s_rate = stable_errors / stable_total
    point = c_rate / s_rate if s_rate > 0 else (math.inf if c_rate > 0 else 1.0)
    return RatioComparison(
        canary=c_rate,
        stable=s_rate,
        rate_ratio=point,
        ratio_lower=to_ratio(lo),
        ratio_upper=to_ratio(hi),
        e_value=e_up,
        canary_share=canary_errors / k if k > 0 else math.nan,
        null_share=pi0,
    )
