"""End-to-end: a Prometheus outage in mid-rollout, in the demo topology (real Prometheus stopped and
restarted on the same port and data, real nginx router, demo services, production users).

While Prometheus is gone the canary never gains weight and is never promoted: every look fails and
a failed look only holds. Once it is back, the rollout resolves per policy: under
`onInconclusive: hold` with room in `errorLimit` the evidence decides (promoted), or the canary is
held at its weight for a person while the evidence cannot decide; with `errorLimit: 3`, the fourth
failed look in a row rolls the canary back.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.demo.contract import keep_sources
from gate.demo.topology import Topology, TopologyConfig
from gate.engine.machine import Abort
from tests.e2e.harness import Rollout, contract_for, explain, start_rollout

pytestmark = pytest.mark.slow


@pytest.fixture
def topology(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Topology]:
    scenario = getattr(request, "param", "good")
    topo = Topology(TopologyConfig(scenario=scenario, workdir=tmp_path / "demo", users_rate=100, seed=11))
    with topo.start():
        yield topo
    assert topo.pids() == {}


def _outage_contract(topology: Topology, **policy: Any) -> tuple[Any, str]:
    def edit(spec: dict[str, Any]) -> None:
        spec["steps"] = ["20%", "analyze 8s", "100%"]
        keep_sources(spec, {"production"})
        spec["policy"].update({"interval": "1s", **policy})

    return contract_for(topology, edit)


def _outage(topology: Topology, rollout: Rollout, seconds: float) -> tuple[float, float]:
    """Stop Prometheus once the canary holds its weight and a few looks saw evidence; restart it
    after ``seconds``. The canary must never gain weight while Prometheus is gone."""
    assert topology.prometheus is not None
    rollout.wait_until(lambda r: r.state.weight == 20, timeout=30)
    start = rollout.wait_until(lambda r: len(rollout.timeline.looks) >= 4, timeout=30)
    topology.prometheus.stop()
    try:
        with pytest.raises(TimeoutError):
            rollout.wait_until(lambda r: r.state.weight > 20 or r.state.status == "promoted", timeout=seconds)
    finally:
        end = time.monotonic()
        topology.prometheus.start()
    return start, end


def test_prometheus_outage_holds_then_resolves_per_policy(topology: Topology, tmp_path: Path) -> None:
    # onInconclusive: hold with room in errorLimit: an outage only holds the canary where it is.
    contract, text = _outage_contract(topology, onInconclusive="hold", errorLimit=100, inconclusiveLimit=3)
    rollout = start_rollout(topology, contract, text, tmp_path / "runs.db")
    # 12 s without Prometheus, past the analyze step's 8 s: with evidence the canary would move on.
    start, end = _outage(topology, rollout, seconds=12)
    assert rollout.timeline.max_weight(start, end) == 20
    assert rollout.runner.state.weight == 20, "under onInconclusive: hold an outage only holds"
    assert "promoted" not in rollout.timeline.statuses(start, end)
    during = [o for t, _, o in rollout.timeline.looks if start <= t <= end]
    assert all(o.action != "promote" for o in during), explain(rollout)
    # Prometheus is back: the evidence decides, or — while it cannot decide — the policy holds the
    # canary at its weight for a person (never a promotion without evidence).
    rollout.wait_until(lambda r: r.state.terminal or r.state.status == "held", timeout=90)
    state = rollout.runner.state
    if state.status == "held":
        assert state.weight == 20, explain(rollout)
        assert all(t <= end or o.action != "promote" for t, _, o in rollout.timeline.looks), explain(rollout)
        rollout.runner.request(Abort(at=time.time(), by="e2e test", reason="held: done"))
    else:
        assert state.status == "promoted", explain(rollout)
    rollout.wait(timeout=30)


def test_prometheus_outage_past_the_error_limit_rolls_back(topology: Topology, tmp_path: Path) -> None:
    # errorLimit 3: once the step waits for a conclusion, a fourth failed look in a row rolls back.
    contract, text = _outage_contract(topology, errorLimit=3)
    rollout = start_rollout(topology, contract, text, tmp_path / "runs.db")
    start, end = _outage(topology, rollout, seconds=15)
    assert rollout.timeline.max_weight(start, end) <= 20
    assert "promoted" not in rollout.timeline.statuses(start, end)
    runner = rollout.wait(timeout=60)
    # Rolled back because the analysis kept failing, not because the canary was judged bad: the
    # run ends "failed" (the dashboard tells it apart from a rollback on evidence).
    assert runner.state.status == "failed", explain(rollout)
    assert runner.state.cause == "errors", explain(rollout)
    assert topology.router is not None and topology.router.read().canary_weight == 0
