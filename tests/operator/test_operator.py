"""The real `gate operator` process against the emulated API server (over real HTTP): revisions start
gates, weights progress on the HTTPRoute, status/conditions/Events, reviewers' annotations, invalid gates,
a replica killed mid-step, two replicas."""

from __future__ import annotations

import copy
import json
import subprocess
import time
from typing import Any

import httpx
import pytest

from gate.drivers import kube
from gate.drivers.store import RunStore
from tests.operator.conftest import Operators, gate_ref, wait_for
from tests.operator.emulator import EmulatorThread

ROUTE = kube.ObjectRef(kube.HTTPROUTE, "shop", "checkout")
CANARY = kube.ObjectRef(kube.DEPLOYMENT, "shop", "checkout-canary")

SPEC: dict[str, Any] = {
    "target": {
        "stable": {"service": "checkout-stable", "deployment": "checkout"},
        "canary": {"service": "checkout-canary", "deployment": "checkout-canary"},
    },
    "router": {"type": "gateway-api", "httpRoute": "checkout"},
    "steps": ["20%", "pause 2s", "50%", "pause 2s", "100%"],
    "policy": {"interval": "1s"},
}


def _world(client: kube.KubeClient, image: str = "checkout:2") -> None:
    client.create(
        ROUTE,
        {"spec": {"rules": [{"backendRefs": [{"name": "checkout-stable", "port": 8080, "weight": 100}]}]}},
    )
    client.create(
        CANARY,
        {"spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "app", "image": image}]}}}},
    )


def _gate(client: kube.KubeClient, spec: dict[str, Any], name: str = "checkout") -> None:
    client.create(gate_ref(name), {"spec": spec})


def _weights(client: kube.KubeClient) -> list[int]:
    refs = client.get(ROUTE)["spec"]["rules"][0]["backendRefs"]
    return [int(r.get("weight", 0)) for r in refs]


def _route_history(emulator: EmulatorThread) -> list[int]:
    """The canary weight of every stored version of the HTTPRoute, in order (repeats collapsed)."""
    assert emulator.emulator is not None
    em = emulator.emulator
    out: list[int] = []
    for obj in emulator.call(
        lambda: em.versions("gateway.networking.k8s.io/v1/httproutes", "shop", "checkout")
    ):
        refs = obj["spec"]["rules"][0]["backendRefs"]
        weight = next((int(r.get("weight", 0)) for r in refs if r["name"] == "checkout-canary"), 0)
        if not out or out[-1] != weight:
            out.append(weight)
    return out


def _status(client: kube.KubeClient, name: str = "checkout") -> dict[str, Any]:
    return client.get(gate_ref(name)).get("status") or {}


def _conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status.get("conditions", [])}


def _events(emulator: EmulatorThread, name: str = "checkout") -> list[dict[str, Any]]:
    items = httpx.get(f"{emulator.url}/api/v1/namespaces/shop/events", timeout=5).json()["items"]
    return [e for e in items if (e.get("involvedObject") or {}).get("name") == name]


def test_a_revision_starts_a_gate_that_steps_the_route_to_promotion(
    emulator: EmulatorThread, client: kube.KubeClient, operators: Operators
) -> None:
    _world(client)
    op = operators.start()
    _gate(client, SPEC)
    status = wait_for(lambda: (s := _status(client)).get("phase") == "Promoted" and s, 40, op.tail)
    assert _weights(client) == [0, 100]
    assert _route_history(emulator) == [0, 20, 50, 100]  # from the created route: every step, once, in order
    assert status["weight"] == 100
    assert status["runId"] and status["revision"]
    assert status["images"] == ["checkout:2"]
    assert status["observedGeneration"] == 1
    conditions = _conditions(status)
    assert conditions["Ready"]["status"] == "True"
    assert conditions["Promoted"]["status"] == "True"
    assert conditions["Progressing"]["status"] == "False"
    assert conditions["RolledBack"]["status"] == "False"
    assert conditions["Held"]["status"] == "False"
    reasons = [e["reason"] for e in _events(emulator)]
    assert "Started" in reasons and "Promoted" in reasons
    weight_events = [e["message"] for e in _events(emulator) if e["reason"] == "WeightChanged"]
    assert "canary weight 0% → 20%" in weight_events
    assert op.metric("gate_operator_gates", phase="Promoted") == 1
    assert op.metric("gate_operator_kube_api_calls_total") > 0
    assert httpx.get(f"{op.probes}/healthz", timeout=5).status_code == 200
    # kubectl reads it as a user would.
    phase = subprocess.run(
        [
            "kubectl",
            "--server",
            emulator.url,
            "-n",
            "shop",
            "get",
            "performancegates",
            "checkout",
            "-o",
            "jsonpath={.status.phase} {.status.weight}",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert phase.stdout.strip() == "Promoted 100", phase.stderr

    # A new revision of the canary (a new image) starts a new run.
    first = status["runId"]
    client.modify(CANARY, lambda d: _image(d, "checkout:3"))
    wait_for(lambda: _status(client).get("runId") not in ("", first), 20, op.tail)
    status = wait_for(lambda: (s := _status(client)).get("phase") == "Promoted" and s, 40, op.tail)
    assert status["images"] == ["checkout:3"]
    with RunStore(operators.tmp / "runs.sqlite") as store:
        runs = store.list_runs()
        states = [store.get_state(r.id)["status"] for r in runs]
    assert {r.id for r in runs} == {first, status["runId"]}
    assert states == ["promoted", "promoted"]


def _image(deployment: dict[str, Any], image: str) -> dict[str, Any]:
    deployment["spec"]["template"]["spec"]["containers"][0]["image"] = image
    return deployment


def test_a_gate_waits_for_its_canary_deployment(client: kube.KubeClient, operators: Operators) -> None:
    client.create(
        ROUTE,
        {"spec": {"rules": [{"backendRefs": [{"name": "checkout-stable", "port": 8080, "weight": 100}]}]}},
    )
    op = operators.start()
    _gate(client, SPEC)
    status = wait_for(lambda: (s := _status(client)).get("phase") == "Waiting" and s, 20, op.tail)
    assert "checkout-canary" in status["message"]
    time.sleep(2)
    assert _weights(client) == [100]  # nothing moved
    client.create(
        CANARY,
        {"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "checkout:2"}]}}}},
    )
    wait_for(lambda: _status(client).get("phase") == "Promoted", 40, op.tail)


def test_an_invalid_gate_is_refused_with_the_field_path_and_nothing_moves(
    emulator: EmulatorThread, client: kube.KubeClient, operators: Operators
) -> None:
    _world(client)
    op = operators.start()
    spec = copy.deepcopy(SPEC)
    spec["objectives"] = [{"sli": "http-latency", "quantile": 0.95, "max": "fast"}]
    _gate(client, spec)
    status = wait_for(lambda: (s := _status(client)).get("phase") == "Invalid" and s, 20, op.tail)
    ready = _conditions(status)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.objectives[0].max" in ready["message"]
    warnings = [e for e in _events(emulator) if e["reason"] == "InvalidSpec"]
    assert (
        warnings and warnings[0]["type"] == "Warning" and "spec.objectives[0].max" in warnings[0]["message"]
    )
    time.sleep(2)
    assert _weights(client) == [100]
    assert status["runId"] == ""
    # Fixed: it goes.
    client.modify(gate_ref(), lambda g: {**g, "spec": SPEC})
    wait_for(lambda: _status(client).get("phase") == "Promoted", 40, op.tail)


def test_reviewers_approve_a_held_run_and_abort_a_running_one(
    emulator: EmulatorThread, client: kube.KubeClient, operators: Operators
) -> None:
    _world(client)
    op = operators.start()
    spec = copy.deepcopy(SPEC)
    spec["steps"] = ["20%", "pause", "50%", "pause 30s", "100%"]  # the first pause waits for a person
    _gate(client, spec)
    status = wait_for(lambda: (s := _status(client)).get("phase") == "Held" and s, 20, op.tail)
    assert _conditions(status)["Held"]["status"] == "True"
    assert status["weight"] == 20
    client.patch(gate_ref(), {"metadata": {"annotations": {"perfgate.dev/approve": "alice"}}})
    wait_for(lambda: _status(client).get("weight") == 50, 20, op.tail)
    # The annotation is removed once acted on.
    wait_for(
        lambda: "perfgate.dev/approve" not in (client.get(gate_ref())["metadata"].get("annotations") or {}),
        10,
    )
    client.patch(gate_ref(), {"metadata": {"annotations": {"perfgate.dev/abort": "p99 looks odd"}}})
    status = wait_for(lambda: (s := _status(client)).get("phase") == "RolledBack" and s, 20, op.tail)
    rolled = _conditions(status)["RolledBack"]
    assert rolled["status"] == "True" and rolled["reason"] == "Abort"
    # The route is back as the user wrote it (one stable backendRef): gate's canary ref is gone.
    assert _weights(client) == [100]
    assert _route_history(emulator) == [0, 20, 50, 0]


def test_a_replica_killed_mid_step_is_taken_over_without_repeating_or_skipping(
    emulator: EmulatorThread, client: kube.KubeClient, operators: Operators
) -> None:
    _world(client)
    first = operators.start(name="first")
    spec = copy.deepcopy(SPEC)
    spec["steps"] = ["20%", "pause 4s", "50%", "pause 4s", "100%"]
    _gate(client, spec)
    wait_for(lambda: _status(client).get("weight") == 20, 20, first.tail)
    run_id = _status(client)["runId"]
    first.kill()  # mid-pause: the run's record says where it is
    second = operators.start(name="second")
    status = wait_for(lambda: (s := _status(client)).get("phase") == "Promoted" and s, 40, second.tail)
    assert status["runId"] == run_id  # the same run, resumed, not a new one
    assert _route_history(emulator) == [0, 20, 50, 100]
    with RunStore(operators.tmp / "runs.sqlite") as store:
        detail = store.run_detail(run_id)
        runs = store.list_runs()
    assert len(runs) == 1
    assert detail is not None
    starts = [t for t in detail.timeline if t.input.get("kind") == "start"]
    assert len(starts) == 1


def test_two_replicas_only_one_acts_and_the_other_takes_over(
    emulator: EmulatorThread, client: kube.KubeClient, operators: Operators
) -> None:
    _world(client)
    peering = kube.Resource("kopf.dev", "v1", "clusterkopfpeerings", "ClusterKopfPeering")
    httpx.post(
        f"{emulator.url}/apis/kopf.dev/v1/clusterkopfpeerings",
        json={"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": "gate"}},
        timeout=5,
    ).raise_for_status()
    del peering
    leader = operators.start(
        "--peering", "gate", "--priority", "20", "--peering-lifetime", "5", name="leader"
    )
    standby = operators.start(
        "--peering", "gate", "--priority", "10", "--peering-lifetime", "5", name="standby"
    )
    spec = copy.deepcopy(SPEC)
    spec["steps"] = ["20%", "pause 3s", "50%", "pause 8s", "100%"]
    _gate(client, spec)
    wait_for(lambda: _status(client).get("weight") == 50, 30, leader.tail)
    assert leader.metric("gate_operator_kube_api_calls_total", verb="patch") > 0
    assert standby.metric("gate_operator_kube_api_calls_total") == 0  # it never acted
    assert standby.metric("gate_operator_evaluations_total") == 0
    leader.kill()
    status = wait_for(lambda: (s := _status(client)).get("phase") == "Promoted" and s, 60, standby.tail)
    assert standby.metric("gate_operator_evaluations_total") > 0
    assert _route_history(emulator) == [0, 20, 50, 100]
    assert status["runId"]


def test_crd_command_prints_the_chart_crd() -> None:
    from tests.operator.conftest import GATE, ROOT

    out = subprocess.run([GATE, "operator", "crd"], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout == (ROOT / "charts" / "gate" / "crds" / "performancegates.yaml").read_text()
    json.dumps(out.stdout)


pytestmark = pytest.mark.timeout(180)


def test_a_gate_deleted_mid_run_rolls_its_canary_back(
    emulator: EmulatorThread, client: kube.KubeClient, operators: Operators
) -> None:
    _world(client)
    op = operators.start()
    spec = copy.deepcopy(SPEC)
    spec["steps"] = ["20%", "pause 60s", "100%"]
    _gate(client, spec)
    wait_for(lambda: _status(client).get("weight") == 20, 20, op.tail)
    client.delete(gate_ref())
    wait_for(lambda: _weights(client) == [100], 60, lambda: f"weights {_weights(client)}\n{op.tail()}")
    wait_for(lambda: not _exists(client), 60, lambda: f"still there\n{op.tail()}")  # the finalizer let go


def _exists(client: kube.KubeClient) -> bool:
    try:
        client.get(gate_ref())
    except kube.KubeNotFoundError:
        return False
    return True
