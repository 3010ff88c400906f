"""Properties over arbitrary evidence: the judge never raises, and never passes what it cannot see."""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gate.judge import Counts, Evidence, Histogram, ObjectiveSpec, Samples, Status, judge

values = st.lists(
    st.one_of(
        st.floats(min_value=-1.0, max_value=100.0),
        st.just(math.nan),
        st.just(math.inf),
        st.just(0.0),
        st.just(0.1),
    ),
    max_size=60,
)


@st.composite
def histograms(draw: st.DrawFn) -> Histogram:
    edges = sorted(set(draw(st.lists(st.floats(min_value=0.001, max_value=10.0), min_size=1, max_size=6))))
    increments = draw(
        st.lists(st.integers(min_value=0, max_value=500), min_size=len(edges) + 1, max_size=len(edges) + 1)
    )
    cumulative: list[float] = []
    total = 0.0
    for inc in increments:
        total += inc
        cumulative.append(total)
    return Histogram(bounds=[*edges, math.inf], counts=cumulative)


@st.composite
def counts(draw: st.DrawFn) -> Counts:
    total = draw(st.integers(min_value=0, max_value=10_000))
    return Counts(errors=draw(st.integers(min_value=0, max_value=total)), total=total)


latency_items = st.one_of(values.map(Samples.from_array), histograms(), st.just(Samples(missing=True)))
OBJECTIVES = [
    ObjectiveSpec(
        key="p95", sli="latency", quantile=0.95, max=0.5, max_increase=0.1, sources=("production",)
    ),
    ObjectiveSpec(key="p50", sli="latency", quantile=0.5, min=0.0, max_decrease=0.1, sources=("production",)),
    ObjectiveSpec(key="errors", sli="errors", max=0.01, max_increase=0.2, sources=("production",)),
]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stable=latency_items, canary=latency_items, es=counts(), ec=counts())
def test_judge_never_raises_and_never_passes_on_too_little_evidence(stable, canary, es, ec) -> None:  # type: ignore[no-untyped-def]
    ev = Evidence(
        slis={
            "latency": {"production": {"stable": stable, "canary": canary}},
            "errors": {"production": {"stable": es, "canary": ec}},
        }
    )
    j = judge(OBJECTIVES, ev)
    assert j.decision.action in ("promote", "hold", "rollback")
    for v in j.verdicts:
        assert v.status != Status.ERROR, v.reason
        if v.sli == "latency" and isinstance(canary, Samples):
            garbage = any(not math.isfinite(x) or x < 0 for x in canary.values)
            if garbage or len(canary.values) < 20:
                assert v.status != Status.PASS
    j.model_dump_json()  # always serialisable
