"""The whole judgement: error isolation, alpha split, the three comparisons, representativeness."""

from __future__ import annotations

import numpy as np
import pytest

from gate.judge import Counts, Evidence, JudgePolicy, ObjectiveSpec, Samples, Status, judge
from gate.judge import classify as classify_module


def _evidence(
    rng: np.random.Generator, n: int = 3000, canary_factor: float = 1.0, synthetic_factor: float = 1.0
) -> Evidence:
    slis: dict = {"latency": {}, "errors": {}}
    for src in ("synthetic", "production"):
        f = synthetic_factor if src == "synthetic" else 1.0
        slis["latency"][src] = {
            "stable": Samples.from_array(rng.lognormal(np.log(0.1 * f), 0.4, n)),
            "canary": Samples.from_array(rng.lognormal(np.log(0.1 * f * canary_factor), 0.4, n)),
        }
        slis["errors"][src] = {"stable": Counts(errors=0, total=n), "canary": Counts(errors=0, total=n)}
    return Evidence(slis=slis)


OBJECTIVES = [
    ObjectiveSpec(
        key="p95",
        sli="latency",
        quantile=0.95,
        max_increase=0.1,
        critical=True,
        sources=("synthetic", "production"),
    ),
    ObjectiveSpec(key="errors", sli="errors", max=0.05, sources=("synthetic", "production")),
]


def test_alpha_is_split_over_objectives_and_sources(rng: np.random.Generator) -> None:
    j = judge(OBJECTIVES, _evidence(rng), JudgePolicy(confidence=0.99))
    assert j.alpha == pytest.approx(0.01)
    assert j.alpha_per_verdict == pytest.approx(0.01 / 4)
    assert len(j.verdicts) == 4


def test_one_crashing_objective_is_an_error_and_the_others_are_judged(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = classify_module.classify

    def flaky(obj, *args, **kwargs):  # type: ignore[no-untyped-def]
        if obj.key == "errors":
            raise RuntimeError("boom")
        return real(obj, *args, **kwargs)

    monkeypatch.setattr("gate.judge.pipeline.classify", flaky)
    j = judge(OBJECTIVES, _evidence(rng), JudgePolicy(error_limit=5))
    by_key = {(v.objective, v.source): v for v in j.verdicts}
    assert by_key[("errors", "production")].status == Status.ERROR
    assert "RuntimeError: boom" in by_key[("errors", "production")].reason
    assert by_key[("p95", "production")].status != Status.ERROR


def test_a_regression_rolls_back_and_the_regression_comparison_says_why(rng: np.random.Generator) -> None:
    j = judge(OBJECTIVES, _evidence(rng, canary_factor=1.3))
    assert j.decision.action == "rollback"
    assert "critical objective p95" in j.decision.reason
    assert any(c.status == Status.FAIL for c in j.comparisons.regression)
    assert all(c.kind == "conformance" for c in j.comparisons.conformance)


def test_unrepresentative_synthetic_load_is_reported_and_down_weighted(rng: np.random.Generator) -> None:
    # synthetic traffic is 3× faster than production: its verdicts lose their criticality
    j = judge(
        OBJECTIVES, _evidence(rng, canary_factor=1.3, synthetic_factor=0.33), JudgePolicy(tolerance=0.0)
    )
    rep = [c for c in j.comparisons.representativeness if c.sli == "latency"]
    assert rep and rep[0].status == Status.FAIL and "not representative" in rep[0].reason
    synthetic = next(v for v in j.verdicts if v.source == "synthetic" and v.objective == "p95")
    # issue 10 item 7: the criticality the contract gave is kept beside the down-weighted mark
    assert synthetic.downweighted and synthetic.critical
    assert "down-weighted" in synthetic.reason


def test_a_down_weighted_critical_fail_is_counted_as_a_failure_not_a_critical_one() -> None:
    from gate.judge.decide import decide
    from gate.judge.verdict import Verdict

    failing = Verdict(
        objective="p95",
        sli="latency",
        source="synthetic",
        status=Status.FAIL,
        reason="slow [down-weighted: synthetic 3× faster]",
        critical=True,
        downweighted=True,
    )
    passing = Verdict(objective="p95", sli="latency", source="production", status=Status.PASS, reason="ok")
    d = decide([failing, passing], JudgePolicy(failure_limit=1), final=True)
    assert d.action == "promote" and d.counts["critical_fail"] == 0
    d = decide([failing, passing], JudgePolicy(failure_limit=0), final=True)
    assert d.action == "rollback" and "down-weighted" in d.reason


def test_synthetic_fail_contradicted_by_production_pass_becomes_inconclusive() -> None:
    from gate.judge.represent import downweight
    from gate.judge.verdict import Verdict

    verdicts = [
        Verdict(
            objective="p95",
            sli="latency",
            source="synthetic",
            status=Status.FAIL,
            reason="slow",
            critical=True,
        ),
        Verdict(objective="p95", sli="latency", source="production", status=Status.PASS, reason="fine"),
    ]
    out = downweight(verdicts, {"latency": "synthetic 3× faster than production"})
    assert out[0].status == Status.INCONCLUSIVE and "contradicted" in out[0].reason
    assert out[1].status == Status.PASS


def test_missing_source_is_inconclusive_and_holds(rng: np.random.Generator) -> None:
    ev = _evidence(rng)
    objs = [ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max=1.0, sources=("shadow",))]
    j = judge(objs, ev)
    assert j.verdicts[0].status == Status.INCONCLUSIVE and j.verdicts[0].insufficient
    assert j.decision.action == "hold"
    assert judge(objs, ev, final=True).decision.action == "hold"  # never promote on missing evidence
    assert judge(objs, ev, JudgePolicy(on_inconclusive="rollback"), final=True).decision.action == "rollback"


def test_judgement_serialises_to_json_with_infinite_bounds(rng: np.random.Generator) -> None:
    ev = _evidence(rng, n=60)
    j = judge([ObjectiveSpec(key="p99", sli="latency", quantile=0.99, max=1.0)], ev)
    text = j.model_dump_json()
    assert "Infinity" in text


def test_representativeness_from_histograms() -> None:
    from gate.judge import Histogram

    bounds = [0.05, 0.1, 0.25, 0.5, 1.0, float("inf")]

    def hist(cum: list[float]) -> Histogram:
        return Histogram(bounds=bounds, counts=cum)

    ev = Evidence(
        slis={
            "latency": {
                "synthetic": {
                    "stable": hist([9000, 9900, 10000, 10000, 10000, 10000]),
                    "canary": hist([9000, 9900, 10000, 10000, 10000, 10000]),
                },
                "production": {
                    "stable": hist([500, 2000, 8000, 9700, 10000, 10000]),
                    "canary": hist([500, 2000, 8000, 9700, 10000, 10000]),
                },
            }
        }
    )
    objs = [
        ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max=1.0, sources=("synthetic", "production"))
    ]
    rep = judge(objs, ev).comparisons.representativeness
    assert rep[0].status == Status.FAIL and "not representative" in rep[0].reason


def test_representativeness_compares_locust_samples_with_prometheus_buckets(rng: np.random.Generator) -> None:
    from gate.judge import Histogram

    bounds = [0.05, 0.1, 0.25, 0.5, 1.0, float("inf")]
    prod = rng.lognormal(np.log(0.3), 0.3, 20_000)
    prod_hist = Histogram(bounds=bounds, counts=[float(np.sum(prod <= b)) for b in bounds])
    ev = Evidence(
        slis={
            "latency": {
                "synthetic": {"stable": Samples.from_array(rng.lognormal(np.log(0.04), 0.3, 5000))},
                "production": {"stable": prod_hist},
            }
        }
    )
    objs = [
        ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max=1.0, sources=("synthetic", "production"))
    ]
    rep = judge(objs, ev).comparisons.representativeness
    assert rep and rep[0].status == Status.FAIL


def test_a_crash_while_preparing_evidence_is_an_error_of_that_objective_only(
    rng: np.random.Generator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gate.judge import pipeline

    real = pipeline.prepare

    def fragile(item, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(item, Counts):
            raise IndexError("index 103 is out of bounds for axis 0 with size 103")
        return real(item, *args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare", fragile)
    j = judge(OBJECTIVES, _evidence(rng), JudgePolicy(error_limit=5))
    by_key = {(v.objective, v.source): v for v in j.verdicts}
    assert by_key[("errors", "synthetic")].status == Status.ERROR
    assert "IndexError" in by_key[("errors", "synthetic")].reason
    assert by_key[("p95", "synthetic")].status == Status.PASS
