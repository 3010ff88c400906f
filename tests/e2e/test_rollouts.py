"""End-to-end rollouts in the demo topology: real Prometheus (1 s scrapes), real nginx as the router
with mirroring, the demo services, production users, Locust load and a Chaos Toolkit fault on the
dependency, judged and carried out by the engine, recorded in the run store.

- a good canary is promoted after synthetic, shadow and production evidence;
- a canary 25 % slower is rolled back, and the reason names the latency objective;
(The Prometheus outage is in test_outage.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.demo.contract import keep_sources
from gate.demo.topology import Topology, TopologyConfig
from gate.drivers.store import RunStore
from tests.e2e.harness import contract_for, explain, start_rollout

pytestmark = pytest.mark.slow


@pytest.fixture
def topology(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Topology]:
    scenario = getattr(request, "param", "good")
    topo = Topology(TopologyConfig(scenario=scenario, workdir=tmp_path / "demo", users_rate=100, seed=11))
    with topo.start():
        yield topo
    assert topo.pids() == {}


def test_good_canary_is_promoted(topology: Topology, tmp_path: Path) -> None:
    contract, text = contract_for(topology)
    rollout = start_rollout(topology, contract, text, tmp_path / "runs.db")
    runner = rollout.wait(timeout=150)
    state = runner.state
    assert state.status == "promoted", explain(rollout)
    assert topology.router is not None and topology.router.read().canary_weight == 100
    judged = {source for _, request, _ in rollout.timeline.looks for source in request.sources}
    assert judged == {"synthetic", "shadow", "production"}
    assert any(request.chaos == "risk-api-slow" for _, request, _ in rollout.timeline.looks)
    with RunStore(tmp_path / "runs.db") as store:
        detail = store.run_detail(runner.run_id)
    assert detail.summary.status == "promoted"
    assert detail.looks, "every look is recorded for the dashboard"


def _without_mirror(spec: dict[str, Any]) -> None:
    # Synthetic, then production at a weight: the two sources where stable is measured side by side.
    spec["load"]["duration"] = "15s"
    spec["steps"] = ["load 15s", "50%", "analyze 20s", "100%"]
    keep_sources(spec, {"synthetic", "production"})


@pytest.mark.parametrize("topology", ["regression"], indirect=True)
def test_regressed_canary_is_rolled_back_on_latency(topology: Topology, tmp_path: Path) -> None:
    contract, text = contract_for(topology, _without_mirror)
    rollout = start_rollout(topology, contract, text, tmp_path / "runs.db")
    runner = rollout.wait(timeout=150)
    state = runner.state
    assert state.status == "rolled_back", explain(rollout)
    assert state.cause == "verdict", explain(rollout)
    assert "http-latency" in state.reason
    assert topology.router is not None and topology.router.read().canary_weight == 0
    assert rollout.timeline.max_weight() < 100
