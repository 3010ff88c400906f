"""Shadow traffic has no stable series: its regression baseline is stable's production evidence.

nginx `mirror` (or a mesh) copies production requests to the canary only. The same requests were
served by stable as production traffic at the same moment, so stable × production is the baseline
when stable × shadow is absent or missing; the verdict says so.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from gate.judge import Evidence, Histogram, JudgePolicy, ObjectiveSpec, Samples, Status, judge
from gate.judge.transform import MIRRORED_BASELINE
from tests.judge.conftest import to_histogram

BOUNDS = [0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 1.0, math.inf]
P95 = ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max=0.4, max_increase=0.1, sources=("shadow",))


def _mirrored(
    rng: np.random.Generator,
    canary_factor: float,
    *,
    stable_shadow: str = "absent",
    buckets: bool = False,
    n: int = 6000,
) -> Evidence:
    """Stable production, canary production and canary shadow (raw samples, or Prometheus buckets)."""

    def entry(values: np.ndarray) -> Samples | Histogram:
        return to_histogram(values, BOUNDS) if buckets else Samples.from_array(values)

    stable = rng.lognormal(math.log(0.08), 0.3, n)
    canary = rng.lognormal(math.log(0.08 * canary_factor), 0.3, n)
    mirrored = rng.lognormal(math.log(0.08 * canary_factor), 0.3, n)
    shadow: dict = {"canary": entry(mirrored)}
    if stable_shadow == "missing":
        shadow["stable"] = Histogram(missing=True, note="no series")
    return Evidence(
        slis={
            "latency": {
                "production": {"stable": entry(stable), "canary": entry(canary)},
                "shadow": shadow,
            }
        }
    )


@pytest.mark.parametrize("stable_shadow", ["absent", "missing"])
def test_a_good_canarys_shadow_passes_against_stable_production(
    rng: np.random.Generator, stable_shadow: str
) -> None:
    j = judge([P95], _mirrored(rng, 1.0, stable_shadow=stable_shadow), JudgePolicy())
    (v,) = j.verdicts
    assert v.status == Status.PASS, v.reason
    assert v.numbers["baseline"] == MIRRORED_BASELINE
    assert "baseline: stable production (mirrored requests)" in v.reason
    rows = [r for r in j.comparisons.regression if r.source == "shadow"]
    assert rows and all(r.numbers["baseline"] == MIRRORED_BASELINE for r in rows)


@pytest.mark.parametrize("buckets", [False, True])
def test_a_slow_canarys_shadow_fails_against_stable_production(
    rng: np.random.Generator, buckets: bool
) -> None:
    j = judge([P95], _mirrored(rng, 1.6, buckets=buckets), JudgePolicy())
    (v,) = j.verdicts
    assert v.status == Status.FAIL, v.reason
    assert v.numbers["baseline"] == MIRRORED_BASELINE


def test_without_stable_production_either_the_shadow_is_inconclusive(rng: np.random.Generator) -> None:
    ev = _mirrored(rng, 1.0, buckets=True)
    ev.slis["latency"]["production"]["stable"] = Histogram(missing=True)
    (v,) = judge([P95], ev, JudgePolicy()).verdicts
    assert v.status == Status.INCONCLUSIVE
    assert "stable evidence unusable" in v.reason
    del ev.slis["latency"]["production"]["stable"]
    (v,) = judge([P95], ev, JudgePolicy()).verdicts
    assert v.status == Status.INCONCLUSIVE
    assert "no stable evidence" in v.reason


def test_a_real_stable_shadow_series_is_the_baseline(rng: np.random.Generator) -> None:
    # A mesh that mirrors to both tracks has its own stable × shadow series: it is used as is.
    ev = _mirrored(rng, 1.6)
    ev.slis["latency"]["shadow"]["stable"] = Samples.from_array(rng.lognormal(math.log(0.13), 0.3, 6000))
    (v,) = judge([P95], ev, JudgePolicy()).verdicts
    assert "baseline" not in v.numbers
    assert v.status != Status.FAIL


def test_a_stale_stable_shadow_is_not_replaced(rng: np.random.Generator) -> None:
    ev = _mirrored(rng, 1.0)
    ev.slis["latency"]["shadow"]["stable"] = Histogram(bounds=[0.1, math.inf], counts=[10, 20], stale=True)
    (v,) = judge([P95], ev, JudgePolicy()).verdicts
    assert v.status == Status.INCONCLUSIVE
    assert "stale" in v.reason


def test_absolute_only_objectives_do_not_mention_a_baseline(rng: np.random.Generator) -> None:
    only_max = ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max=0.4, sources=("shadow",))
    (v,) = judge([only_max], _mirrored(rng, 1.0), JudgePolicy()).verdicts
    assert v.status == Status.PASS
    assert "baseline" not in v.numbers
