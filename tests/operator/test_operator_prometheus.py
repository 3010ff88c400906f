"""The real `gate operator` with a real Prometheus and the demo's services: a canary 25 % slower than
stable is caught under gate's synthetic load (Locust, started by the operator) and rolled back on the
HTTPRoute; the gate's status, its RolledBack condition and a Warning Event carry the numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from gate.demo.contract import contract_source, demo_contract_data, keep_sources
from gate.demo.topology import Topology, TopologyConfig
from gate.drivers import kube
from tests.operator.conftest import Operators, gate_ref, wait_for
from tests.operator.emulator import EmulatorThread

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROUTE = kube.ObjectRef(kube.HTTPROUTE, "shop", "checkout")
CANARY = kube.ObjectRef(kube.DEPLOYMENT, "shop", "checkout-canary")


@pytest.fixture
def topology(tmp_path: Path) -> Iterator[Topology]:
    topo = Topology(TopologyConfig(scenario="regression", workdir=tmp_path / "demo", users_rate=50, seed=11))
    with topo.start():
        yield topo
    assert topo.pids() == {}


def _spec(topology: Topology) -> dict[str, Any]:
    data = demo_contract_data(
        contract_source(),
        stable_url=topology.stable_url,
        canary_url=topology.canary_url,
        router_port=topology.ports["router"],
        prometheus_url=topology.prometheus_url,
        quick=True,
    )
    spec: dict[str, Any] = json.loads(json.dumps(data["spec"]))
    spec["target"]["stable"].update(service="checkout-stable", deployment="checkout")
    spec["target"]["canary"].update(service="checkout-canary", deployment="checkout-canary")
    spec["router"] = {"type": "gateway-api", "httpRoute": "checkout"}
    spec["load"]["duration"] = "15s"
    spec["steps"] = ["load 15s", "50%", "analyze 20s", "100%"]
    spec.pop("chaos", None)
    spec["objectives"] = [o for o in spec["objectives"] if not o.get("during")]
    keep_sources(spec, {"synthetic", "production"})
    return spec


def test_a_regressed_canary_is_rolled_back_with_the_numbers(
    topology: Topology, emulator: EmulatorThread, client: kube.KubeClient, operators: Operators
) -> None:
    client.create(
        ROUTE,
        {"spec": {"rules": [{"backendRefs": [{"name": "checkout-stable", "port": 8080, "weight": 100}]}]}},
    )
    client.create(
        CANARY, {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "checkout:slow"}]}}}}
    )
    op = operators.start()
    client.create(gate_ref(), {"spec": _spec(topology)})
    status = wait_for(
        lambda: (
            (s := client.get(gate_ref()).get("status") or {}).get("phase")
            in ("RolledBack", "Promoted", "Failed")
            and s
        ),
        180,
        op.tail,
    )
    assert status["phase"] == "RolledBack", json.dumps(status, indent=1)
    rolled = {c["type"]: c for c in status["conditions"]}["RolledBack"]
    assert rolled["status"] == "True" and rolled["reason"] == "Verdict"
    assert "http-latency" in rolled["message"]
    decision = status["lastDecision"]
    assert decision["action"] == "rollback" and decision["basis"] == "evidence"
    assert any(v["status"] == "fail" for v in decision["verdicts"])
    refs = client.get(ROUTE)["spec"]["rules"][0]["backendRefs"]
    assert [int(r.get("weight", 0)) for r in refs if r["name"] == "checkout-canary"] in ([0], [])
    events = httpx.get(f"{emulator.url}/api/v1/namespaces/shop/events", timeout=5).json()["items"]
    warnings = [e for e in events if e["reason"] == "RollingBack"]
    assert warnings and warnings[0]["type"] == "Warning"
    message = warnings[0]["message"]
    assert "http-latency" in message and "interval" in message and "rolling back" in message  # the numbers
    assert op.metric("gate_operator_decisions_total", action="rollback") >= 1
    assert op.metric("gate_operator_prometheus_queries_total") > 0
