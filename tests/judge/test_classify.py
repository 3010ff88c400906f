"""Stage 3 — classify: conformance and regression checks on known situations."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gate.judge.classify import classify, planned_checks
from gate.judge.evidence import Counts, GaugeSeries, Histogram, Samples
from gate.judge.spec import JudgePolicy, ObjectiveSpec
from gate.judge.transform import prepare
from gate.judge.verdict import Status

POLICY = JudgePolicy(tolerance=0.0)
ALPHA = 0.01


def _lat(values: np.ndarray) -> Samples:
    return Samples.from_array(values)


def verdict(obj: ObjectiveSpec, canary: object, stable: object | None = None, policy: JudgePolicy = POLICY):
    c = prepare(canary)  # type: ignore[arg-type]
    s = prepare(stable) if stable is not None else None  # type: ignore[arg-type]
    return classify(obj, "production", c, s, alpha=ALPHA, policy=policy)


P95_REL = ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max_increase=0.05)
P99_REL = ObjectiveSpec(key="p99", sli="latency", quantile=0.99, max_increase=0.10)


def test_planned_checks_follow_the_objective_and_the_evidence_form() -> None:
    both = ObjectiveSpec(key="k", sli="s", quantile=0.95, max=0.2, max_increase=0.1)
    assert planned_checks(both, "samples") == ["bound", "location", "tail"]
    assert planned_checks(ObjectiveSpec(key="e", sli="e", max_increase=0.1), "counts") == ["errors"]
    assert planned_checks(ObjectiveSpec(key="g", sli="g", max_growth=0.0), "gauge") == ["trend"]
    # without a quantile a relative latency objective still checks the tail (p99), not just the median
    assert planned_checks(ObjectiveSpec(key="m", sli="s", max_increase=0.1), "samples") == [
        "location",
        "tail",
    ]


def test_absolute_quantile_pass_fail_and_inconclusive(rng: np.random.Generator) -> None:
    x = rng.lognormal(np.log(0.1), 0.4, 5000)  # p95 ~ 0.193 s
    assert verdict(ObjectiveSpec(key="a", sli="l", quantile=0.95, max=0.25), _lat(x)).status == Status.PASS
    assert verdict(ObjectiveSpec(key="a", sli="l", quantile=0.95, max=0.15), _lat(x)).status == Status.FAIL
    close = verdict(ObjectiveSpec(key="a", sli="l", quantile=0.95, max=0.193), _lat(x))
    assert close.status == Status.INCONCLUSIVE and "straddles" in close.reason


def test_early_looks_are_inconclusive_and_later_looks_pass(rng: np.random.Generator) -> None:
    obj = ObjectiveSpec(key="a", sli="l", quantile=0.95, max=0.23)
    x = rng.lognormal(np.log(0.1), 0.4, 20_000)
    assert verdict(obj, _lat(x[:100])).status == Status.INCONCLUSIVE
    assert verdict(obj, _lat(x)).status == Status.PASS


def test_a_a_is_never_a_fail(rng: np.random.Generator) -> None:
    for _ in range(20):
        s, c = rng.lognormal(0, 0.5, 2000), rng.lognormal(0, 0.5, 2000)
        assert verdict(P95_REL, _lat(c), _lat(s)).status != Status.FAIL


def test_a_a_with_much_evidence_passes(rng: np.random.Generator) -> None:
    s, c = rng.lognormal(0, 0.3, 100_000), rng.lognormal(0, 0.3, 100_000)
    v = verdict(ObjectiveSpec(key="p95", sli="l", quantile=0.95, max_increase=0.05), _lat(c), _lat(s))
    assert v.status == Status.PASS, v.reason


def test_median_regression_fails_on_the_location_test(rng: np.random.Generator) -> None:
    s, c = rng.lognormal(0, 0.4, 1500), rng.lognormal(np.log(1.25), 0.4, 1500)
    v = verdict(P95_REL, _lat(c), _lat(s))
    assert v.status == Status.FAIL
    loc = next(ch for ch in v.checks if ch.name == "location")
    assert loc.status == Status.FAIL
    assert loc.numbers["difference"] == pytest.approx(0.25, abs=0.05)
    assert float(loc.numbers["lower"]) > 0  # type: ignore[arg-type]
    for key in ("statistic", "e_value", "p_value", "effect_size", "n_canary", "n_stable", "method"):
        assert key in loc.numbers


def test_tail_only_growth_is_caught_where_the_rank_test_sees_nothing(rng: np.random.Generator) -> None:
    n = 20_000
    s = rng.lognormal(0, 0.4, n)
    c = rng.lognormal(0, 0.4, n)
    q95 = float(np.exp(0.4 * 1.645))
    c = np.where(c > q95, q95 + (c - q95) * 3.0, c)  # the tail beyond p95 stretched, the body unchanged
    v = verdict(P99_REL, _lat(c), _lat(s))
    checks = {ch.name: ch for ch in v.checks}
    assert checks["location"].status != Status.FAIL
    assert checks["tail"].status == Status.FAIL
    assert v.status == Status.FAIL


def test_higher_variance_with_the_same_median_is_a_tail_failure(rng: np.random.Generator) -> None:
    s, c = rng.lognormal(0, 0.3, 20_000), rng.lognormal(0, 0.45, 20_000)
    assert verdict(P99_REL, _lat(c), _lat(s)).status == Status.FAIL


def test_sparse_errors_zero_versus_twelve() -> None:
    obj = ObjectiveSpec(key="e", sli="errors", max_increase=0.2)
    v = verdict(obj, Counts(errors=12, total=3000), Counts(errors=0, total=3000))
    assert v.status == Status.FAIL, v.reason
    few = verdict(obj, Counts(errors=2, total=3000), Counts(errors=0, total=3000))
    assert few.status == Status.INCONCLUSIVE


def test_equal_error_ratios_never_fail_and_tiny_ones_pass_under_the_floor() -> None:
    obj = ObjectiveSpec(key="e", sli="errors", max_increase=0.2)
    assert (
        verdict(obj, Counts(errors=30, total=10_000), Counts(errors=30, total=10_000)).status != Status.FAIL
    )
    clean = verdict(obj, Counts(errors=0, total=50_000), Counts(errors=0, total=50_000))
    assert clean.status == Status.PASS, clean.reason


def test_absolute_error_ratio_bound() -> None:
    obj = ObjectiveSpec(key="e", sli="errors", max=0.01)
    assert verdict(obj, Counts(errors=50, total=2000)).status == Status.FAIL
    assert verdict(obj, Counts(errors=2, total=5000)).status == Status.PASS


def test_histogram_difference_within_one_bucket_is_never_a_regression(rng: np.random.Generator) -> None:
    bounds = [0.05, 0.1, 0.25, 0.5, 1.0, math.inf]
    s = rng.lognormal(np.log(0.13), 0.1, 50_000)
    c = rng.lognormal(np.log(0.15), 0.1, 50_000)  # +15 %, but both live inside (0.1, 0.25]
    hs = Histogram(bounds=bounds, counts=[float(np.sum(s <= b)) for b in bounds])
    hc = Histogram(bounds=bounds, counts=[float(np.sum(c <= b)) for b in bounds])
    v = verdict(ObjectiveSpec(key="h", sli="l", quantile=0.95, max_increase=0.05), hc, hs)
    assert v.status == Status.INCONCLUSIVE
    assert "bucket" in v.reason
    assert v.numbers.get("resolution_limited") is True


def test_histogram_regression_across_buckets_fails(rng: np.random.Generator) -> None:
    bounds = [0.05, 0.1, 0.25, 0.5, 1.0, math.inf]
    s = rng.lognormal(np.log(0.07), 0.1, 20_000)
    c = rng.lognormal(np.log(0.35), 0.1, 20_000)
    hs = Histogram(bounds=bounds, counts=[float(np.sum(s <= b)) for b in bounds])
    hc = Histogram(bounds=bounds, counts=[float(np.sum(c <= b)) for b in bounds])
    assert (
        verdict(ObjectiveSpec(key="h", sli="l", quantile=0.95, max_increase=0.1), hc, hs).status
        == Status.FAIL
    )


def test_histogram_absolute_bound_only_passes_when_the_bucket_edge_proves_it() -> None:
    bounds = [0.1, 0.2, 0.3, math.inf]
    h = Histogram(bounds=bounds, counts=[9000.0, 9990.0, 10000.0, 10000.0])  # p95 in (0.1, 0.2]
    assert verdict(ObjectiveSpec(key="h", sli="l", quantile=0.95, max=0.2), h).status == Status.PASS
    # 0.15 is inside the bucket: the histogram cannot tell, so neither pass nor fail
    assert verdict(ObjectiveSpec(key="h", sli="l", quantile=0.95, max=0.15), h).status == Status.INCONCLUSIVE
    assert verdict(ObjectiveSpec(key="h", sli="l", quantile=0.95, max=0.09), h).status == Status.FAIL


@pytest.mark.parametrize(
    "canary",
    [
        Samples(values=[]),
        Samples.from_array([math.nan] * 40),  # as a driver would hand it over
        Samples(values=[0.1] * 500, stale=True),
        Samples(values=[0.1] * 500, saturated=True),
        Samples(missing=True),
        Samples(values=[0.1] * 5),
    ],
)
def test_missing_stale_too_few_saturated_are_inconclusive_never_pass(canary: Samples) -> None:
    v = verdict(ObjectiveSpec(key="a", sli="l", quantile=0.5, max=10.0), canary)
    assert v.status == Status.INCONCLUSIVE
    assert v.insufficient


def test_relative_without_stable_is_inconclusive_but_absolute_still_judged(rng: np.random.Generator) -> None:
    x = rng.lognormal(np.log(0.1), 0.4, 5000)
    v = verdict(ObjectiveSpec(key="a", sli="l", quantile=0.95, max=0.15, max_increase=0.1), _lat(x))
    assert v.status == Status.FAIL  # the bound fails on the canary alone
    assert any(ch.insufficient for ch in v.checks)


def test_min_evidence_duration_is_enforced() -> None:
    from gate.judge.evidence import Window

    obj = ObjectiveSpec(key="a", sli="l", quantile=0.5, max=1.0, min_duration=60)
    short = Samples(values=[0.1] * 500, window=Window(start=0, end=20))
    v = verdict(obj, short)
    assert v.status == Status.INCONCLUSIVE and "20s of the 60s" in v.reason


def test_gauge_trend_leak_fails_and_flat_passes(rng: np.random.Generator) -> None:
    t = np.arange(0.0, 600.0, 5.0)
    leak = GaugeSeries(points=list(zip(t, 100 + 0.5 * t + rng.normal(0, 2, t.size), strict=True)))
    flat = GaugeSeries(points=list(zip(t, 100 + rng.normal(0, 0.2, t.size), strict=True)))
    obj = ObjectiveSpec(key="g", sli="goroutines", max_growth=0.0)
    assert verdict(obj, leak).status == Status.FAIL
    assert verdict(obj, flat).status == Status.PASS


def test_histogram_quantile_in_the_bucket_above_the_bound_fails() -> None:
    # p95 lies in (0.25, 0.5]: it is certainly above 250 ms even though the interval's lower edge equals it
    bounds = [0.1, 0.25, 0.5, math.inf]
    h = Histogram(bounds=bounds, counts=[5000.0, 8000.0, 10000.0, 10000.0])
    assert verdict(ObjectiveSpec(key="h", sli="l", quantile=0.95, max=0.25), h).status == Status.FAIL


def test_max_decrease_catches_a_drop_and_ignores_a_rise(rng: np.random.Generator) -> None:
    obj = ObjectiveSpec(key="rps", sli="throughput", max_decrease=0.05)
    s = rng.lognormal(np.log(100), 0.2, 3000)
    assert verdict(obj, _lat(s * 0.8), _lat(s[::-1].copy())).status == Status.FAIL
    assert verdict(obj, _lat(s * 1.3), _lat(s[::-1].copy())).status != Status.FAIL


def test_gauge_level_relative_to_stable(rng: np.random.Generator) -> None:
    t = np.arange(0.0, 600.0, 1.0)
    stable = GaugeSeries(points=list(zip(t, 500 + rng.normal(0, 5, t.size), strict=True)))
    canary = GaugeSeries(points=list(zip(t, 700 + rng.normal(0, 5, t.size), strict=True)))
    v = verdict(ObjectiveSpec(key="rss", sli="memory", max_increase=0.1), canary, stable)
    assert v.status == Status.FAIL and "location" in {c.name for c in v.checks}


def test_samples_are_binned_to_compare_with_a_histogram(rng: np.random.Generator) -> None:
    bounds = [0.05, 0.1, 0.25, 0.5, 1.0, math.inf]
    s = rng.lognormal(np.log(0.07), 0.1, 20_000)
    hs = Histogram(bounds=bounds, counts=[float(np.sum(s <= b)) for b in bounds])
    slow = _lat(rng.lognormal(np.log(0.35), 0.1, 20_000))  # Locust samples on the canary
    v = verdict(ObjectiveSpec(key="h", sli="l", quantile=0.95, max_increase=0.1), slow, hs)
    assert v.status == Status.FAIL
    assert all(
        c.numbers.get("resolution_limited") is True for c in v.checks if c.name in ("location", "tail")
    )
