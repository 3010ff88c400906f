"""Planning before the rollout: how much evidence each objective × source needs to decide, and whether
the steps and the buckets can give it.

Pure arithmetic on the contract's objectives and policy, with the same always-valid bounds and the
same error budget split (objectives × sources × checks) that the judge uses, so "needs 4,800 requests
per track" is the sample size at which the judge's own interval for an unchanged canary would lie
inside the tolerance — the size at which a good canary is promoted by proof, and a regression of twice
the tolerance is rolled back with high probability.

What it must assume, stated in every row: latencies are shaped like a lognormal with log-sd 0.5 (typical
of web services; a heavier tail needs more), a latency bound is judged with the service running 10 %
below it, and error ratios run at half their bound (0.5 % when the objective has no bound).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from gate.judge.classify import planned_checks
from gate.judge.spec import JudgePolicy, ObjectiveSpec
from gate.judge.stats.proportions import ratio_interval
from gate.judge.stats.quantiles import rank_bounds
from gate.judge.stats.sequential import one_sided_alpha, z_boundary

SHAPE_SIGMA = 0.5
"""Log-sd of the latency shape planning assumes (lognormal)."""
BOUND_MARGIN = 0.10
"""A latency bound is planned for a service running this far below it."""
DEFAULT_ERROR_RATE = 0.005
MAX_PLAN = 100_000_000
PROMETHEUS_DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
"""prometheus_client's default `le` edges (seconds), +Inf implied."""


@dataclass(frozen=True)
class Need:
    """Requests per track one objective × source needs to decide, and how it was computed."""

    objective: str
    source: str
    requests: int | None
    """None: cannot be decided at any size (said in `why`)."""
    check: str
    why: str
    min_requests: int = 0
    """The objective's minEvidence.requests (fewer at a step's end: the step holds)."""
    during: str | None = None
    """The chaos experiment the objective is judged during (None: judged outside chaos)."""


def _solve(ok: object, start: int = 20) -> int | None:
    """Smallest n in [start, MAX_PLAN] with ok(n) true (ok monotone), or None."""
    assert callable(ok)
    hi = start
    while not ok(hi):
        if hi >= MAX_PLAN:
            return None
        hi = min(hi * 2, MAX_PLAN)
    lo = max(start, hi // 2)
    if ok(lo):
        return lo
    while hi - lo > max(1, lo // 200):  # 0.5 % precision is plenty for a plan
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return hi


def _log_quantile_halfwidth(n: int, q: float, alpha: float, design: float) -> float:
    """Half-width on the log scale of the always-valid quantile interval of a lognormal(σ) sample."""
    lo, hi = rank_bounds(n, q, alpha, design)
    if lo < 1 or hi >= n:
        return math.inf
    z_q = float(special.ndtri(q))
    down = z_q - float(special.ndtri(lo / n))
    up = float(special.ndtri((hi + 1) / n)) - z_q
    return SHAPE_SIGMA * max(down, up)


def needs(objectives: Iterable[ObjectiveSpec], policy: JudgePolicy) -> list[Need]:
    """Per objective × source: requests per track to decide at its tolerance and confidence."""
    objs = [o for o in objectives if o.recover_within is None]
    cells = max(1, sum(len(o.sources) for o in objs))
    alpha_cell = policy.alpha / cells
    out: list[Need] = []
    for obj in objs:
        kind = "counts" if obj.unit == "ratio" else "samples"
        checks = planned_checks(obj, kind)
        if not checks:
            continue
        share = alpha_cell / len(checks)
        need, check, why = _need(obj, kind, checks, share, policy)
        floor = max(obj.min_requests, policy.min_samples)
        out.extend(Need(obj.key, source, need, check, why, floor, obj.during) for source in obj.sources)
    return out


def _need(
    obj: ObjectiveSpec, kind: str, checks: Sequence[str], alpha: float, policy: JudgePolicy
) -> tuple[int | None, str, str]:
    """The largest need over the objective's checks (each must decide), with its words."""
    design = policy.design_requests
    floor = max(obj.min_requests, policy.min_samples)
    rows: list[tuple[int | None, str, str]] = []
    for check in checks:
        if check == "tail":
            q = obj.quantile if obj.quantile is not None else 0.99
            tol = math.log1p(max(obj.max_increase or 0.0, policy.tolerance))

            def ok_tail(n: int, q: float = q, tol: float = tol) -> bool:
                w = _log_quantile_halfwidth(n, q, alpha / 2, design)
                return math.sqrt(2.0) * w <= tol

            rows.append((_solve(ok_tail, floor), "tail", f"p{q * 100:g} within +{math.expm1(tol):.0%}"))
        elif check == "location":
            tol = math.log1p(max(obj.max_increase or obj.max_decrease or 0.0, policy.tolerance))

            def ok_loc(n: int, tol: float = tol) -> bool:
                z = z_boundary(n / 2.0, one_sided_alpha(alpha), design / 2.0)
                se = SHAPE_SIGMA * math.sqrt(math.pi / 3.0) * math.sqrt(2.0 / n)
                return z * se <= tol

            rows.append((_solve(ok_loc, floor), "location", f"median within +{math.expm1(tol):.0%}"))
        elif check == "bound" and kind == "samples" and obj.max is not None:
            q = obj.quantile if obj.quantile is not None else 0.5
            margin = -math.log1p(-BOUND_MARGIN)

            def ok_bound(n: int, q: float = q, margin: float = margin) -> bool:
                return _log_quantile_halfwidth(n, q, alpha, design) <= margin

            rows.append(
                (_solve(ok_bound, floor), "bound", f"p{q * 100:g} {BOUND_MARGIN:.0%} under its bound")
            )
        elif check == "bound" and kind == "counts" and obj.max is not None:
            bound = obj.max
            rate = bound / 2

            def ok_ratio(n: int, bound: float = bound, rate: float = rate) -> bool:
                ri = ratio_interval(rate * n, n, alpha, design, max(bound, 1e-4), reference=False)
                return ri.upper <= bound

            rows.append((_solve(ok_ratio, floor), "bound", f"error ratio {rate:.2%} shown under {bound:.2%}"))
        elif check == "errors":
            rate = obj.max / 2 if obj.max is not None else DEFAULT_ERROR_RATE
            floor_pp = policy.error_floor

            def ok_err(n: int, rate: float = rate, floor_pp: float = floor_pp) -> bool:
                ci = ratio_interval(rate * n, n, alpha / 4, design, 0.01, reference=False)
                si = ratio_interval(rate * n, n, alpha / 4, design, 0.01, reference=False)
                return ci.upper - si.lower <= floor_pp

            rows.append(
                (
                    _solve(ok_err, floor),
                    "errors",
                    f"error ratios at {rate:.2%} within {floor_pp:.1%} of each other",
                )
            )
    if not rows:
        return None, "", "no check planned for this evidence"
    worst = max(rows, key=lambda r: math.inf if r[0] is None else r[0])
    return worst


def plan_words(need: Need) -> str:
    """ "needs 4,800 requests per track to decide (p95 within +10%)"."""
    if need.requests is None:
        return f"cannot decide at any traffic ({need.why})"
    return f"needs {need.requests:,} requests per track to decide ({need.why})"


def seconds_needed(need: Need, canary_rps: float) -> float:
    """Seconds at a canary request rate (the smaller track's) to reach the need."""
    if need.requests is None or canary_rps <= 0:
        return math.inf
    return need.requests / canary_rps


# ---------------------------------------------------------------- buckets


@dataclass(frozen=True)
class BucketAdvice:
    """Whether a bucket layout can resolve an objective's tolerance, and the edges that would."""

    objective: str
    resolves: bool
    where: str
    recommended: tuple[float, ...]


def resolvable_ratio(tolerance: float) -> float:
    """Largest ratio of adjacent edges at which a quantile can still be shown within `tolerance`.

    The judge combines each side's bucket half-widths on the log scale (see classify `_tail_buckets`);
    at best (the quantile in the geometric middle of its bucket) that leaves log(ratio) / sqrt(2), which
    must be within log(1 + tolerance).
    """
    return float(math.exp(math.sqrt(2.0) * math.log1p(tolerance)))


def recommended_buckets(tolerance: float, low: float = 0.005, high: float = 10.0) -> tuple[float, ...]:
    """Geometric edges with ratio 1 + tolerance / 2 from `low` to `high` (seconds): resolvable anywhere."""
    ratio = 1.0 + max(tolerance, 0.01) / 2.0
    count = math.ceil(math.log(high / low) / math.log(ratio))
    return tuple(float(f"{low * ratio**k:.4g}") for k in range(count + 1))


def bucket_advice(
    objectives: Iterable[ObjectiveSpec], bounds: Sequence[float], policy: JudgePolicy
) -> list[BucketAdvice]:
    """For relative latency objectives: where these edges can resolve the tolerance, and what would."""
    edges = np.array(sorted(b for b in bounds if math.isfinite(b) and b > 0), dtype=np.float64)
    out: list[BucketAdvice] = []
    for obj in objectives:
        if obj.unit == "ratio" or not obj.relative:
            continue
        tol = max(obj.max_increase or obj.max_decrease or 0.0, policy.tolerance)
        limit = resolvable_ratio(tol)
        ratios = edges[1:] / edges[:-1] if edges.size > 1 else np.array([])
        good = np.flatnonzero(ratios <= limit)
        if good.size == 0:
            where = (
                f"no two adjacent edges are within ×{limit:.3f} of each other: +{tol:.0%} cannot be resolved"
            )
            resolves = False
        else:
            lo, hi = float(edges[good[0]]), float(edges[good[-1] + 1])
            where = f"resolves +{tol:.0%} only between {lo:g} s and {hi:g} s (edges within ×{limit:.3f})"
            resolves = True
        recommended = recommended_buckets(tol)
        out.append(BucketAdvice(obj.key, resolves, where, recommended))
    return out


# ---------------------------------------------------------------- steps


@dataclass(frozen=True)
class StepPlan:
    """One analysed step: the traffic it sees per source, and each need against its duration."""

    number: int
    weight: float
    mirror: float
    duration: float | None
    lines: tuple[str, ...]
    warnings: tuple[str, ...]


def plan_steps(steps: Sequence[object], all_needs: Sequence[Need], rps: float | None) -> list[StepPlan]:
    """Walk the ladder: at each `analyze`, how long each objective × source needs at the step's traffic.

    An objective judged `during` a chaos experiment is not judged at an `analyze` step (no chaos runs
    there), so it is not planned there. `rps` is the production requests per second at full traffic;
    the canary's share is the step's weight (production) or mirror percent (shadow); the smaller track
    binds. Synthetic evidence depends
    on the load's own rate and is not timed here.
    """
    from gate.contract.steps import Analyze, Mirror, SetWeight

    weight, mirror = 0.0, 0.0
    out: list[StepPlan] = []
    for number, step in enumerate(steps, 1):
        if isinstance(step, SetWeight):
            weight = float(step.weight)
            continue
        if isinstance(step, Mirror):
            mirror = float(step.percent)
            continue
        if not isinstance(step, Analyze):
            continue
        lines: list[str] = []
        warnings: list[str] = []
        for need in all_needs:
            if need.source == "synthetic" or need.during is not None:
                continue
            if rps is None:
                continue
            share = weight if need.source == "production" else mirror
            per_track = (
                rps * min(share, 100.0 - weight) / 100.0 if need.source == "production" else rps * share / 100
            )
            seconds = seconds_needed(need, per_track)
            at = f"{per_track:.3g} canary requests/s on {need.source}"
            if need.requests is None:
                text = f"{need.objective} on {need.source}: {plan_words(need)}"
            elif not math.isfinite(seconds):
                text = f"{need.objective} on {need.source}: no {need.source} traffic reaches the canary here"
            else:
                text = f"{need.objective} on {need.source}: {plan_words(need)}: {_dur(seconds)} at {at}"
            lines.append(text)
            if step.duration is not None and (need.requests is None or seconds > step.duration):
                if need.requests is not None and not math.isfinite(seconds):
                    continue  # a source this step does not carry is not this step's objective
                got = per_track * step.duration
                head = (
                    f"step {number} (analyze {_dur(step.duration)} at weight {weight:g}%, mirror {mirror:g}%)"
                )
                if need.requests is None:
                    warnings.append(f"{head}: {need.objective} on {need.source} {plan_words(need)}")
                elif got < need.min_requests:
                    warnings.append(
                        f"{head} is too short for {need.objective} on {need.source}: ~{got:,.0f} requests "
                        f"arrive at {at}, fewer than its minimum evidence of {need.min_requests:,}: the step "
                        f"will hold (or roll back, per onInconclusive); {plan_words(need)}, {_dur(seconds)}"
                    )
                else:
                    warnings.append(
                        f"{head} is too short to decide {need.objective} on {need.source} by proof: "
                        f"{plan_words(need)}, ~{got:,.0f} arrive at {at} (needs {_dur(seconds)}); at its "
                        "end it promotes only as 'no harm shown' with a larger minimum detectable effect "
                        "(or holds where the policy demands power) — lengthen the step or send more traffic"
                    )
        out.append(StepPlan(number, weight, mirror, step.duration, tuple(lines), tuple(warnings)))
    return out


def _dur(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "forever"
    if seconds < 90:
        return f"{seconds:.0f}s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


# ---------------------------------------------------------------- the whole contract


@dataclass(frozen=True)
class ContractPlan:
    """What `gate explain` prints and `gate validate` warns about."""

    lines: tuple[str, ...]
    warnings: tuple[str, ...]


def parse_buckets(text: str) -> tuple[float, ...]:
    """`default` (prometheus_client's edges) or comma-separated `le` edges in seconds."""
    if text.strip().lower() == "default":
        return PROMETHEUS_DEFAULT_BUCKETS
    try:
        edges = tuple(
            float(x) for x in text.split(",") if x.strip() and x.strip().lower() not in ("+inf", "inf")
        )
    except ValueError:
        raise ValueError(f"--buckets: {text[:80]!r} is not `default` or comma-separated seconds") from None
    if not edges or any(not (math.isfinite(e) and e > 0) for e in edges) or len(edges) > 512:
        raise ValueError("--buckets: give 1 to 512 positive edges in seconds, e.g. 0.05,0.1,0.25")
    return tuple(sorted(set(edges)))


def contract_plan(
    objectives: Sequence[ObjectiveSpec],
    policy: JudgePolicy,
    steps: Sequence[object],
    *,
    rps: float | None = None,
    buckets: Sequence[float] | None = None,
) -> ContractPlan:
    """Per objective × source the requests it needs, per analysed step the time, and bucket advice."""
    all_needs = needs(objectives, policy)
    lines = [f"{n.objective} on {n.source}: {plan_words(n)}" for n in all_needs]
    warnings = [f"{n.objective} on {n.source} {plan_words(n)}" for n in all_needs if n.requests is None]
    if rps is not None:
        for sp in plan_steps(steps, all_needs, rps):
            lines.extend(f"step {sp.number}: {line}" for line in sp.lines)
            warnings.extend(sp.warnings)
    if buckets is not None:
        for advice in bucket_advice(objectives, buckets, policy):
            shown = ", ".join(f"{e:g}" for e in advice.recommended[:6])
            first, ratio = advice.recommended[0], advice.recommended[1] / advice.recommended[0]
            text = (
                f"{advice.objective}: the buckets {advice.where}; buckets that resolve it anywhere: "
                f"geometric ×{ratio:.3g} from {first:g} s "
                f"({len(advice.recommended)} edges: {shown}, ...)"
            )
            lines.append(text)
            if not advice.resolves:
                warnings.append(text)
    return ContractPlan(tuple(lines), tuple(warnings))
