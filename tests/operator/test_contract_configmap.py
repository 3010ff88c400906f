"""A PerformanceGate whose contract is in a ConfigMap (``contractRef: {kind: ConfigMap, name, key}``):
the real `gate operator` process against the emulated API server.

- the ConfigMap's contract drives the run; a change of the ConfigMap mid-run does not change the run
  (it keeps its recorded contract) and takes effect at the next revision;
- a missing ConfigMap, a missing key, YAML that does not parse: status ``Invalid`` and a Warning Event
  with the field path, nothing moves; fixed, it goes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import yaml

from gate.contract import ContractError
from gate.drivers import kube
from gate.drivers.store import RunStore
from gate.operator import resource
from gate.operator.worker import CONFIGMAPS
from tests.operator.conftest import Operators, gate_ref, wait_for
from tests.operator.emulator import EmulatorThread
from tests.operator.test_operator import (
    CANARY,
    SPEC,
    _conditions,
    _events,
    _image,
    _route_history,
    _status,
    _weights,
    _world,
)

CONFIGMAP = kube.ObjectRef(CONFIGMAPS, "shop", "checkout-contract")
REF = {"contractRef": {"kind": "ConfigMap", "name": "checkout-contract", "key": "contract.yaml"}}


def _contract_file(steps: list[str]) -> str:
    """A contract file as `gate run` reads it."""
    return yaml.safe_dump(
        {
            "apiVersion": "perfgate.dev/v1alpha1",
            "kind": "PerformanceContract",
            "metadata": {"name": "checkout"},
            "spec": {**SPEC, "steps": steps},
        }
    )


def _recorded_steps(operators: Operators, run_id: str) -> Any:
    with RunStore(operators.tmp / "runs.sqlite") as store:
        detail = store.run_detail(run_id)
    assert detail is not None
    return json.loads(detail.contract_text)["spec"]["steps"]


def test_a_configmap_contract_changes_at_the_next_revision_not_mid_run(
    emulator: EmulatorThread, client: kube.KubeClient, operators: Operators
) -> None:
    _world(client)
    client.create(CONFIGMAP, {"data": {"contract.yaml": _contract_file(["20%", "pause 4s", "100%"])}})
    op = operators.start()
    client.create(gate_ref(), {"spec": REF})
    wait_for(lambda: _weights(client) == [80, 20], 30, op.tail)
    first = _status(client)["runId"]
    # Changed mid-run: the run keeps the contract it began with.
    client.modify(CONFIGMAP, lambda c: {**c, "data": {"contract.yaml": _contract_file(["30%", "100%"])}})
    wait_for(lambda: _status(client).get("phase") == "Promoted", 40, op.tail)
    assert _route_history(emulator) == [0, 20, 100]
    assert _recorded_steps(operators, first) == ["20%", "pause 4s", "100%"]
    # The next revision runs the changed contract.
    client.modify(CANARY, lambda d: _image(d, "checkout:3"))
    wait_for(lambda: _status(client).get("runId") not in ("", first), 20, op.tail)
    status = wait_for(lambda: (s := _status(client)).get("phase") == "Promoted" and s, 40, op.tail)
    assert _recorded_steps(operators, status["runId"]) == ["30%", "100%"]
    assert _route_history(emulator) == [
        0,
        20,
        100,
        30,
        100,
    ]  # the second run: 30 % (its contract), then 100 %


def test_a_missing_or_invalid_configmap_contract_is_refused_and_nothing_moves(
    emulator: EmulatorThread, client: kube.KubeClient, operators: Operators
) -> None:
    _world(client)
    op = operators.start()
    client.create(gate_ref(), {"spec": REF})

    def refused(fragment: str) -> dict[str, Any]:
        status: dict[str, Any] = wait_for(
            lambda: (
                (s := _status(client)).get("phase") == "Invalid" and fragment in s.get("message", "") and s
            ),
            20,
            op.tail,
        )
        ready = _conditions(status)["Ready"]
        assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
        assert fragment in ready["message"]
        return status

    refused("spec.contractRef.name: no ConfigMap 'checkout-contract'")
    warnings = [e for e in _events(emulator) if e["reason"] == "InvalidSpec"]
    assert warnings and warnings[0]["type"] == "Warning"
    assert "spec.contractRef.name" in warnings[0]["message"]

    time.sleep(2)
    assert _weights(client) == [100]  # nothing moved
    assert _status(client)["runId"] == ""


# ---------------------------------------------------------------------- the resource (no API server)


def _gate(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "perfgate.dev/v1alpha1",
        "kind": "PerformanceGate",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": spec,
    }


def _configmap(data: dict[str, str]) -> dict[str, Any]:
    return {"metadata": {"name": "checkout-contract", "namespace": "shop"}, "data": data}


def test_a_configmap_holds_a_whole_contract_file_or_just_its_spec() -> None:
    whole = resource.contract_of(
        _gate(REF), referenced=_configmap({"contract.yaml": _contract_file(["20%", "100%"])})
    )
    bare = resource.contract_of(
        _gate(REF),
        referenced=_configmap({"contract.yaml": yaml.safe_dump({**SPEC, "steps": ["20%", "100%"]})}),
    )
    assert whole.metadata.name == bare.metadata.name == "checkout"
    assert whole.spec.model_dump() == bare.spec.model_dump()
    assert [str(s) for s in whole.spec.steps] == [str(s) for s in bare.spec.steps]


@pytest.mark.parametrize(
    ("ref", "data", "path", "words"),
    [
        (
            {"kind": "ConfigMap", "name": "checkout-contract"},
            {},
            "spec.contractRef.key",
            "name the ConfigMap's key",
        ),
        (
            {**REF["contractRef"], "key": "nope"},
            {"contract.yaml": "x: 1"},
            "spec.contractRef.key",
            "no key 'nope'",
        ),
        (
            {**REF["contractRef"], "kind": "Secret"},
            {},
            "spec.contractRef.kind",
            "expected PerformanceContract or",
        ),
    ],
)
def test_a_bad_reference_is_named_by_its_field_path(
    ref: dict[str, Any], data: dict[str, str], path: str, words: str
) -> None:
    with pytest.raises(ContractError) as caught:
        resource.contract_of(_gate({"contractRef": ref}), referenced=_configmap(data))
    problem = caught.value.problems[0]
    assert problem.path == path and words in problem.message


def test_yaml_that_does_not_parse_is_named_with_its_line() -> None:
    with pytest.raises(ContractError) as caught:
        resource.contract_of(
            _gate(REF), referenced=_configmap({"contract.yaml": "spec:\n  steps: [unclosed\n"})
        )
    problem = caught.value.problems[0]
    assert problem.file == "ConfigMap shop/checkout-contract data.contract.yaml"
    assert problem.line is not None


def test_a_problem_in_the_configmap_contract_names_the_configmap_and_the_field() -> None:
    spec = yaml.safe_load(_contract_file(["20%", "100%"]))
    spec["spec"]["objectives"] = [{"sli": "http-latency", "quantile": 0.95, "max": "fast"}]
    with pytest.raises(ContractError) as caught:
        resource.contract_of(_gate(REF), referenced=_configmap({"contract.yaml": yaml.safe_dump(spec)}))
    paths = {(p.file, p.path) for p in caught.value.problems}
    assert ("ConfigMap shop/checkout-contract data.contract.yaml", "spec.objectives[0].max") in paths
