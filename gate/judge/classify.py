"""Stage 3 — classify: per objective × source, the statistical checks and the verdict they add up to.

Checks by evidence form and objective:

* conformance (absolute bound ``max``/``min``): the canary's quantile (samples: order statistics;
  histograms: bucket edges) or error ratio (beta-binomial mixture) interval against the bound;
  gauges: level interval, and the Theil-Sen trend against ``max_growth``;
* regression (``max_increase`` relative to stable):
  - *location* — Mann-Whitney U with the Hodges-Lehmann shift on the log scale (Kayenta parity);
  - *tail* — the objective's quantile of canary vs stable with distribution-free intervals, which
    sees a heavier tail or higher variance at an unchanged median (Kayenta issue #780);
  - *errors* — the conditional exact comparison of error ratios (Kayenta issue #426).

Every interval is always-valid at its share of alpha. A check *fails* only when the worsening is
significant (the interval excludes "no change") and the estimate exceeds the tolerance — Kayenta's
rule of statistical plus practical significance; it *passes* only when the whole interval is inside the
tolerance, so early looks are Inconclusive and a pass is earned. Resolution-limited evidence
(histograms) is compared edge to edge, so a difference within a bucket is never a regression.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import special

from gate.judge import fmt
from gate.judge.describe import quantile_interval
from gate.judge.spec import JudgePolicy, ObjectiveSpec
from gate.judge.stats.proportions import compare_ratios, ratio_interval
from gate.judge.stats.quantiles import QuantileInterval, histogram_quantile
from gate.judge.stats.ranks import RankTest, effective_n, mann_whitney_buckets, mann_whitney_samples
from gate.judge.stats.sequential import one_sided_alpha, z_boundary
from gate.judge.stats.trend import theil_sen
from gate.judge.transform import Prepared, align, duration, per_bucket, same_form
from gate.judge.verdict import Check, Numbers, Status, Verdict, worst

METHOD_QUANTILE = "order-statistic confidence sequence (beta-binomial mixture)"
METHOD_BUCKETS = "bucket-edge confidence sequence (order statistics mapped to le edges)"


def planned_checks(obj: ObjectiveSpec, kind: str) -> list[str]:
    """Names of the checks an objective gets for one evidence form (they share the verdict's alpha)."""
    names: list[str] = []
    if obj.max is not None or obj.min is not None:
        names.append("bound")
    if obj.max_growth is not None and kind == "gauge":
        names.append("trend")
    if obj.max_increase is not None or obj.max_decrease is not None:
        if kind == "counts":
            names.append("errors")
        else:
            names.append("location")
            if kind in ("samples", "histogram"):
                names.append("tail")  # at the objective's quantile, p99 without one: tails the median misses
    return names


def classify(
    obj: ObjectiveSpec,
    source: str,
    canary: Prepared | None,
    stable: Prepared | None,
    *,
    alpha: float,
    policy: JudgePolicy,
    memo: dict[tuple[object, ...], object] | None = None,
    final: bool = False,
) -> Verdict:
    """The verdict for one objective on one source, from cleaned canary (and stable) evidence.

    With `final` (the step's last look, its planned evidence in), a check that showed no harm becomes a
    Pass that states the minimum detectable effect — or, when the policy demands power the evidence did
    not have, an insufficient Inconclusive that says so (see `at_horizon`).
    """
    # Without a declared unit: counts are ratios, samples and histograms latencies, gauges plain numbers.
    default_unit = {"counts": "ratio", "samples": "seconds", "histogram": "seconds"}
    unit = obj.unit or (default_unit.get(canary.kind, "") if canary is not None else "")
    gate = _gate(obj, canary, "canary", policy)
    if gate is not None or canary is None:
        # Every verdict says which side it is on: here, no evidence (too little, missing, stale, ...).
        missing = _inconclusive("evidence", "conformance", gate or "no canary evidence")
        return _verdict(obj, source, [_side(missing)])
    names = planned_checks(obj, canary.kind)
    if not names:
        msg = f"objective has no bound that applies to {canary.kind} evidence"
        return _verdict(
            obj, source, [_side(Check(name="plan", kind="conformance", status=Status.ERROR, reason=msg))]
        )
    share = alpha / len(names)
    checks: list[Check] = []
    for name in names:
        if name in ("location", "tail", "errors"):
            why = _gate(obj, stable, "stable", policy)
            if why is not None or stable is None:
                checks.append(_inconclusive(name, "regression", why or "no stable evidence to compare with"))
                continue
            c_form, s_form = same_form(canary, stable)
            if s_form.kind != c_form.kind:
                msg = f"canary has {canary.kind} evidence but stable has {stable.kind}"
                checks.append(_inconclusive(name, "regression", msg))
                continue
            checks.append(_REGRESSION[name](_Ctx(obj, share, policy, unit, memo), c_form, s_form))
        else:
            checks.append(_CONFORMANCE[name](_Ctx(obj, share, policy, unit, memo), canary))
    checks = [_side(c) for c in checks]
    if final:
        checks = [at_horizon(c, _Ctx(obj, share, policy, unit, memo)) for c in checks]
    return _verdict(obj, source, checks)


def _side(check: Check) -> Check:
    """Which boundary the check stopped on: harm shown, no harm (harm ruled out), or neither yet."""
    if check.status == Status.FAIL:
        side = "harm"
    elif check.status == Status.PASS:
        side = "no harm"
    elif check.insufficient:
        side = "no evidence"
    else:
        side = "undecided"
    return check.model_copy(update={"numbers": {**check.numbers, "side": side}})


def at_horizon(check: Check, ctx: _Ctx) -> Check:
    """At the step's planned horizon: an undecided check on which no harm was shown passes, stating
    the smallest change it could have detected (the minimum detectable effect, MDE).

    The MDE at probability P (the policy's power probability, 80 % by default) is the change whose
    estimate would cross the Fail rule (significant and beyond the tolerance) P of the time:
    ``max(tolerance, w) + z_P · w / z_α`` on the log scale, with w the interval's half-width towards
    harm and z_α the always-valid boundary at this evidence (so w / z_α is the standard error). When
    the policy demands power (`detect`) and the MDE exceeds it, the check stays Inconclusive and is
    insufficient: the evidence could not have caught that change, so the step holds. An estimate that is
    itself beyond the tolerance is not "no harm shown": it stays Inconclusive.
    """
    if check.status != Status.INCONCLUSIVE or check.insufficient:
        return check
    mde, words = _mde(check, ctx)
    if mde is None:
        return check
    policy = ctx.policy
    prob = fmt.pct(policy.power_probability)
    numbers = {**check.numbers, "mde": mde, "mde_probability": policy.power_probability}
    base = check.reason.removeprefix("not yet conclusive: ")
    if policy.power_detect is not None and not mde <= policy.power_detect:
        reason = (
            f"the step ended without the power the policy demands: {base}; the smallest change this evidence "
            f"could have detected {prob} of the time is {words}, more than the "
            f"{fmt.pct(policy.power_detect)} it must catch — never promoted on (collect more evidence: "
            "a longer step or more traffic)"
        )
        numbers["side"] = "underpowered"
        return check.model_copy(update={"reason": reason, "numbers": numbers, "insufficient": True})
    reason = (
        f"no harm shown by the end of the step: {base}; smallest change it could have detected "
        f"({fmt.confidence(ctx.alpha)}, {prob} of the time): {words}"
    )
    numbers["side"] = "no harm at horizon"
    return check.model_copy(update={"status": Status.PASS, "reason": reason, "numbers": numbers})


def _mde(check: Check, ctx: _Ctx) -> tuple[float | None, str]:
    """The minimum detectable effect of an undecided check, relative (for words: also absolute)."""
    n = check.numbers
    z_p = float(special.ndtri(ctx.policy.power_probability))

    def num(key: str) -> float:
        v = n.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else math.nan

    n_c, n_s = num("n_canary"), num("n_stable")
    v = effective_n(n_c, n_s) if not math.isnan(n_s) else n_c
    z_a = z_boundary(v, one_sided_alpha(ctx.alpha), ctx.policy.design_requests / 2.0)
    if not (math.isfinite(z_a) and z_a > 0):
        return None, ""
    if check.kind == "regression":
        tol = num("tolerance")
        if check.name == "errors":
            est, lo = num("rate_ratio"), num("lower")
        else:
            est, lo = 1 + num("difference"), 1 + num("lower")
        if not (est > 0 and math.isfinite(est)):
            return None, ""
        if math.log(est) > math.log1p(tol):
            return None, ""  # estimated beyond the tolerance: not "no harm shown"
        w = math.log(est / lo) if lo > 0 else math.inf
        log_mde = max(math.log1p(tol), w) + z_p * w / z_a
        mde = math.expm1(log_mde) if log_mde < 700 else math.inf
        return mde, f"+{fmt.pct(mde)}" if math.isfinite(mde) else "unbounded (no increase could be shown)"
    bound = ctx.obj.max
    est, lo = num("canary"), num("lower")
    if bound is None or not (math.isfinite(est) and est <= bound and bound > 0):
        return None, ""  # a `min` bound, or an estimate beyond the bound
    w = est - lo if math.isfinite(lo) else math.inf
    value = bound + w * (1 + z_p / z_a)
    mde = value / bound - 1
    unit = "ratio" if check.numbers.get("errors") is not None else ctx.unit
    words = f"{fmt.value(value, unit)} ({fmt.pct(mde)} above the bound)"
    if not math.isfinite(value):
        words = "unbounded"
    return mde, words


@dataclass(frozen=True)
class _Ctx:
    """What every check of one verdict shares: the objective, its alpha share, the policy, the unit."""

    obj: ObjectiveSpec
    alpha: float
    policy: JudgePolicy
    unit: str
    memo: dict[tuple[object, ...], object] | None = None
    """Results shared between objectives on the same evidence (e.g. one location test per SLI × source)."""

    @property
    def increase_tolerance(self) -> float:
        """Tolerated relative increase: max_increase, at least the policy's band (inf if unset)."""
        if self.obj.max_increase is None:
            return math.inf
        return max(self.obj.max_increase, self.policy.tolerance)

    @property
    def decrease_tolerance(self) -> float:
        """Tolerated relative decrease: max_decrease, at least the policy's band (inf if unset)."""
        if self.obj.max_decrease is None:
            return math.inf
        return max(self.obj.max_decrease, self.policy.tolerance)

    def halved(self) -> _Ctx:
        """The same context with half the alpha (for a check made of two sub-tests)."""
        return _Ctx(self.obj, self.alpha / 2, self.policy, self.unit, self.memo)


def _gate(obj: ObjectiveSpec, p: Prepared | None, track: str, policy: JudgePolicy) -> str | None:
    """Why this entry cannot be judged (Inconclusive), or None."""
    if p is None:
        return f"no {track} evidence"
    if not p.usable:
        return f"{track} evidence unusable: " + "; ".join(p.problems)
    need = max(obj.min_requests, policy.min_samples) if p.kind != "gauge" else 3
    if p.n < need:
        what = "points" if p.kind == "gauge" else "requests"
        return f"too little {track} evidence: {p.n:g} of {need} {what} needed"
    if obj.min_duration > 0:
        span = duration(p)
        if not math.isnan(span) and span < obj.min_duration:
            return f"{track} evidence covers {span:.0f}s of the {obj.min_duration:.0f}s required"
    return None


def _inconclusive(name: str, kind: str, reason: str) -> Check:
    """A check that could not run for want of evidence."""
    return Check(
        name=name,
        kind="regression" if kind == "regression" else "conformance",
        status=Status.INCONCLUSIVE,
        reason=reason,
        insufficient=True,
    )


def _verdict(obj: ObjectiveSpec, source: str, checks: list[Check]) -> Verdict:
    status = worst(*(c.status for c in checks))
    decisive = [c for c in checks if c.status == status]
    if status == Status.PASS:
        reason = "; ".join(c.reason for c in checks)
    else:
        reason = "; ".join(c.reason for c in decisive)
    # The numbers of the check that decided (each check keeps its own in `checks`).
    numbers: Numbers = {"check": decisive[0].name, **decisive[0].numbers}
    return Verdict(
        objective=obj.key,
        sli=obj.sli,
        source=source,
        status=status,
        reason=reason,
        critical=obj.critical,
        numbers=numbers,
        checks=checks,
        insufficient=any(c.insufficient and c.status == Status.INCONCLUSIVE for c in checks),
    )


# ---------------------------------------------------------------- conformance


def _bound(ctx: _Ctx, canary: Prepared) -> Check:
    obj, alpha, policy = ctx.obj, ctx.alpha, ctx.policy
    if canary.kind == "counts":
        return _ratio_bound(ctx, canary)
    q = obj.quantile if obj.quantile is not None else 0.5
    qi = quantile_interval(canary, q, alpha, policy.design_requests)
    what = _qname(q) if canary.kind != "gauge" or obj.quantile is not None else "level (median)"
    check = _against_bounds(ctx, qi.estimate, qi.lower, qi.upper, what=what, numbers=_qnumbers(qi, alpha))
    if check.status != Status.INCONCLUSIVE or canary.kind != "histogram" or canary.bounds is None:
        return check
    # A bound strictly inside the bucket holding the quantile: no amount of evidence decides it.
    low, high = bucket_around(canary.bounds, qi.estimate)
    inside = [b for b in (obj.max, obj.min) if b is not None and low < b < high]
    if not inside:
        return check
    unit = ctx.unit
    reason = (
        f"the buckets cannot resolve the bound {fmt.value(inside[0], unit)}: {what} "
        f"{fmt.value(qi.estimate, unit)} lies in the bucket {fmt.interval(low, high, unit)}, which holds the "
        f"bound, so no amount of evidence decides it; add a bucket edge at {fmt.value(inside[0], unit)} — "
        "never promoted on"
    )
    return check.model_copy(
        update={"reason": reason, "insufficient": True, "numbers": {**check.numbers, "unresolvable": True}}
    )


def _ratio_bound(ctx: _Ctx, canary: Prepared) -> Check:
    obj, alpha, policy = ctx.obj, ctx.alpha, ctx.policy
    center = obj.max if obj.max is not None else (obj.min if obj.min is not None else 0.01)
    ri = ratio_interval(canary.errors, canary.total, alpha, policy.design_requests, max(center, 1e-4))
    numbers: Numbers = {
        "canary": ri.estimate,
        "lower": ri.lower,
        "upper": ri.upper,
        "errors": ri.errors,
        "n_canary": ri.total,
        "clopper_pearson_lower": ri.cp_lower,
        "clopper_pearson_upper": ri.cp_upper,
        "confidence": 1 - alpha,
        "method": "beta-binomial mixture confidence sequence (Clopper-Pearson shown for reference)",
    }
    return _against_bounds(
        ctx, ri.estimate, ri.lower, ri.upper, what="error ratio", numbers=numbers, unit="ratio"
    )


def _against_bounds(
    ctx: _Ctx, est: float, lower: float, upper: float, *, what: str, numbers: Numbers, unit: str = ""
) -> Check:
    """Fail when the interval is wholly beyond a bound, pass when wholly within all bounds.

    Bucket-edge intervals are half-open, (lower, upper]: a quantile in the bucket above the bound's edge
    is certainly beyond it, so there `lower == max` already fails.
    """
    obj, alpha, unit = ctx.obj, ctx.alpha, unit or ctx.unit
    iv = fmt.interval(lower, upper, unit)
    conf = fmt.confidence(alpha)
    numbers = {**numbers, "max": obj.max, "min": obj.min}
    above = lower >= obj.max if numbers.get("resolution_limited") is True and obj.max is not None else None
    if obj.max is not None and (above if above is not None else lower > obj.max):
        reason = (
            f"{what} {fmt.value(est, unit)} exceeds {fmt.value(obj.max, unit)}: {conf} interval {iv} is above"
        )
        return Check(name="bound", kind="conformance", status=Status.FAIL, reason=reason, numbers=numbers)
    if obj.min is not None and upper < obj.min:
        reason = f"{what} {fmt.value(est, unit)} < {fmt.value(obj.min, unit)}: {conf} interval {iv} is under"
        return Check(name="bound", kind="conformance", status=Status.FAIL, reason=reason, numbers=numbers)
    ok_max = obj.max is None or upper <= obj.max
    ok_min = obj.min is None or lower >= obj.min
    limit = " and ".join(
        x
        for x in (
            f"≤ {fmt.value(obj.max, unit)}" if obj.max is not None else "",
            f"≥ {fmt.value(obj.min, unit)}" if obj.min is not None else "",
        )
        if x
    )
    if ok_max and ok_min:
        reason = f"{what} {fmt.value(est, unit)} is {limit}: its {conf} interval {iv} lies within"
        return Check(name="bound", kind="conformance", status=Status.PASS, reason=reason, numbers=numbers)
    reason = f"not yet conclusive: {what} {fmt.value(est, unit)}, {conf} interval {iv} straddles {limit}"
    return Check(name="bound", kind="conformance", status=Status.INCONCLUSIVE, reason=reason, numbers=numbers)


def _trend(ctx: _Ctx, canary: Prepared) -> Check:
    obj, alpha, policy = ctx.obj, ctx.alpha, ctx.policy
    assert canary.times is not None and canary.values is not None and obj.max_growth is not None
    tr = theil_sen(canary.times, canary.values, alpha)
    span = duration(canary)
    margin = policy.trend_margin * abs(tr.level) / span if span and span > 0 and math.isfinite(span) else 0.0
    limit = obj.max_growth + margin
    numbers: Numbers = {
        "slope": tr.slope,
        "lower": tr.lower,
        "upper": tr.upper,
        "level": tr.level,
        "points": tr.n,
        "max_growth": obj.max_growth,
        "margin": margin,
        "confidence": 1 - alpha,
        "method": "Theil-Sen slope with Sen's interval (independent residuals assumed)",
    }
    per_min = 60.0
    lo_min, hi_min = tr.lower * per_min, tr.upper * per_min
    desc = f"trend {tr.slope * per_min:+.3g}/min, interval [{lo_min:+.3g}, {hi_min:+.3g}]/min"
    bound = f"{obj.max_growth * per_min:+.3g}/min (+{margin * per_min:.2g}/min for flatness)"
    if tr.lower > limit:
        return Check(
            name="trend",
            kind="conformance",
            status=Status.FAIL,
            reason=f"{desc} grows faster than {bound}",
            numbers=numbers,
        )
    if tr.upper <= limit:
        return Check(
            name="trend",
            kind="conformance",
            status=Status.PASS,
            reason=f"{desc} stays within {bound}",
            numbers=numbers,
        )
    return Check(
        name="trend",
        kind="conformance",
        status=Status.INCONCLUSIVE,
        reason=f"not yet conclusive: {desc} straddles {bound}",
        numbers=numbers,
    )


# ---------------------------------------------------------------- regression


def _location(ctx: _Ctx, canary: Prepared, stable: Prepared) -> Check:
    alpha, policy = ctx.alpha, ctx.policy
    tol = ctx.increase_tolerance
    if canary.kind == "histogram":
        return _histogram_location(ctx, canary, stable)
    assert canary.values is not None and stable.values is not None
    c = canary.values if canary.kind == "samples" else np.sort(canary.values)
    s = stable.values if stable.kind == "samples" else np.sort(stable.values)
    lc = canary.log_values() if canary.kind == "samples" else None
    ls = stable.log_values() if stable.kind == "samples" else None
    positive = lc is not None and ls is not None
    if lc is not None and ls is not None:
        rt = _memo(
            ctx,
            ("location", id(canary), id(stable), alpha),
            lambda: mann_whitney_samples(lc, ls, alpha, policy.design_requests),
        )
        change, lo, hi = math.exp(rt.shift) - 1, math.exp(rt.shift_lower) - 1, math.exp(rt.shift_upper) - 1
    else:
        rt = mann_whitney_samples(c, s, alpha, policy.design_requests)
        ref = abs(_median(s)) or 1.0
        change, lo, hi = rt.shift / ref, rt.shift_lower / ref, rt.shift_upper / ref
    numbers: Numbers = {
        "canary": _median(c),
        "stable": _median(s),
        "difference": change,
        "lower": lo,
        "upper": hi,
        "tolerance": tol,
        "statistic": rt.z,
        "boundary": rt.boundary,
        "e_value": rt.e_value,
        "p_value": _p_value(rt.e_value),
        "effect_size": rt.auc,
        "n_canary": rt.n_canary,
        "n_stable": rt.n_stable,
        "confidence": 1 - alpha,
        "method": "Mann-Whitney U, Hodges-Lehmann shift"
        + (" of log values" if positive else "")
        + ", normal-mixture confidence sequence",
    }
    desc = (
        f"canary vs stable shift {fmt.factor(1 + change)} (Hodges-Lehmann; {fmt.confidence(alpha)} "
        f"interval {fmt.factor(1 + lo)}–{fmt.factor(1 + hi)}), z {rt.z:.2f} vs boundary {rt.boundary:.2f}"
    )
    return _decide_change(
        "location",
        (change, lo, hi),
        up=rt.significant_up,
        down=rt.significant_down,
        ctx=ctx,
        desc=desc,
        numbers=numbers,
    )


def _histogram_location(ctx: _Ctx, canary: Prepared, stable: Prepared) -> Check:
    """The median on buckets, compared as the tail check does; the bucket rank test shows significance.

    Mann-Whitney on bucket counts (ties within a bucket counted half, exact tie correction) says whether
    the canary is significantly slower at all; the medians' bucket-edge intervals, combined by their
    half-widths on the log scale as the samples path does, say by how much.
    """
    alpha, policy = ctx.alpha, ctx.policy
    bounds, cc, sc = align(canary, stable)
    rt = mann_whitney_buckets(per_bucket(cc), per_bucket(sc), alpha / 2, policy.design_requests)
    extra: Numbers = {
        "statistic": rt.z,
        "boundary": rt.boundary,
        "e_value": rt.e_value,
        "p_value": _p_value(rt.e_value),
        "effect_size": rt.auc,
        "method": "Mann-Whitney U on bucket counts (exact tie correction) + median bucket-edge intervals "
        "combined by half-widths on the log scale",
    }
    rank = (rt.significant_up, rt.significant_down, extra)
    return _tail_buckets(ctx.halved(), 0.5, (bounds, cc, sc), name="location", rank=rank)


def _tail(ctx: _Ctx, canary: Prepared, stable: Prepared) -> Check:
    obj, alpha, policy, unit = ctx.obj, ctx.alpha, ctx.policy, ctx.unit
    q = obj.quantile if obj.quantile is not None else 0.99
    if canary.kind == "histogram":
        bounds, cc, sc = align(canary, stable)
        return _tail_buckets(ctx, q, (bounds, cc, sc), name="tail")
    qc = quantile_interval(canary, q, alpha, policy.design_requests)
    qs = quantile_interval(stable, q, alpha, policy.design_requests)
    tol = ctx.increase_tolerance
    if qc.estimate > 0 and qs.estimate > 0:
        # Log ratio of the quantiles; each side's interval gives its standard error (asymmetric sides kept).
        est = math.log(qc.estimate / qs.estimate)
        down = math.hypot(_log_gap(qc.estimate, qc.lower), _log_gap(qs.upper, qs.estimate))
        up = math.hypot(_log_gap(qc.upper, qc.estimate), _log_gap(qs.estimate, qs.lower))
        change, lo, hi = math.expm1(est), math.expm1(est - down), math.expm1(est + up)
    else:
        ref = abs(qs.estimate) or 1.0
        diff = qc.estimate - qs.estimate
        down = math.hypot(qc.estimate - qc.lower, qs.upper - qs.estimate)
        up = math.hypot(qc.upper - qc.estimate, qs.estimate - qs.lower)
        change, lo, hi = diff / ref, (diff - down) / ref, (diff + up) / ref
    numbers: Numbers = {
        "quantile": q,
        "canary": qc.estimate,
        "stable": qs.estimate,
        "difference": change,
        "lower": lo,
        "upper": hi,
        "tolerance": tol,
        "canary_lower": qc.lower,
        "canary_upper": qc.upper,
        "stable_lower": qs.lower,
        "stable_upper": qs.upper,
        "n_canary": qc.n,
        "n_stable": qs.n,
        "confidence": 1 - alpha,
        "method": METHOD_QUANTILE + ", intervals combined on the log scale",
    }
    desc = (
        f"{_qname(q)} canary {fmt.value(qc.estimate, unit)} vs stable {fmt.value(qs.estimate, unit)}: "
        f"{fmt.factor(1 + change)} ({fmt.confidence(alpha)} interval "
        f"{fmt.factor(1 + lo)}–{fmt.factor(1 + hi)})"
    )
    return _decide_change(
        "tail", (change, lo, hi), up=lo > 0, down=hi < 0, ctx=ctx, desc=desc, numbers=numbers
    )


def _log_gap(a: float, b: float) -> float:
    """log(a / b) for positive ordered bounds; inf when a bound is missing or non-positive."""
    if not (math.isfinite(a) and math.isfinite(b)) or a <= 0 or b <= 0:
        return math.inf
    return abs(math.log(a / b))


def _tail_buckets(
    ctx: _Ctx,
    q: float,
    aligned: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    name: str,
    rank: tuple[bool, bool, Numbers] | None = None,
) -> Check:
    """Quantiles on buckets, compared like the samples path: intervals combined by their half-widths.

    Each track's interval carries the bucket edges' uncertainty (the always-valid ranks mapped to the
    edges of the buckets holding them); the estimate interpolates inside its bucket. The log ratio's
    interval combines the canary's and stable's half-widths (not both whole widths), so fine buckets
    decide as raw samples do. A Fail also needs the estimate beyond the tolerance (statistical and
    practical significance); a Pass the whole interval inside it. When even unlimited evidence could
    not decide — the buckets around the quantiles are wider apart than the tolerance allows — the check
    is Inconclusive *and insufficient*, with the edges that would resolve it: more of the same evidence
    cannot show a regression, so it never lets a step promote.
    """
    obj, alpha, policy = ctx.obj, ctx.alpha, ctx.policy
    bounds, cc, sc = aligned
    inc, dec = ctx.increase_tolerance, ctx.decrease_tolerance
    qc = histogram_quantile(bounds, cc, q, alpha / 2, policy.design_requests)
    qs = histogram_quantile(bounds, sc, q, alpha / 2, policy.design_requests)
    change, lo, hi = _combine((qc.estimate, qc.lower, qc.upper), (qs.estimate, qs.lower, qs.upper))
    # What unlimited evidence could show: each quantile known to its bucket, no sampling error left.
    (c_lo, c_hi), (s_lo, s_hi) = bucket_around(bounds, qc.estimate), bucket_around(bounds, qs.estimate)
    _, lo_inf, hi_inf = _combine((qc.estimate, c_lo, c_hi), (qs.estimate, s_lo, s_hi))
    numbers: Numbers = {
        "quantile": q,
        "canary": qc.estimate,
        "stable": qs.estimate,
        "difference": change,
        "lower": lo,
        "upper": hi,
        "canary_lower": qc.lower,
        "canary_upper": qc.upper,
        "stable_lower": qs.lower,
        "stable_upper": qs.upper,
        "tolerance": inc if math.isfinite(inc) else dec,
        "resolution_lower": lo_inf,
        "resolution_upper": hi_inf,
        "n_canary": qc.n,
        "n_stable": qs.n,
        "confidence": 1 - alpha,
        "resolution_limited": True,
        "method": METHOD_BUCKETS + ", intervals combined by half-widths on the log scale",
    }
    sig_up, sig_down = lo > 0, hi < 0
    if rank is not None:
        sig_up, sig_down = sig_up or rank[0], sig_down or rank[1]
        numbers.update(rank[2])
    unit = obj.unit or "seconds"
    desc = (
        f"{_qname(q)} canary in {fmt.interval(qc.lower, qc.upper, unit)}, stable in "
        f"{fmt.interval(qs.lower, qs.upper, unit)} (bucket edges, {fmt.confidence(alpha)}): "
        f"{fmt.factor(1 + change)}, interval {fmt.factor(1 + lo)}–{fmt.factor(1 + hi)}"
    )
    if math.isfinite(inc) and qc.lower > 0 and qc.lower >= qs.upper * (1 + inc):
        numbers["direction"] = "up"
        reason = f"{desc}: canary is above stable by more than {fmt.pct(inc)} even at bucket resolution"
        return Check(name=name, kind="regression", status=Status.FAIL, numbers=numbers, reason=reason)
    if math.isfinite(dec) and qc.upper < qs.lower * (1 - dec):
        numbers["direction"] = "down"
        reason = f"{desc}: canary is below stable by more than {fmt.pct(dec)} even at bucket resolution"
        return Check(name=name, kind="regression", status=Status.FAIL, numbers=numbers, reason=reason)
    check = _decide_change(
        name, (change, lo, hi), up=sig_up, down=sig_down, ctx=ctx, desc=desc, numbers=numbers
    )
    if check.status != Status.INCONCLUSIVE:
        return check
    # Could an unchanged canary ever pass here (stable's quantile known to its bucket on both sides)?
    # And could this canary's estimated change, if real, ever fail? If neither: more evidence cannot help.
    _, lo_same, hi_same = _combine((qs.estimate, s_lo, s_hi), (qs.estimate, s_lo, s_hi))
    could_pass = hi_same <= inc and lo_same >= -dec
    could_fail = (lo_inf > 0 and change > inc) or (hi_inf < 0 and -change > dec)
    numbers["resolution"] = hi_same
    if could_pass or could_fail:
        return check
    band = _band(inc, dec)
    advice = recommend_edges(qs.estimate if math.isfinite(qs.estimate) else qc.estimate, min(inc, dec))
    reason = (
        f"the buckets cannot resolve {band} at the {_qname(q)}: {desc}; even unlimited evidence would "
        f"leave ±{fmt.pct(hi_same)} (edges {fmt.interval(s_lo, s_hi, unit)} around stable's {_qname(q)}); "
        f"add bucket edges {advice} — never promoted on"
    )
    numbers["unresolvable"] = True
    return Check(
        name=name,
        kind="regression",
        status=Status.INCONCLUSIVE,
        numbers=numbers,
        reason=reason,
        insufficient=True,
    )


def _combine(
    canary: tuple[float, float, float], stable: tuple[float, float, float]
) -> tuple[float, float, float]:
    """Relative change canary vs stable with its interval: half-widths combined on the log scale.

    Each side is (estimate, lower, upper). Non-positive or unbounded ends give an unbounded side (never a
    false certainty).
    """
    c_est, c_lo, c_hi = canary
    s_est, s_lo, s_hi = stable
    if not (c_est > 0 and s_est > 0 and math.isfinite(c_est) and math.isfinite(s_est)):
        return math.nan, -math.inf, math.inf
    est = math.log(c_est / s_est)
    down = math.hypot(_log_gap(c_est, c_lo), _log_gap(s_hi, s_est))
    up = math.hypot(_log_gap(c_hi, c_est), _log_gap(s_est, s_lo))
    return math.expm1(est), _expm1(est - down), _expm1(est + up)


def _expm1(x: float) -> float:
    if x == -math.inf:
        return -1.0
    return math.inf if x > 700 else math.expm1(x)


def bucket_around(bounds: np.ndarray, value: float) -> tuple[float, float]:
    """The edges (lower, upper] of the bucket that holds `value` (lower 0 for the first bucket)."""
    if not math.isfinite(value):
        return -math.inf, math.inf
    k = min(int(np.searchsorted(bounds, value, side="left")), int(bounds.size) - 1)
    lower = float(bounds[k - 1]) if k > 0 else 0.0
    return lower, float(bounds[k])


def recommend_edges(around: float, tolerance: float) -> str:
    """Bucket edges that resolve `tolerance` near `around` (geometric, ratio 1 + tolerance / 2)."""
    if not (math.isfinite(around) and around > 0) or not (math.isfinite(tolerance) and tolerance > 0):
        return "at every 5 % of the expected latency"
    ratio = 1 + tolerance / 2
    edges = [around * ratio**k for k in range(-3, 4)]
    return "[" + ", ".join(f"{e:.3g}" for e in edges) + "] (ratio ×" + f"{ratio:.3g}" + ")"


def _errors(ctx: _Ctx, canary: Prepared, stable: Prepared) -> Check:
    alpha, policy = ctx.alpha, ctx.policy
    tol = ctx.increase_tolerance
    rc = compare_ratios(canary.errors, canary.total, stable.errors, stable.total, alpha=alpha / 2)
    ci = ratio_interval(canary.errors, canary.total, alpha / 4, policy.design_requests, 0.01, reference=False)
    si = ratio_interval(stable.errors, stable.total, alpha / 4, policy.design_requests, 0.01, reference=False)
    diff_upper = ci.upper - si.lower
    significant = rc.e_value >= 2.0 / alpha and rc.canary_share > rc.null_share  # compared at alpha / 2
    numbers: Numbers = {
        "canary": rc.canary,
        "stable": rc.stable,
        "difference": rc.canary - rc.stable,
        "rate_ratio": rc.rate_ratio,
        "lower": rc.ratio_lower,
        "upper": rc.ratio_upper,
        "tolerance": tol,
        "floor": policy.error_floor,
        "e_value": rc.e_value,
        "p_value": _p_value(rc.e_value),
        "statistic": rc.canary_share,
        "n_canary": canary.total,
        "n_stable": stable.total,
        "errors_canary": canary.errors,
        "errors_stable": stable.errors,
        "confidence": 1 - alpha,
        "method": "conditional exact test on the canary's share of errors, beta-binomial mixture e-process",
    }
    desc = (
        f"error ratio canary {fmt.pct(rc.canary)} vs stable {fmt.pct(rc.stable)} "
        f"({canary.errors:g}/{canary.total:g} vs {stable.errors:g}/{stable.total:g}; rate ratio "
        f"{fmt.factor(rc.rate_ratio)}, interval {fmt.factor(rc.ratio_lower)}–{fmt.factor(rc.ratio_upper)})"
    )
    if significant and rc.rate_ratio > 1 + tol and rc.canary - rc.stable > policy.error_floor:
        return Check(
            name="errors",
            kind="regression",
            status=Status.FAIL,
            numbers=numbers,
            reason=f"{desc}: significantly more errors, beyond +{fmt.pct(tol)} "
            f"and the {fmt.pct(policy.error_floor)} floor",
        )
    if rc.ratio_upper <= 1 + tol or diff_upper <= policy.error_floor:
        return Check(
            name="errors",
            kind="regression",
            status=Status.PASS,
            numbers=numbers,
            reason=f"{desc}: within +{fmt.pct(tol)} (or under the {fmt.pct(policy.error_floor)} floor)",
        )
    return Check(
        name="errors",
        kind="regression",
        status=Status.INCONCLUSIVE,
        numbers=numbers,
        reason=f"not yet conclusive: {desc}",
    )


def _decide_change(
    name: str,
    estimate: tuple[float, float, float],
    *,
    up: bool,
    down: bool,
    ctx: _Ctx,
    desc: str,
    numbers: Numbers,
) -> Check:
    """Fail on a significant change beyond its tolerance; pass when the whole interval is within both."""
    change, lo, hi = estimate
    inc, dec = ctx.increase_tolerance, ctx.decrease_tolerance
    band = _band(inc, dec)
    if up and change > inc:
        reason = f"{desc}: significantly worse, beyond the tolerated +{fmt.pct(inc)}"
        return Check(name=name, kind="regression", status=Status.FAIL, numbers=numbers, reason=reason)
    if down and -change > dec:
        reason = f"{desc}: significantly lower, beyond the tolerated -{fmt.pct(dec)}"
        return Check(name=name, kind="regression", status=Status.FAIL, numbers=numbers, reason=reason)
    if hi <= inc and lo >= -dec:
        reason = f"{desc}: within the tolerated {band}"
        return Check(name=name, kind="regression", status=Status.PASS, numbers=numbers, reason=reason)
    why = (
        "significant but within tolerance so far"
        if (up or down)
        else "interval still straddles the tolerance"
    )
    reason = f"not yet conclusive: {desc}; {why} ({band})"
    return Check(name=name, kind="regression", status=Status.INCONCLUSIVE, numbers=numbers, reason=reason)


def _band(inc: float, dec: float) -> str:
    parts = [
        f"+{fmt.pct(inc)}" if math.isfinite(inc) else "",
        f"-{fmt.pct(dec)}" if math.isfinite(dec) else "",
    ]
    return " / ".join(p for p in parts if p)


def _memo(ctx: _Ctx, key: tuple[object, ...], compute: Callable[[], RankTest]) -> RankTest:
    if ctx.memo is None:
        return compute()
    hit = ctx.memo.get(key)
    if not isinstance(hit, RankTest):
        hit = ctx.memo[key] = compute()
    return hit


def _median(sorted_values: np.ndarray) -> float:
    n = sorted_values.size
    return float(sorted_values[(n - 1) // 2] + sorted_values[n // 2]) / 2.0 if n else math.nan


def _qname(q: float) -> str:
    return "median" if q == 0.5 else f"p{q * 100:g}"


def _qnumbers(qi: QuantileInterval, alpha: float) -> Numbers:
    return {
        "quantile": qi.p,
        "canary": qi.estimate,
        "lower": qi.lower,
        "upper": qi.upper,
        "n_canary": qi.n,
        "confidence": 1 - alpha,
        "resolution_limited": qi.resolution_limited,
        "method": METHOD_BUCKETS if qi.resolution_limited else METHOD_QUANTILE,
    }


Conformance = Callable[[_Ctx, Prepared], Check]
Regression = Callable[[_Ctx, Prepared, Prepared], Check]
_CONFORMANCE: dict[str, Conformance] = {"bound": _bound, "trend": _trend}
_REGRESSION: dict[str, Regression] = {"location": _location, "tail": _tail, "errors": _errors}


def _p_value(e_value: float) -> float:
    """The always-valid p-value of an e-value (Ville): min(1, 1/e)."""
    return 1.0 if e_value <= 1.0 else 1.0 / e_value
