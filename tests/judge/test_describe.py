"""Stage 2 — describe: summary numbers and the quantile intervals the classify stage decides on."""

from __future__ import annotations

import math

import numpy as np

from gate.judge.describe import describe, point_quantile, quantile_interval
from gate.judge.evidence import Counts, GaugeSeries, Histogram, Samples
from gate.judge.transform import prepare


def test_samples_are_described_by_n_quantiles_and_mean() -> None:
    x = np.arange(1, 101, dtype=float) / 1000  # 1 ms .. 100 ms
    d = describe(prepare(Samples.from_array(x)))
    assert d["n"] == 100
    assert d["p50"] == 0.05 and d["p95"] == 0.095 and d["p99"] == 0.099
    assert math.isclose(float(d["mean"]), 0.0505)  # type: ignore[arg-type]


def test_histogram_point_quantile_interpolates_like_prometheus() -> None:
    h = prepare(Histogram(bounds=[0.1, 0.2, math.inf], counts=[50.0, 100.0, 100.0]))
    assert math.isclose(point_quantile(h, 0.75), 0.15)
    qi = quantile_interval(h, 0.5, 0.05, 1000)
    assert qi.resolution_limited and qi.lower == 0.0 and qi.upper == 0.2


def test_counts_and_gauges() -> None:
    assert describe(prepare(Counts(errors=5, total=1000)))["ratio"] == 0.005
    g = describe(prepare(GaugeSeries(points=[(0.0, 10.0), (1.0, 12.0), (2.0, 11.0)])))
    assert g["level"] == 11.0 and g["last"] == 11.0


def test_interval_of_unusable_evidence_is_unbounded() -> None:
    qi = quantile_interval(prepare(Counts(errors=1, total=2)), 0.5, 0.05, 1000)
    assert math.isinf(qi.lower) and math.isinf(qi.upper)
