"""Properties over arbitrary Prometheus-like histograms, mixed with raw samples: no crash, ever.

Prometheus answers with bucket counts from `increase()`, which extrapolates each bucket series on its
own: totals are fractional, cumulative counts can dip (a counter reset, extrapolation), a window can
hold less than one request, and a histogram may have a single (+Inf) bucket. Samples may sit exactly
on bucket edges. None of this may raise: the judge reports it (Inconclusive) or judges it.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.judge import Evidence, Histogram, JudgePolicy, ObjectiveSpec, Samples, Status, judge
from gate.judge.describe import describe, point_quantile, quantile_interval
from gate.judge.pipeline import describe_evidence
from gate.judge.stats.quantiles import histogram_quantile
from gate.judge.transform import prepare

edges_st = st.lists(
    st.floats(min_value=1e-4, max_value=30.0, allow_nan=False, allow_infinity=False), max_size=14
).map(lambda xs: sorted(set(xs)))

count_st = st.one_of(
    st.just(0.0),
    st.floats(min_value=0.0, max_value=2000.0, allow_nan=False, allow_infinity=False),
    st.integers(min_value=0, max_value=5000).map(float),
)


@st.composite
def histograms(draw: st.DrawFn) -> Histogram:
    """Random bounds (+Inf last, possibly the only one) and counts that may be fractional or dip."""
    edges = draw(edges_st)
    bounds = [*edges, math.inf]
    if draw(st.booleans()):
        # Monotone cumulative counts from (possibly fractional) increments, with optional small dips.
        raw = draw(st.lists(count_st, min_size=len(bounds), max_size=len(bounds)))
        cumulative = list(np.cumsum(raw))
        if draw(st.booleans()) and len(cumulative) > 1:
            i = draw(st.integers(min_value=0, max_value=len(cumulative) - 2))
            cumulative[i] += draw(st.floats(min_value=0.0, max_value=1.5))
    else:
        # Arbitrary counts: non-monotone, as after a counter reset inside the window.
        cumulative = draw(st.lists(count_st, min_size=len(bounds), max_size=len(bounds)))
    return Histogram(bounds=bounds, counts=[float(c) for c in cumulative])


@st.composite
def samples_on(draw: st.DrawFn, bounds: list[float]) -> Samples:
    """Samples, many of them exactly on the histogram's edges (where binning is decided by `le`)."""
    finite = [b for b in bounds if math.isfinite(b)]
    pool = st.one_of(
        st.floats(min_value=1e-5, max_value=40.0, allow_nan=False, allow_infinity=False),
        *([st.sampled_from(finite)] if finite else []),
    )
    return Samples(values=draw(st.lists(pool, max_size=80)))


@st.composite
def mixed_evidence(draw: st.DrawFn) -> Evidence:
    base = draw(histograms())
    entries = {}
    for source in ("synthetic", "shadow", "production"):
        tracks = {}
        for track in ("stable", "canary"):
            form = draw(st.sampled_from(["histogram", "same-bounds", "samples", "none"]))
            if form == "histogram":
                tracks[track] = draw(histograms())
            elif form == "same-bounds":
                counts = draw(st.lists(count_st, min_size=len(base.bounds), max_size=len(base.bounds)))
                tracks[track] = Histogram(bounds=list(base.bounds), counts=sorted(counts))
            elif form == "samples":
                tracks[track] = draw(samples_on(base.bounds))
        entries[source] = tracks
    return Evidence(slis={"latency": entries})


OBJECTIVES = [
    ObjectiveSpec(key="p95-max", sli="latency", quantile=0.95, max=0.25),
    ObjectiveSpec(key="p99-rel", sli="latency", quantile=0.99, max_increase=0.1),
    ObjectiveSpec(key="median-rel", sli="latency", max_increase=0.05, max_decrease=0.2),
    ObjectiveSpec(key="floor", sli="latency", quantile=0.5, min=0.001, max_decrease=0.3),
]
POLICY = JudgePolicy(min_samples=1, error_limit=99)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=histograms(), q=st.floats(min_value=0.001, max_value=0.999))
def test_a_histogram_quantile_never_indexes_past_its_buckets(h: Histogram, q: float) -> None:
    p = prepare(h)
    if p.bounds is not None and p.cumulative is not None:
        qi = histogram_quantile(p.bounds, p.cumulative, q, 0.01, 1000)
        assert qi.lower <= qi.upper
    describe(p)
    point_quantile(p, q)
    quantile_interval(p, q, 0.01, 1000)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(evidence=mixed_evidence())
def test_mixed_histograms_and_samples_never_crash_the_judge(evidence: Evidence) -> None:
    j = judge(OBJECTIVES, evidence, POLICY)
    errors = [v.reason for v in j.verdicts if v.status == Status.ERROR]
    assert not errors
    assert all(c.status != Status.ERROR for c in j.comparisons.representativeness)
    describe_evidence(evidence)


def test_fractional_total_from_increase_is_judged_not_crashed() -> None:
    # The demo's crash: increase() gave 102.6 requests in the window; the rank bound rounded to 103.
    bounds = [0.005 * (i + 1) for i in range(102)] + [math.inf]
    counts = list(np.linspace(1.0, 102.6, len(bounds)))
    h = Histogram(bounds=bounds, counts=counts)
    evidence = Evidence(slis={"latency": {"production": {"stable": h, "canary": h}}})
    j = judge(OBJECTIVES, evidence, POLICY)
    assert all(v.status != Status.ERROR for v in j.verdicts), [v.reason for v in j.verdicts]


def test_less_than_one_request_in_the_window_is_not_a_crash() -> None:
    h = Histogram(bounds=[0.1, math.inf], counts=[0.2, 0.4])
    p = prepare(h)
    assert p.usable
    describe(p)
    assert histogram_quantile(p.bounds, p.cumulative, 0.99, 0.01, 1000).n == 0.4  # type: ignore[arg-type]


def test_a_nan_bucket_edge_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="NaN"):
        Histogram(bounds=[math.nan, math.inf], counts=[1, 2])


def test_a_fraction_of_a_request_is_too_little_to_compare_not_an_error() -> None:
    # Found by hypothesis: increase() over a window can give 1e-180 requests; the representativeness
    # comparison divided by it.
    tiny = Histogram(bounds=[float("inf")], counts=[1.4216050779847412e-180])
    none = Histogram(bounds=[float("inf")], counts=[0.0])
    evidence = Evidence(
        slis={
            "latency": {
                "synthetic": {"stable": tiny, "canary": none},
                "shadow": {"stable": none, "canary": none},
                "production": {"stable": tiny},
            }
        }
    )
    j = judge(OBJECTIVES, evidence, POLICY)
    assert [c.status for c in j.comparisons.representativeness] == [Status.INCONCLUSIVE]
