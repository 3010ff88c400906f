"""Stage 1 — transform: from an evidence entry to clean arrays the later stages can trust.

As Kayenta's NetflixACAJudge does before classifying: non-finite values are removed (its "remove" NaN
strategy) and counted, empty or flagged entries become "no data" with the reason, and outliers are
detected with the interquartile rule (factor 3 by default) and kept or removed per the policy. We keep
them by default, unlike a mean-based judge would, because a heavier tail is a regression we must see.
Histograms are checked for what breaks the arithmetic (non-finite or decreasing cumulative counts,
e.g. a counter reset inside the window) rather than trusted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from gate.judge.evidence import (
    MAX_VALUE,
    Counts,
    GaugeSeries,
    Histogram,
    Item,
    Samples,
    Window,
    domain_problem,
)

FloatArray = npt.NDArray[np.float64]
Kind = Literal["samples", "histogram", "counts", "gauge"]


@dataclass
class Prepared:
    """A cleaned evidence entry. `usable` False means Inconclusive, for the reasons in `problems`."""

    kind: Kind
    usable: bool
    n: float = 0.0
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    window: Window | None = None
    values: FloatArray | None = None
    """Samples (sorted) or gauge levels (in time order)."""
    times: FloatArray | None = None
    bounds: FloatArray | None = None
    cumulative: FloatArray | None = None
    errors: float = 0.0
    total: float = 0.0
    _log: FloatArray | None = None

    def log_values(self) -> FloatArray | None:
        """log of the sorted values when all are positive (computed once), else None."""
        if self._log is None and self.values is not None and self.values.size and self.values[0] > 0:
            self._log = np.log(self.values)
        return self._log


def prepare(
    item: Item,
    outliers: Literal["keep", "remove"] = "keep",
    factor: float = 3.0,
    *,
    now: float | None = None,
    max_age: float | None = None,
) -> Prepared:
    """Clean one entry; never raises for bad data (that becomes a problem), only for programming errors.

    With `now` and `max_age` (seconds; time arrives as data), an entry whose window ended longer ago
    than `max_age` is stale, as is one without a window: its age cannot be established.
    """
    out = Prepared(
        kind="histogram" if isinstance(item, Histogram) else item.kind, usable=True, window=item.window
    )
    if item.missing:
        out.problems.append("no data (the series is missing)")
    if item.stale:
        out.problems.append("stale (older than the freshness limit)")
    elif now is not None and max_age is not None and not item.missing:
        if item.window is None:
            out.problems.append("stale: the entry has no window, so its age is unknown")
        elif now - item.window.end > max_age:
            age = now - item.window.end
            out.problems.append(f"stale: the newest data is {age:.0f}s old (limit {max_age:.0f}s)")
    if item.saturated:
        out.problems.append("the load generator was saturated (its latencies measure itself)")
    if isinstance(item, Samples):
        _samples(item, out, outliers, factor)
    elif isinstance(item, Histogram):
        _histogram(item, out)
    elif isinstance(item, Counts):
        out.errors, out.total, out.n = float(item.errors), float(item.total), float(item.total)
        why = domain_problem([item.errors, item.total], "[errors, total]")
        if why is not None:
            out.problems.append(f"counts outside the judge's domain: {why}")
        elif item.errors > item.total and not item.missing:
            out.problems.append(f"errors ({item.errors:g}) exceed total ({item.total:g})")
        elif item.total <= 0 and not item.missing:
            out.problems.append("no requests counted")
    else:
        _gauge(item, out)
    if item.note:
        out.notes.append(item.note[:200])
    out.usable = not out.problems
    return out


def _samples(item: Samples, out: Prepared, outliers: str, factor: float) -> None:
    raw = item.array()
    why = domain_problem(raw, "values")
    if why is not None:
        # A driver handed over values no measurement gives (a negative or non-finite latency): the whole
        # entry is suspect, so it is unusable evidence — never judged, never silently cleaned.
        out.problems.append(f"values outside the judge's domain: {why}")
        out.n = float(raw.size)
        return
    values = np.sort(raw)
    lo, hi = outlier_span(values, factor)
    count = lo + (values.size - hi)
    if count:
        if outliers == "remove":
            values = values[lo:hi]
            out.notes.append(f"{count} outliers removed (beyond {factor:g} × IQR)")
        else:
            out.notes.append(f"{count} outliers kept (beyond {factor:g} × IQR)")
    out.values, out.n = values, float(values.size)
    if values.size == 0 and not item.missing:
        out.problems.append("no samples")


def outlier_span(sorted_values: FloatArray, factor: float) -> tuple[int, int]:
    """[lo, hi): the slice of a sorted sample within factor × IQR of the quartiles (log scale if positive)."""
    n = sorted_values.size
    if n < 8:
        return 0, n
    q1, q3 = float(sorted_values[n // 4]), float(sorted_values[(3 * n) // 4])
    if sorted_values[0] > 0:
        # Latencies are skewed: the rule applies to log values, so only a multiplicatively far point counts.
        l1, l3 = math.log(q1), math.log(q3)
        low, high = math.exp(l1 - factor * (l3 - l1)), math.exp(l3 + factor * (l3 - l1))
    else:
        low, high = q1 - factor * (q3 - q1), q3 + factor * (q3 - q1)
    return int(np.searchsorted(sorted_values, low, "left")), int(
        np.searchsorted(sorted_values, high, "right")
    )


def _histogram(item: Histogram, out: Prepared) -> None:
    if item.missing:
        return
    bounds = np.asarray(item.bounds, dtype=np.float64)
    cum = np.asarray(item.counts, dtype=np.float64)
    why = domain_problem(cum, "counts") or domain_problem(bounds[:-1], "bounds", negative=True)
    if why is not None:
        out.problems.append(f"bucket values outside the judge's domain: {why}")
        return
    drops = np.diff(cum)
    if cum.size and bool(np.any(drops < 0)):
        # increase() per bucket extrapolates each series on its own, so the cumulative counts can dip by a
        # fraction of a request; Prometheus' histogram_quantile smooths that with a running maximum. A
        # larger dip is a real inconsistency (a counter reset inside the window) and is not evidence.
        dip = float(-drops[drops < 0].sum())
        if dip > max(1.0, 1e-3 * float(cum[-1])):
            out.problems.append("cumulative bucket counts decrease (a counter reset inside the window?)")
            return
        cum = np.maximum.accumulate(cum)
        out.notes.append(f"bucket counts made monotone (a dip of {dip:.3g})")
    out.bounds, out.cumulative = bounds, cum
    out.n = float(cum[-1]) if cum.size else 0.0
    if out.n <= 0:
        out.problems.append("no observations in the histogram")


def _gauge(item: GaugeSeries, out: Prepared) -> None:
    if item.missing:
        return
    pts = np.asarray(item.points, dtype=np.float64).reshape(-1, 2)
    ok = np.all(np.isfinite(pts) & (np.abs(pts) <= MAX_VALUE), axis=1)
    if not bool(ok.all()):
        out.notes.append(f"{int((~ok).sum())} non-finite points removed")
        pts = pts[ok]
    order = np.argsort(pts[:, 0], kind="stable")
    pts = pts[order]
    out.times, out.values, out.n = pts[:, 0], pts[:, 1], float(pts.shape[0])
    if pts.shape[0] < 3:
        out.problems.append(f"only {pts.shape[0]} points (a trend needs at least 3)")


def as_histogram(p: Prepared, bounds: FloatArray) -> Prepared:
    """Samples binned on a histogram's edges (exact cumulative counts), to compare with that histogram."""
    if p.kind != "samples" or p.values is None:
        return p
    cumulative = np.searchsorted(p.values, bounds, side="right").astype(np.float64)
    cumulative[-1] = float(p.values.size)  # the +Inf bucket holds everything
    return Prepared(
        kind="histogram",
        usable=p.usable,
        n=p.n,
        problems=list(p.problems),
        notes=[*p.notes, "raw samples binned on the other track's bucket edges"],
        window=p.window,
        bounds=bounds,
        cumulative=cumulative,
    )


def same_form(a: Prepared, b: Prepared) -> tuple[Prepared, Prepared]:
    """Make samples comparable with a histogram by binning them on its edges; other pairs unchanged."""
    if a.kind == "samples" and b.kind == "histogram" and b.bounds is not None:
        return as_histogram(a, b.bounds), b
    if a.kind == "histogram" and b.kind == "samples" and a.bounds is not None:
        return a, as_histogram(b, a.bounds)
    return a, b


def per_bucket(cumulative: FloatArray) -> FloatArray:
    """Counts per bucket from cumulative counts."""
    return np.diff(cumulative, prepend=0.0)


def align(a: Prepared, b: Prepared) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Two histograms on the edges they share (cumulative counts are exact at any common edge)."""
    assert a.bounds is not None and b.bounds is not None
    assert a.cumulative is not None and b.cumulative is not None
    if a.bounds.size == b.bounds.size and bool(np.all(a.bounds == b.bounds)):
        return a.bounds, a.cumulative, b.cumulative
    # Every edge of either track where both cumulative counts are exact: a shared edge, or an edge that
    # falls inside an EMPTY bucket of the other track (its count is the same anywhere in that bucket).
    # Native histograms at one schema list different populated ranges per track; they align on all of it.
    union = np.union1d(a.bounds, b.bounds)
    ca, ok_a = _cumulative_at(a.bounds, a.cumulative, union)
    cb, ok_b = _cumulative_at(b.bounds, b.cumulative, union)
    keep = ok_a & ok_b
    return union[keep], ca[keep], cb[keep]


def _cumulative_at(
    bounds: FloatArray, cumulative: FloatArray, edges: FloatArray
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """The cumulative count at each edge, and whether it is exact (an own edge or inside an empty bucket)."""
    k = np.minimum(np.searchsorted(bounds, edges, side="left"), bounds.size - 1)
    at = cumulative[k]
    before = np.where(k > 0, cumulative[np.maximum(k - 1, 0)], 0.0)
    exact = (bounds[k] == edges) | (at == before)
    return at, exact


def duration(p: Prepared) -> float:
    """Seconds the entry covers (from its window, or from the gauge's own timestamps), nan if unknown."""
    if p.window is not None:
        return p.window.duration
    if p.times is not None and p.times.size:
        return float(p.times[-1] - p.times[0])
    return math.nan


MIRRORED_BASELINE = "stable production (mirrored requests)"
"""How a verdict names the shadow source's fallback baseline."""


def baseline_source(shadow_stable: Item | None, source: str) -> tuple[str, str | None]:
    """Which source's stable entry is the baseline for `source`'s regression checks, and why if not its own.

    Shadow requests are copies of production requests that a router (nginx `mirror`, a mesh's
    mirroring) sends to the canary only, with the responses dropped: there is no stable × shadow series.
    The same requests, at the same moment, were served by stable as production traffic, so stable's
    production entry is the shadow source's baseline whenever stable × shadow is absent or marked
    missing. A stale or otherwise flagged stable × shadow entry is kept: it exists, and its flags are
    the reason to be Inconclusive, not a cue to look elsewhere.
    """
    if source == "shadow" and (shadow_stable is None or shadow_stable.missing):
        return "production", MIRRORED_BASELINE
    return source, None
