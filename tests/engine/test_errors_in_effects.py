"""Errors that say whether to retry, as the runner meets them: a real SQLite store, a manual clock,
and a router TEST DOUBLE that raises gate's own errors (the subject is the runner's reaction; the
Kubernetes driver's translation of real 403/404/409/429/503 answers is tested with the emulator)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.drivers.store import RunStore
from gate.engine.clock import ManualClock
from gate.engine.machine import Abort, Plan, PolicyPlan, StepPlan
from gate.engine.runner import Runner
from gate.errors import PermanentError, RetryPolicy, TemporaryError
from tests.engine.doubles import RecordingRouter, ScriptedAnalyst

PLAN = Plan(
    steps=(
        StepPlan("setWeight", weight=20),
        StepPlan("analyze", duration=10),
        StepPlan("setWeight", weight=100),
    ),
    policy=PolicyPlan(interval=5, rollback_attempts=3),
)


class FailingRouter(RecordingRouter):
    """TEST DOUBLE: the router raises ``error`` for weights in ``failing`` (0 = the rollback's)."""

    def __init__(self, error: Exception, failing: set[int]) -> None:
        super().__init__()
        self.error = error
        self.failing = failing

    def set_weight(self, canary_percent: int) -> None:
        self.calls.append(("weight", canary_percent))
        if canary_percent in self.failing:
            raise self.error
        self.weight = canary_percent


def _runner(store: RunStore, router: RecordingRouter, clock: ManualClock, decide: str = "promote") -> Runner:
    return Runner.create(
        store,
        PLAN,
        contract_name="checkout",
        clock=clock,
        router=router,
        analyst=ScriptedAnalyst(lambda _r: (decide, decide)),  # type: ignore[arg-type, return-value]
        retry=RetryPolicy(attempts=4, total=60.0, initial=0.5, maximum=2.0),
    )


def test_a_permanent_error_moving_traffic_fails_in_one_attempt_and_rolls_back_with_its_message(
    tmp_path: Path,
) -> None:
    router = FailingRouter(PermanentError("httproutes/checkout not found", hint="check spec.router"), {100})
    clock = ManualClock()
    with RunStore(tmp_path / "runs.sqlite") as store:
        final = _runner(store, router, clock).run()
    assert router.calls.count(("weight", 100)) == 1  # never retried
    assert final.status == "failed" and final.cause == "driver"
    assert "httproutes/checkout not found" in final.reason and "check spec.router" in final.reason
    assert router.weight == 0  # the rollback went through


def test_a_temporary_error_is_retried_within_its_budget_then_succeeds(tmp_path: Path) -> None:
    class Flaky(RecordingRouter):
        def set_weight(self, canary_percent: int) -> None:
            self.calls.append(("weight", canary_percent))
            if canary_percent == 20 and self.calls.count(("weight", 20)) <= 2:
                raise TemporaryError("429 too many requests")
            self.weight = canary_percent

    router, clock = Flaky(), ManualClock()
    with RunStore(tmp_path / "runs.sqlite") as store:
        runner = _runner(store, router, clock)
        final = runner.run()
    assert router.calls.count(("weight", 20)) == 3 and final.status == "promoted"


def test_a_rollback_refused_for_good_ends_rollback_failed_closed_and_notified(tmp_path: Path) -> None:
    router = FailingRouter(PermanentError("patch httproutes/checkout: 403 forbidden"), {0})
    clock = ManualClock()
    with RunStore(tmp_path / "runs.sqlite") as store:
        runner = _runner(store, router, clock, decide="hold")
        runner.advance(clock.now())
        runner.request(Abort(at=clock.now(), by="alice"))
        final = runner.run()
        assert final.status == "rollback_failed" and final.terminal
        assert "traffic may still reach the canary" in final.reason and "403" in final.reason
        assert router.calls.count(("weight", 0)) == 1  # one attempt: a permanent error is not retried
        detail = store.run_detail(runner.run_id)
        assert detail is not None and detail.summary.status == "rollback_failed"
        assert detail.summary.finished_at is not None  # the run is closed in the store
        assert any(
            e.kind == "notify" and e.effect["event"] == "rollback_failed"
            for t in detail.timeline
            for e in t.effects
        )
        assert runner.advance(clock.now()) is None


def test_a_rollback_failing_temporarily_gives_up_after_its_bounded_budget(tmp_path: Path) -> None:
    router = FailingRouter(TemporaryError("503 service unavailable"), {0})
    clock = ManualClock()
    with RunStore(tmp_path / "runs.sqlite") as store:
        runner = _runner(store, router, clock, decide="hold")
        runner.advance(clock.now())
        runner.request(Abort(at=clock.now(), by="alice"))
        started = clock.now()
        final = runner.run()
    assert final.status == "rollback_failed" and "3 attempts" in final.reason
    assert router.calls.count(("weight", 0)) == 3 * 4  # 3 attempts (one per tick), 4 tries inside each
    assert clock.now() - started < 3 * (60 + 5)  # bounded: attempts x (retry budget + interval)


def test_gate_run_without_cluster_credentials_exits_2_with_the_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = tmp_path / "c.yaml"
    contract.write_text(
        """\
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: checkout}
spec:
  service: checkout
  target: {stable: {service: checkout-stable}, canary: {service: checkout-canary}}
  router: {type: gateway-api, httpRoute: checkout}
  prometheus: {url: "http://127.0.0.1:9"}
  objectives:
    - {sli: http-latency, quantile: 0.95, max: 220ms, sources: [production]}
  steps: [20%, 100%]
"""
    )
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(contract),
            "--store",
            str(tmp_path / "runs.sqlite"),
            "--kubeconfig",
            str(tmp_path / "none"),
        ],
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert "Kubernetes" in result.output or "kubeconfig" in result.output


def test_a_late_weight_starts_its_step_and_window_when_it_landed(tmp_path: Path) -> None:
    """The API server is frozen 26 s before the 20 % weight: the analyze step's 10 s and its evidence
    window start when the call returned, and the record says the weight landed late."""
    clock = ManualClock(1000.0)

    class Frozen(RecordingRouter):
        def set_weight(self, canary_percent: int) -> None:
            if canary_percent == 20:
                clock.advance(26.0)  # the call hangs, then succeeds
            super().set_weight(canary_percent)

    analyst = ScriptedAnalyst(lambda _r: ("promote", "fine"))
    with RunStore(tmp_path / "runs.sqlite") as store:
        runner = Runner.create(
            store, PLAN, contract_name="checkout", clock=clock, router=Frozen(), analyst=analyst
        )
        final = runner.run()
        detail = store.run_detail(runner.run_id)
    assert final.status == "promoted"
    assert all(look.since >= 1026.0 for look in analyst.looks)  # no window reaches back before it landed
    assert final.step_started_at[1] == 1026.0
    assert detail is not None
    applied = [t for t in detail.timeline if t.input_kind == "applied"]
    assert applied and applied[0].input["at"] == 1026.0
    assert "took effect 26.0s after it was asked" in applied[0].state["reason"]


def test_every_decision_records_the_verdicts_it_rests_on(tmp_path: Path) -> None:
    clock = ManualClock()
    analyst = ScriptedAnalyst(lambda r: ("rollback", "p95 too high") if r.step == 1 else ("promote", "ok"))
    with RunStore(tmp_path / "runs.sqlite") as store:
        runner = Runner.create(
            store, PLAN, contract_name="checkout", clock=clock, router=RecordingRouter(), analyst=analyst
        )
        final = runner.run()
        detail = store.run_detail(runner.run_id)
    assert final.status == "rolled_back"
    assert detail is not None
    judged = [t for t in detail.timeline if t.input_kind == "judged" and t.input["action"] == "rollback"]
    assert judged[0].input["drivers"] == ["http-latency-p95@production=fail"]
    rolling = next(t for t in detail.timeline if t.state["phase"] == "rolling_back")
    assert rolling.state["basis"] == [f"look {judged[0].input['look']}: http-latency-p95@production=fail"]
