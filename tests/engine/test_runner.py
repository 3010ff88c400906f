"""The runner with a real nginx router, a real run store and a manual clock.

The analyst is scripted (a test double for Prometheus + judge: the subject here is what the runner
does with decisions). The router is gate's real nginx on loopback in front of two loopback upstreams;
one test wraps it to make its first calls fail (labelled below) to show the rollback is retried.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.drivers.nginx import NginxError, nginx_binary
from gate.drivers.routers import RouteState
from gate.drivers.routers.nginx import NginxRouter
from gate.drivers.store import RunStore
from gate.engine import codec
from gate.engine.clock import ManualClock
from gate.engine.machine import Abort, Plan, PolicyPlan, Resume, StepPlan
from gate.engine.runner import LookRequest, Runner
from tests.engine.doubles import ScriptedAnalyst
from tests.engine.receiver import receiver
from tests.support.ports import free_port, wait_port


def _have_nginx() -> bool:
    try:
        nginx_binary()
    except NginxError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _have_nginx(), reason="nginx is not installed (Debian package nginx)")

PLAN = Plan(
    steps=(
        StepPlan("mirror", percent=100),
        StepPlan("setWeight", weight=10),
        StepPlan("analyze", duration=10),
        StepPlan("setWeight", weight=50),
        StepPlan("pause", duration=10),
        StepPlan("setWeight", weight=100),
        StepPlan("mirror", percent=0),
    ),
    policy=PolicyPlan(interval=5, undecided_looks=1),
)


@pytest.fixture
def router(tmp_path: Path) -> Iterator[NginxRouter]:
    with receiver() as stable, receiver() as canary:
        port = free_port()
        r = NginxRouter(tmp_path / "nginx", port, stable.url, canary.url)
        r.start()
        try:
            wait_port(port)
            yield r
        finally:
            r.stop()


def through(router: NginxRouter) -> int:
    with urllib.request.urlopen(router.url + "/ping", timeout=5) as answer:
        return int(answer.status)


def test_a_rollout_through_real_nginx_is_promoted_and_recorded(router: NginxRouter, tmp_path: Path) -> None:
    weights: list[RouteState] = []

    def script(r: LookRequest) -> tuple[Any, str]:
        weights.append(router.read())  # what nginx has in effect when each look is taken
        return ("promote", "all objectives pass")

    with RunStore(tmp_path / "runs.sqlite") as store:
        runner = Runner.create(
            store,
            PLAN,
            contract_name="checkout",
            clock=ManualClock(),
            router=router,
            analyst=ScriptedAnalyst(script),
        )
        final = runner.run()
        assert final.status == "promoted"
        assert router.read() == RouteState(100, 0)
        assert through(router) == 200
        assert RouteState(10, 100) in weights and RouteState(50, 100) in weights
        detail = store.run_detail(runner.run_id)
        assert detail is not None and detail.summary.status == "promoted" and detail.summary.weight == 100
        assert [lk.action for lk in detail.looks] == ["promote"] * len(detail.looks)
        assert all(e.done and e.ok for t in detail.timeline for e in t.effects)
        assert store.list_runs()[0].id == runner.run_id


def test_a_failed_look_rolls_nginx_back_at_once(router: NginxRouter, tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite") as store:
        analyst = ScriptedAnalyst(
            lambda r: ("rollback", "p95 +25% over stable") if r.step == 2 else ("hold", "…")
        )
        runner = Runner.create(
            store, PLAN, contract_name="checkout", clock=ManualClock(), router=router, analyst=analyst
        )
        final = runner.run()
        assert final.status == "rolled_back" and final.cause == "verdict"
        assert router.read() == RouteState(0, 0)
        assert len(analyst.looks) == 1  # the first failed look acts; no count of intervals


class FlakyRouter:
    """TEST DOUBLE around the real nginx router: its next ``fail`` calls raise before reaching nginx."""

    def __init__(self, inner: NginxRouter) -> None:
        self.inner = inner
        self.fail = 0
        self.calls = 0

    def _gate(self) -> None:
        self.calls += 1
        if self.fail > 0:
            self.fail -= 1
            raise ConnectionError("router API unavailable")

    def set_weight(self, canary_percent: int) -> RouteState:
        self._gate()
        return self.inner.set_weight(canary_percent)

    def set_mirror(self, percent: int) -> RouteState:
        self._gate()
        return self.inner.set_mirror(percent)


def test_a_rollback_the_router_refuses_is_retried_until_it_holds(router: NginxRouter, tmp_path: Path) -> None:
    flaky = FlakyRouter(router)

    def script(r: LookRequest) -> tuple[Any, str]:
        if r.step == 2:
            flaky.fail = 5  # the router goes down exactly when the canary fails
            return ("rollback", "error ratio 4% > 0.1%")
        return ("hold", "collecting")

    with RunStore(tmp_path / "runs.sqlite") as store:
        runner = Runner.create(
            store,
            PLAN,
            contract_name="checkout",
            clock=ManualClock(),
            router=flaky,
            analyst=ScriptedAnalyst(script),
            retry_delay=0.0,
        )
        final = runner.run()
        assert final.status == "rolled_back"
        assert final.rollback_attempts == 2  # the first attempt failed (3 tries inside it), the next held
        assert router.read() == RouteState(0, 0)
        detail = store.run_detail(runner.run_id)
        assert detail is not None
        rollbacks = [e for t in detail.timeline for e in t.effects if e.kind == "rollback"]
        assert [(e.ok, "router API unavailable" in e.error) for e in rollbacks] == [
            (False, True),
            (True, False),
        ]


def test_a_person_aborts_or_resumes_through_the_store(router: NginxRouter, tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite") as store:
        # Inconclusive looks past the limit: the run is held at weight 10 for a person.
        runner = Runner.create(
            store,
            PLAN,
            contract_name="checkout",
            clock=ManualClock(),
            router=router,
            analyst=ScriptedAnalyst(lambda r: ("hold", "production p95: 12 of 100 requests")),
        )
        state = runner.run(max_transitions=12)
        assert state.status == "held" and router.read() == RouteState(10, 100)
        # The dashboard (another process) writes the request; the runner acts on it before its next tick.
        store.request(
            runner.run_id, codec.dump_input(Resume(at=0.0, by="alice", reason="known slow batch job"))
        )
        state = runner.run(max_transitions=1)
        assert state.status == "running" and "alice" in state.reason
        store.request(runner.run_id, codec.dump_input(Abort(at=0.0, by="bob")))
        final = runner.run()
        assert final.status == "rolled_back" and final.cause == "abort" and "bob" in final.reason
        assert router.read() == RouteState(0, 0)
