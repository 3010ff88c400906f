"""Recovery: did the SLI come back inside its bound within ``recoverWithin`` of the fault's start?

For an objective with ``during`` (a chaos experiment) and ``recover_within`` (seconds), e.g.
``{sli: http-latency, quantile: 0.99, max: 2.1s, during: risk-api-slow, recoverWithin: 30s}`` — "the
circuit breaker must bring p99 back under 2.1 s within 30 s of the fault" — the judge reads the SLI
over time (a gauge series: one point estimate per scrape step, e.g. Prometheus' p99 per step) and the
fault's window (``Evidence.chaos[during]``: when the fault was in place and when it was undone).

* deadline = fault start + recover_within; the horizon is the end of the series' window, or the fault's
  end when the fault was undone earlier (after that, nothing is recovering from it);
* **Pass**: at least ``MIN_POINTS_AFTER`` points after the deadline, all inside the bound (the SLI is
  back by the deadline and stays there for the rest of the window);
* **Fail**: any point after the deadline outside the bound (still outside, or out again): one point is
  enough, a rollback being the safe direction;
* **Inconclusive** (insufficient): no series, a stale or flagged one, no fault window, a horizon before
  the deadline (the fault was undone or the window ended too early), too few points after the deadline,
  or a gap in them longer than ``MAX_GAP_STEPS`` steps (nothing says where the SLI was meanwhile). Before
  the deadline it is Inconclusive too: recovery is still allowed.

The recovery time is measured from the fault's start to the first point of the last run of points
inside the bound (0 when the SLI never left it). It is a point-estimate check: each point is the SLI as
the source computed it for its step, with no interval and no always-valid guarantee; it takes no share
of the error budget.
"""

from __future__ import annotations

import math

import numpy as np

from gate.judge import fmt
from gate.judge.evidence import FaultWindow, GaugeSeries, Item
from gate.judge.spec import ObjectiveSpec
from gate.judge.verdict import Check, Numbers, Status, Verdict

MIN_POINTS_AFTER = 3
"""Points after the deadline needed before a Pass: one point could be a lucky step."""
MAX_GAP_STEPS = 3.0
"""A gap after the deadline longer than this many typical steps leaves the SLI unknown: Inconclusive."""
METHOD = "point estimate per step against the bound (no interval, no always-valid guarantee)"


def judge_recovery(
    obj: ObjectiveSpec,
    source: str,
    item: Item | None,
    fault: FaultWindow | None,
    *,
    now: float | None = None,
    max_age: float | None = None,
) -> Verdict:
    """The recovery verdict of one objective on one source (``obj.recover_within`` must be set)."""
    assert obj.recover_within is not None
    unit = obj.unit or "seconds"
    what = _what(obj)
    problem = _unusable(obj, item, fault, now=now, max_age=max_age)
    if problem is not None:
        return _verdict(obj, source, Status.INCONCLUSIVE, problem, {}, insufficient=True)
    assert isinstance(item, GaugeSeries) and fault is not None
    pts = np.asarray(item.points, dtype=np.float64).reshape(-1, 2)
    pts = pts[np.all(np.isfinite(pts), axis=1)]
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    start, deadline = fault.start, fault.start + obj.recover_within
    horizon = item.window.end if item.window is not None else (float(pts[-1, 0]) if len(pts) else start)
    if fault.end is not None:
        horizon = min(horizon, fault.end)
    pts = pts[(pts[:, 0] >= start) & (pts[:, 0] <= horizon)]
    times, values = pts[:, 0], pts[:, 1]
    inside = np.ones(times.size, dtype=bool)
    if obj.max is not None:
        inside &= values <= obj.max
    if obj.min is not None:
        inside &= values >= obj.min
    outside = np.flatnonzero(~inside)
    # The recovery: the first point of the last run of points inside the bound.
    if outside.size == 0:
        recovered_at: float | None = start
    elif outside[-1] + 1 < times.size:
        recovered_at = float(times[outside[-1] + 1])
    else:
        recovered_at = None
    recovery = None if recovered_at is None else recovered_at - start
    after = times > deadline
    late_out = np.flatnonzero(after & ~inside)
    numbers: Numbers = {
        "recovery_time": recovery,
        "recover_within": obj.recover_within,
        "fault_start": start,
        "fault_end": fault.end,
        "deadline": deadline,
        "horizon": horizon,
        "points": int(times.size),
        "points_after_deadline": int(after.sum()),
        "peak": float(values.max()) if values.size else None,
        "last": float(values[-1]) if values.size else None,
        "max": obj.max,
        "min": obj.min,
        "method": METHOD,
    }
    bound = _bound_words(obj, unit)
    limit = f"(bound {fmt.value(obj.recover_within, 'seconds')})"
    if late_out.size:
        i = int(late_out[0])
        at = float(times[i]) - start
        value = fmt.value(float(values[i]), unit)
        back = _first_return(inside)
        if back is not None and back < i:
            reason = (
                f"{what} was back {bound} {_s(float(times[back]) - start)} s after the fault started but "
                f"left it again at {_s(at)} s: {value} {limit}"
            )
        elif recovery is not None:
            reason = (
                f"{what} back {bound} only {_s(recovery)} s after the fault started {limit}: "
                f"{value} at {_s(at)} s"
            )
        else:
            reason = f"{what} still not {bound} {_s(at)} s after the fault started {limit}: {value}"
        numbers["first_late_violation"] = at
        return _verdict(obj, source, Status.FAIL, reason, numbers)
    if horizon < deadline:
        reason = (
            f"the window ends {_s(horizon - start)} s after the fault started, before the "
            f"{_s(obj.recover_within)} s deadline: recovery cannot be judged yet"
        )
        if fault.end is not None and fault.end <= (item.window.end if item.window else fault.end):
            reason = (
                f"the fault was undone {_s(fault.end - start)} s after it started, before the "
                f"{_s(obj.recover_within)} s deadline: recovery cannot be judged"
            )
        return _verdict(obj, source, Status.INCONCLUSIVE, reason, numbers, insufficient=True)
    late_times = times[after]
    if late_times.size < MIN_POINTS_AFTER:
        reason = (
            f"only {late_times.size} point(s) after the {_s(obj.recover_within)} s deadline, "
            f"{MIN_POINTS_AFTER} needed"
        )
        if recovery is not None:
            reason += f" ({what} {bound} since {_s(recovery)} s after the fault started)"
        return _verdict(obj, source, Status.INCONCLUSIVE, reason, numbers, insufficient=True)
    gap = _largest_gap(times, deadline, horizon)
    typical = float(np.median(np.diff(times))) if times.size > 1 else math.inf
    if gap > MAX_GAP_STEPS * typical:
        numbers["largest_gap"] = gap
        reason = f"a gap of {_s(gap)} s in the series after the deadline: where {what} was is unknown"
        return _verdict(obj, source, Status.INCONCLUSIVE, reason, numbers, insufficient=True)
    assert recovery is not None  # every point after the deadline is inside
    stayed = f"and stayed there until {_s(horizon - start)} s"
    if outside.size == 0:
        reason = (
            f"{what} stayed {bound} throughout the fault {limit}, {late_times.size} points after the deadline"
        )
    else:
        reason = f"{what} back {bound} {_s(recovery)} s after the fault started {limit} {stayed}"
    return _verdict(obj, source, Status.PASS, reason, numbers)


def _unusable(
    obj: ObjectiveSpec,
    item: Item | None,
    fault: FaultWindow | None,
    *,
    now: float | None,
    max_age: float | None,
) -> str | None:
    """Why the recovery cannot be judged at all, or None."""
    if obj.max is None and obj.min is None:
        return "recoverWithin needs an absolute bound (max or min) to recover into"
    if fault is None:
        return f"no chaos window for {obj.during}: when the fault started is unknown"
    if item is None:
        return f"no series over time for {obj.sli}: recovery is measured per step (from Prometheus)"
    if not isinstance(item, GaugeSeries):
        return f"recovery needs the SLI over time (a gauge series), got {item.kind} evidence"
    if item.missing:
        return "no data over time (the series is missing)" + (f": {item.note[:200]}" if item.note else "")
    if item.stale:
        return "the series over time is stale" + (f": {item.note[:200]}" if item.note else "")
    if item.saturated:
        return "the load generator was saturated (its latencies measure itself)"
    if now is not None and max_age is not None:
        if item.window is None:
            return "stale: the series has no window, so its age is unknown"
        if now - item.window.end > max_age:
            return f"stale: the newest data is {now - item.window.end:.0f}s old (limit {max_age:.0f}s)"
    return None


def _s(seconds: float) -> str:
    """Seconds in words: 12, 3.1, 0.25."""
    return f"{seconds:.3g}"


def _first_return(inside: np.ndarray) -> int | None:
    """Index of the first point inside the bound after the first one outside it (None: no return)."""
    out = np.flatnonzero(~inside)
    if out.size == 0:
        return None
    later = np.flatnonzero(inside[out[0] :])
    return int(out[0] + later[0]) if later.size else None


def _largest_gap(times: np.ndarray, deadline: float, horizon: float) -> float:
    """The longest stretch after the deadline without a point (the ends of the span included)."""
    later = times[times > deadline]
    if later.size == 0:
        return horizon - deadline
    edges = np.concatenate(([deadline], later, [horizon]))
    return float(np.diff(edges).max())


def _what(obj: ObjectiveSpec) -> str:
    if obj.quantile is None:
        return obj.sli.split(":", 1)[0]
    return "median" if obj.quantile == 0.5 else f"p{obj.quantile * 100:g}"


def _bound_words(obj: ObjectiveSpec, unit: str) -> str:
    parts = []
    if obj.max is not None:
        parts.append(f"under {fmt.value(obj.max, unit)}")
    if obj.min is not None:
        parts.append(f"above {fmt.value(obj.min, unit)}")
    return " and ".join(parts)


def _verdict(
    obj: ObjectiveSpec,
    source: str,
    status: Status,
    reason: str,
    numbers: Numbers,
    *,
    insufficient: bool = False,
) -> Verdict:
    check = Check(
        name="recovery",
        kind="conformance",
        status=status,
        reason=reason,
        numbers=numbers,
        insufficient=insufficient,
    )
    return Verdict(
        objective=obj.key,
        sli=obj.sli,
        source=source,
        status=status,
        reason=reason,
        critical=obj.critical,
        numbers={"check": "recovery", **numbers},
        checks=[check],
        insufficient=insufficient,
    )
