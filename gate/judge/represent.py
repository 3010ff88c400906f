"""Representativeness: does the synthetic load tell the truth about production?

On the stable track (the same version serving both), synthetic and production latencies are compared
with the same location and tail statistics as a regression, against the policy's tolerance. When the
synthetic load is confidently unlike production, its verdicts are down-weighted: still marked critical
where the contract says so, but a Fail no longer rolls back at once (it counts as a failure), and a
synthetic Fail that production contradicts (a Pass on the same objective) becomes Inconclusive.
"""

from __future__ import annotations

import math

from gate.judge import fmt
from gate.judge.describe import point_quantile
from gate.judge.spec import JudgePolicy
from gate.judge.stats.ranks import mann_whitney_buckets, mann_whitney_samples
from gate.judge.transform import Prepared, align, per_bucket, same_form
from gate.judge.verdict import Comparison, Numbers, Status, Verdict


def compare(
    sli: str, synthetic: Prepared, production: Prepared, alpha: float, policy: JudgePolicy
) -> Comparison:
    """Synthetic vs production on the stable track, for one SLI."""
    tol = policy.representativeness_tolerance
    numbers: Numbers = {"tolerance": tol, "n_synthetic": synthetic.n, "n_production": production.n}
    if synthetic.kind == "counts" and production.kind == "counts":
        s = synthetic.errors / synthetic.total if synthetic.total else math.nan
        p = production.errors / production.total if production.total else math.nan
        numbers.update({"synthetic": s, "production": p})
        reason = f"error ratio synthetic {fmt.pct(s)} vs production {fmt.pct(p)} (reported, not weighed)"
        return Comparison(
            kind="representativeness",
            sli=sli,
            source="synthetic",
            status=Status.PASS,
            reason=reason,
            numbers=numbers,
        )
    synthetic, production = same_form(synthetic, production)  # Locust samples vs Prometheus buckets
    if synthetic.kind != production.kind or synthetic.kind not in ("samples", "histogram"):
        return Comparison(
            kind="representativeness",
            sli=sli,
            source="synthetic",
            status=Status.INCONCLUSIVE,
            reason=f"cannot compare {synthetic.kind} with {production.kind} evidence",
            numbers=numbers,
        )
    if not (synthetic.n >= 1 and production.n >= 1):
        # Prometheus' increase() can give a fraction of a request (even 1e-180): nothing to compare.
        return Comparison(
            kind="representativeness",
            sli=sli,
            source="synthetic",
            status=Status.INCONCLUSIVE,
            reason="too few requests to compare synthetic with production",
            numbers=numbers,
        )
    p95s, p95p = point_quantile(synthetic, 0.95), point_quantile(production, 0.95)
    p50s, p50p = point_quantile(synthetic, 0.5), point_quantile(production, 0.5)
    numbers.update(
        {"synthetic_p50": p50s, "production_p50": p50p, "synthetic_p95": p95s, "production_p95": p95p}
    )
    band = math.log1p(tol)
    ls = synthetic.log_values() if synthetic.kind == "samples" else None
    lp = production.log_values() if production.kind == "samples" else None
    if ls is not None and lp is not None:
        rt = mann_whitney_samples(ls, lp, alpha, policy.design_requests)
        lo, est, hi = rt.shift_lower, rt.shift, rt.shift_upper
        numbers.update(
            {
                "shift": math.expm1(est),
                "lower": math.expm1(lo),
                "upper": math.expm1(hi),
                "statistic": rt.z,
                "effect_size": rt.auc,
            }
        )
        desc = (
            f"synthetic vs production (stable track) shift {fmt.factor(math.exp(est))}, interval "
            f"{fmt.factor(math.exp(lo))}–{fmt.factor(math.exp(hi))}; p95 {fmt.value(p95s, 'seconds')} vs "
            f"{fmt.value(p95p, 'seconds')}"
        )
        if lo > band or hi < -band:
            status = Status.FAIL
            reason = f"synthetic load is not representative: {desc}, beyond ±{fmt.pct(tol)}"
        elif -band <= lo and hi <= band:
            status = Status.PASS
            reason = f"synthetic load resembles production: {desc}, within ±{fmt.pct(tol)}"
        else:
            status = Status.INCONCLUSIVE
            reason = f"representativeness not yet conclusive: {desc}"
        return Comparison(
            kind="representativeness",
            sli=sli,
            source="synthetic",
            status=status,
            reason=reason,
            numbers=numbers,
        )
    # Histograms (or non-positive values): the rank test on buckets, judged against point quantiles.
    if synthetic.kind == "histogram":
        _, cs, cp = align(synthetic, production)
        rt = mann_whitney_buckets(per_bucket(cs), per_bucket(cp), alpha, policy.design_requests)
    else:
        assert synthetic.values is not None and production.values is not None
        rt = mann_whitney_samples(synthetic.values, production.values, alpha, policy.design_requests, False)
    numbers.update({"statistic": rt.z, "effect_size": rt.auc})
    ratio = p95s / p95p if p95p and p95p > 0 else math.nan
    p95_words = f"{fmt.value(p95s, 'seconds')} vs production {fmt.value(p95p, 'seconds')}"
    desc = f"p95 synthetic {p95_words} ({fmt.factor(ratio)})"
    if abs(rt.z) >= rt.boundary and math.isfinite(ratio) and abs(math.log(ratio)) > band:
        return Comparison(
            kind="representativeness",
            sli=sli,
            source="synthetic",
            status=Status.FAIL,
            reason=f"synthetic load is not representative: {desc}, beyond ±{fmt.pct(tol)}",
            numbers=numbers,
        )
    status = Status.INCONCLUSIVE if abs(rt.z) >= rt.boundary else Status.PASS
    return Comparison(
        kind="representativeness",
        sli=sli,
        source="synthetic",
        status=status,
        reason=f"synthetic vs production: {desc}",
        numbers=numbers,
    )


def downweight(verdicts: list[Verdict], unrepresentative: dict[str, str]) -> list[Verdict]:
    """Synthetic verdicts of unrepresentative SLIs: down-weighted; a contradicted Fail is Inconclusive.

    The contract's `critical` mark is kept (reports show both marks); a down-weighted verdict's Fail
    just does not roll back at once as a critical one does — it counts against `failureLimit`.
    """
    production = {(v.objective, v.sli): v for v in verdicts if v.source == "production"}
    out: list[Verdict] = []
    for v in verdicts:
        why = unrepresentative.get(v.sli)
        if v.source != "synthetic" or why is None:
            out.append(v)
            continue
        update: dict[str, object] = {"downweighted": True}
        prod = production.get((v.objective, v.sli))
        if v.status == Status.FAIL and prod is not None and prod.status == Status.PASS:
            update["status"] = Status.INCONCLUSIVE
            update["reason"] = f"synthetic Fail contradicted by a production Pass ({why}): {v.reason}"
        else:
            update["reason"] = f"{v.reason} [down-weighted: {why}]"
        out.append(v.model_copy(update=update))
    return out
