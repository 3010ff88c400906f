"""Planning before the rollout: requests to decide per objective × source, step times, bucket advice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from gate.cli.main import app
from gate.judge import JudgePolicy, ObjectiveSpec, judge
from gate.judge.planning import (
    PROMETHEUS_DEFAULT_BUCKETS,
    bucket_advice,
    needs,
    recommended_buckets,
)
from tests.judge.conftest import samples_evidence

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[2]
P95 = ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max_increase=0.10, sources=("production",))


def test_the_planned_size_is_where_the_judge_proves_an_unchanged_canary() -> None:
    (need,) = needs([P95], JudgePolicy())
    assert need.requests is not None and 1_000 < need.requests < 50_000
    # Judged on lognormal(σ = 0.5) samples of that size, A/A mostly passes by proof; at a quarter, it cannot.
    rng = np.random.default_rng(3)
    passed_full, passed_quarter = 0, 0
    for _ in range(10):
        s, c = (rng.lognormal(np.log(0.1), 0.5, need.requests) for _ in range(2))
        passed_full += judge([P95], samples_evidence(s, c)).decision.action == "promote"
        q = need.requests // 4
        passed_quarter += judge([P95], samples_evidence(s[:q], c[:q])).decision.action == "promote"
    assert passed_full >= 6 and passed_quarter <= 2, (passed_full, passed_quarter)


def test_a_tighter_tolerance_or_confidence_needs_more() -> None:
    (base,) = needs([P95], JudgePolicy())
    tight = ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max_increase=0.05, sources=("production",))
    (tighter,) = needs([tight], JudgePolicy())
    (surer,) = needs([P95], JudgePolicy(confidence=0.999))
    assert base.requests is not None and tighter.requests is not None and surer.requests is not None
    assert tighter.requests > 2 * base.requests and surer.requests > base.requests


def test_default_buckets_cannot_resolve_ten_percent_and_the_recommended_can() -> None:
    (advice,) = bucket_advice([P95], PROMETHEUS_DEFAULT_BUCKETS, JudgePolicy())
    assert not advice.resolves and "cannot be resolved" in advice.where
    (good,) = bucket_advice([P95], recommended_buckets(0.10), JudgePolicy())
    assert good.resolves


def test_validate_and_explain_warn_about_short_steps_and_coarse_buckets() -> None:
    contract = str(ROOT / "contracts" / "local-demo.yaml")
    result = runner.invoke(app, ["validate", contract, "--rps", "7", "--buckets", "default"])
    assert result.exit_code == 0, result.output
    assert "warning: step 8 (analyze 45s at weight 50%" in result.output
    # An objective judged only `during` chaos is not planned at an analyze step (it is not judged there).
    assert "http-latency-p99-during-risk-api-slow" not in result.output
    assert "requests per track to decide" in result.output
    assert "cannot be resolved" in result.output
    result = runner.invoke(app, ["explain", contract, "--rps", "100"])
    assert result.exit_code == 0, result.output
    assert "Planning" in result.output and "needs" in result.output
    bad = runner.invoke(app, ["validate", contract, "--buckets", "0.1,x"])
    assert bad.exit_code == 2
