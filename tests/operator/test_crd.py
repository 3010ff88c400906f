"""The PerformanceGate CRD: generated from the models, structural, accepted by the API server's schemas,
and what it accepts and refuses."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from ruamel.yaml import YAML

from gate.operator import crd, resource

ROOT = Path(__file__).resolve().parents[2]
CHART_CRD = ROOT / "charts" / "gate" / "crds" / "performancegates.yaml"


def _yaml(path: Path) -> Any:
    return YAML(typ="safe").load(path.read_text())


def _schema() -> dict[str, Any]:
    return crd.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]


def _gate(spec: dict[str, Any], name: str = "checkout") -> dict[str, Any]:
    return {
        "apiVersion": "perfgate.dev/v1alpha1",
        "kind": "PerformanceGate",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    }


def test_the_chart_crd_is_the_generated_one() -> None:
    assert CHART_CRD.read_text() == crd.crd_yaml(), (
        "charts/gate/crds/performancegates.yaml drifted from the models: "
        "run `gate operator crd > charts/gate/crds/performancegates.yaml`"
    )


def test_the_schema_is_structural() -> None:
    assert crd.structural_problems(_schema()) == []


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "object", "properties": {"a": {"description": "no type"}}}, ".a: no type"),
        ({"type": "object", "properties": {"a": {"type": "string", "title": "t"}}}, "keyword 'title'"),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "type inside anyOf"),
        ({"type": "object", "properties": {}, "additionalProperties": {"type": "string"}}, "both properties"),
        ({"type": "number", "exclusiveMinimum": 0}, "numeric exclusiveMinimum"),
        ({"type": "array"}, "an array without items"),
    ],
)
def test_the_walker_finds_what_a_structural_schema_forbids(schema: dict[str, Any], expected: str) -> None:
    assert any(expected in p for p in crd.structural_problems(schema)), crd.structural_problems(schema)


def test_the_conversion_says_what_the_api_server_accepts() -> None:
    converted = crd.structural(
        {
            "anyOf": [{"$ref": "#/$defs/A"}, {"type": "null"}],
            "title": "x",
            "description": "d",
        },
        {
            "A": {
                "type": "object",
                "properties": {"n": {"type": "number", "exclusiveMinimum": 0}},
                "title": "A",
            }
        },
    )
    assert converted == {
        "type": "object",
        "properties": {"n": {"type": "number", "minimum": 0, "exclusiveMinimum": True}},
        "description": "d",
        "nullable": True,
    }
    free = crd.structural(
        {"anyOf": [{"type": "string"}, {"type": "number"}], "description": "220ms or 0.22"}, {}
    )
    assert free == {"x-kubernetes-preserve-unknown-fields": True, "description": "220ms or 0.22"}
    assert crd.structural({"anyOf": [{"type": "integer"}, {"type": "string"}]}, {}) == {
        "x-kubernetes-int-or-string": True
    }


def test_kubernetes_validate_accepts_the_crd() -> None:
    kubernetes_validate.validate(_yaml(CHART_CRD), "1.30", strict=True)


def test_the_crd_has_status_printer_columns_and_cel_rules() -> None:
    version = crd.crd()["spec"]["versions"][0]
    assert version["subresources"] == {"status": {}}
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns["Phase"] == ".status.phase"
    assert columns["Weight"] == ".status.weight"
    assert columns["Decision"] == ".status.lastDecision.action"
    assert columns["Age"] == ".metadata.creationTimestamp"
    spec = _schema()["properties"]["spec"]
    rules = [r["rule"] for r in spec["x-kubernetes-validations"]]
    assert "has(self.target) != has(self.contractRef)" in rules
    for track in ("stable", "canary"):
        node = spec["properties"]["target"]["properties"][track]
        fields = set(node["properties"])
        assert {"url", "deployment", "service"} <= fields  # what the rule names exists
        assert node["x-kubernetes-validations"]
    status = _schema()["properties"]["status"]["properties"]
    for name in ("phase", "runId", "weight", "lastDecision", "conditions", "observedGeneration"):
        assert name in status


@pytest.mark.parametrize("path", sorted((ROOT / "contracts").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_contract_as_a_gate_passes_the_crd_schema(path: Path) -> None:
    contract = _yaml(path)
    gate = _gate(contract["spec"])
    jsonschema.validate(gate, crd.jsonschema_of(_schema()))
    if "objectivesFrom" in contract["spec"]:
        # An OpenAPI file beside a contract file has no place in a cluster: refused with its field.
        with pytest.raises(resource.ContractError) as caught:
            resource.contract_of(gate)
        assert caught.value.problems[0].path.startswith("spec.objectivesFrom[0]")
    else:
        resource.contract_of(gate)  # and the operator's own validation accepts it


def test_a_gate_referencing_a_contract_passes() -> None:
    gate = _gate({"contractRef": {"name": "checkout"}})
    jsonschema.validate(gate, crd.jsonschema_of(_schema()))
    referenced = _yaml(ROOT / "contracts" / "checkout.yaml")
    contract = resource.contract_of(gate, referenced=referenced)
    assert contract.spec.target.canary.deployment == "checkout-canary"


@pytest.mark.parametrize(
    ("edit", "where"),
    [
        (lambda s: s["policy"].__setitem__("failureLimit", "two"), "failureLimit"),
        (lambda s: s.__setitem__("typoField", 1), "typoField"),
        (lambda s: s["router"].__setitem__("type", "haproxy"), "type"),
        (lambda s: s["load"].__setitem__("users", -5), "users"),
    ],
)
def test_the_schema_refuses_what_it_can_say(edit: Any, where: str) -> None:
    spec = copy.deepcopy(_yaml(ROOT / "contracts" / "checkout.yaml")["spec"])
    edit(spec)
    with pytest.raises(jsonschema.ValidationError) as caught:
        jsonschema.validate(_gate(spec), crd.jsonschema_of(_schema()))
    assert where in str(caught.value)


def test_what_the_schema_cannot_say_the_operator_refuses_with_the_field_path() -> None:
    spec = copy.deepcopy(_yaml(ROOT / "contracts" / "checkout.yaml")["spec"])
    spec["objectives"][0]["max"] = "fast"  # a duration or a number: free in the schema
    gate = _gate(spec)
    jsonschema.validate(gate, crd.jsonschema_of(_schema()))
    with pytest.raises(resource.ContractError) as caught:
        resource.contract_of(gate)
    paths = [p.path for p in caught.value.problems]
    assert any(p.startswith("spec.objectives[0]") for p in paths), paths
    assert "spec.objectives[0]" in resource.problems_text(caught.value)


def test_both_inline_and_reference_is_refused() -> None:
    spec = copy.deepcopy(_yaml(ROOT / "contracts" / "checkout.yaml")["spec"])
    spec["contractRef"] = {"name": "other"}
    with pytest.raises(resource.ContractError) as caught:
        resource.contract_of(_gate(spec), referenced=_yaml(ROOT / "contracts" / "orders.yaml"))
    assert caught.value.problems[0].path == "spec"


def test_a_missing_reference_is_refused_with_its_field() -> None:
    with pytest.raises(resource.ContractError) as caught:
        resource.contract_of(_gate({"contractRef": {"name": "nope"}}))
    assert caught.value.problems[0].path == "spec.contractRef.name"
