"""Stage 2 — describe: summary numbers of one cleaned entry, and its quantile intervals.

Descriptions are what a reviewer reads beside a verdict (n, median, p95, p99, error ratio, level,
trend); the intervals are the always-valid ones the classify stage decides on.
"""

from __future__ import annotations

import math

import numpy as np

from gate.judge.stats.quantiles import QuantileInterval, histogram_quantile, sample_quantile
from gate.judge.transform import Prepared
from gate.judge.verdict import Numbers

DISPLAY_QUANTILES = (0.5, 0.95, 0.99)


def quantile_interval(p: Prepared, q: float, alpha: float, n_opt: float) -> QuantileInterval:
    """Always-valid interval for the q-quantile of a samples or histogram entry."""
    if p.kind == "samples" and p.values is not None:
        return sample_quantile(p.values, q, alpha, n_opt)
    if p.kind == "histogram" and p.bounds is not None and p.cumulative is not None:
        return histogram_quantile(p.bounds, p.cumulative, q, alpha, n_opt)
    if p.kind == "gauge" and p.values is not None:
        return sample_quantile(np.sort(p.values), q, alpha, n_opt)
    return QuantileInterval(q, math.nan, -math.inf, math.inf, 0)


def point_quantile(p: Prepared, q: float) -> float:
    """Point estimate only (cheap; for display and representativeness)."""
    if p.kind == "samples" and p.values is not None and p.values.size:
        v = p.values
        return float(v[min(v.size - 1, max(0, math.ceil(v.size * q) - 1))])
    if p.kind == "histogram" and p.bounds is not None and p.cumulative is not None and p.n > 0:
        return histogram_quantile(p.bounds, p.cumulative, q, 0.5, max(p.n, 1.0)).estimate
    if p.kind == "gauge" and p.values is not None and p.values.size:
        return float(np.quantile(p.values, q))
    return math.nan


def describe(p: Prepared) -> Numbers:
    """Summary numbers for a reviewer."""
    out: Numbers = {"n": p.n}
    if p.kind in ("samples", "histogram"):
        for q in DISPLAY_QUANTILES:
            out[f"p{round(q * 100):d}"] = point_quantile(p, q)
        if p.kind == "samples" and p.values is not None and p.values.size:
            out["mean"] = float(np.mean(p.values))
    elif p.kind == "counts":
        out["errors"] = p.errors
        out["ratio"] = p.errors / p.total if p.total > 0 else math.nan
    elif p.kind == "gauge" and p.values is not None and p.values.size:
        out["level"] = float(np.median(p.values))
        out["last"] = float(p.values[-1])
    return out
