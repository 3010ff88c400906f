"""Stage 1 — transform: NaN removal, no data, flags, outliers, broken histograms."""

from __future__ import annotations

import math

import numpy as np

from gate.judge.evidence import Counts, GaugeSeries, Histogram, Samples
from gate.judge.transform import outlier_span, prepare


def test_values_outside_the_domain_from_a_driver_make_the_entry_unusable() -> None:
    # issue 14 item 6: a driver's NaN, inf, negative or absurd latency is not cleaned away but refused
    for bad in (math.nan, math.inf, -1.0, 1e308):
        p = prepare(Samples.from_array([0.1, bad, 0.3, 0.2]))
        assert not p.usable, bad
        assert "outside the judge's domain" in p.problems[0] and "values[1]" in p.problems[0]
    hist = Histogram.model_construct(bounds=[0.1, math.inf], counts=[-3.0, 5.0], kind="histogram")
    assert not prepare(hist).usable
    counts = Counts.model_construct(errors=math.nan, total=10.0, kind="counts")
    assert "outside the judge's domain" in prepare(counts).problems[0]


def test_empty_missing_stale_saturated_are_unusable_with_reasons() -> None:
    assert prepare(Samples(values=[])).problems == ["no samples"]
    assert "no data" in prepare(Samples(missing=True)).problems[0]
    assert "stale" in prepare(Counts(errors=0, total=10, stale=True)).problems[0]
    assert "saturated" in prepare(Samples(values=[0.1], saturated=True)).problems[0]
    assert not prepare(Counts(errors=0, total=0)).usable


def test_outliers_are_kept_by_default_and_removed_on_request() -> None:
    values = [0.1] * 50 + [0.11] * 50 + [50.0]
    kept = prepare(Samples(values=values))
    assert kept.n == 101 and any("outliers kept" in n for n in kept.notes)
    removed = prepare(Samples(values=values), outliers="remove")
    assert removed.n == 100 and removed.values is not None and removed.values.max() < 1


def test_outlier_rule_uses_log_scale_for_positive_data() -> None:
    x = np.sort(np.random.default_rng(0).lognormal(0, 0.5, 10_000))
    lo, hi = outlier_span(x, 3.0)
    assert lo == 0 and hi == x.size  # a lognormal has no outliers on its own log scale


def test_decreasing_cumulative_histogram_is_unusable() -> None:
    p = prepare(Histogram(bounds=[0.1, 0.2, math.inf], counts=[5, 3, 9]))
    assert not p.usable and "decrease" in p.problems[0]


def test_tiny_dips_from_per_bucket_extrapolation_are_smoothed_as_prometheus_does() -> None:
    p = prepare(Histogram(bounds=[0.1, 0.2, math.inf], counts=[500.4, 500.1, 900.0]))
    assert p.usable and p.cumulative is not None and p.cumulative.tolist() == [500.4, 500.4, 900.0]
    assert any("monotone" in n for n in p.notes)


def test_histogram_without_observations_is_unusable() -> None:
    assert not prepare(Histogram(bounds=[0.1, math.inf], counts=[0, 0])).usable


def test_gauge_needs_three_points_and_is_sorted_by_time() -> None:
    assert not prepare(GaugeSeries(points=[(1.0, 1.0), (2.0, 2.0)])).usable
    points = [(3.0, 30.0), (1.0, 10.0), (2.0, math.nan), (2.5, 20.0)]  # a driver's NaN point is dropped
    p = prepare(GaugeSeries.model_construct(points=points, kind="gauge"))
    assert p.usable and p.times is not None and p.times.tolist() == [1.0, 2.5, 3.0]


def test_age_is_judged_from_time_given_as_data() -> None:
    from gate.judge.evidence import Window

    fresh = Counts(errors=0, total=10, window=Window(start=900, end=990))
    old = Counts(errors=0, total=10, window=Window(start=0, end=100))
    assert prepare(fresh, now=1000, max_age=30).usable
    p = prepare(old, now=1000, max_age=30)
    assert not p.usable and "900s old" in p.problems[0]
    assert not prepare(Counts(errors=0, total=10), now=1000, max_age=30).usable  # age unknown
    assert prepare(old).usable  # without `now`, only the driver's flag counts
