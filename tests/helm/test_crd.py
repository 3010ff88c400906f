"""Example PerformanceGates against the CRD the chart renders, and against the first shipped v1alpha1 CRD
(tests/helm/testdata): an upgrade of the chart keeps every existing gate valid."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gate.contract import contract_from_data
from tests.helm.conftest import CRDS, GATES, K8S_VERSION, Render, by_kind

TESTDATA = Path(__file__).parent / "testdata"
FIRST_SHIPPED = TESTDATA / "performancegates-v1alpha1.yaml"
CRD_NAME = "performancegates.perfgate.dev"


def jsonschema_of(schema: Any) -> Any:
    """A CRD's openAPIV3Schema as plain JSON Schema: `nullable` as a null type, int-or-string, the
    boolean exclusive bounds, and unknown fields refused where the API server would prune them."""
    if isinstance(schema, list):
        return [jsonschema_of(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            continue
        out[key] = (
            {n: jsonschema_of(s) for n, s in value.items()} if key == "properties" else jsonschema_of(value)
        )
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    out.pop("nullable", None)
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    for bound, limit in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if out.get(bound) is True:
            out[bound] = out.pop(limit)
        elif out.get(bound) is False:
            out.pop(bound)
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False
    return out


def _served_schemas(crd: dict[str, Any]) -> dict[str, Any]:
    return {
        v["name"]: jsonschema_of(v["schema"]["openAPIV3Schema"])
        for v in crd["spec"]["versions"]
        if v.get("served")
    }


def _gates() -> list[dict[str, Any]]:
    return [yaml.safe_load(p.read_text()) for p in GATES]


def _check(gate: dict[str, Any], schemas: dict[str, Any], where: str) -> None:
    version = gate["apiVersion"].split("/")[1]
    assert version in schemas, f"{where} no longer serves {gate['apiVersion']}: existing gates would break"
    errors = sorted(
        jsonschema.Draft7Validator(schemas[version]).iter_errors(gate), key=lambda e: list(e.path)
    )
    assert not errors, f"{gate['metadata']['name']} against {where}: " + "; ".join(
        f"{'.'.join(map(str, e.path))}: {e.message[:200]}" for e in errors[:5]
    )


def test_there_are_example_gates_and_a_first_shipped_crd() -> None:
    assert len(GATES) >= 3
    assert yaml.safe_load(FIRST_SHIPPED.read_text())["metadata"]["name"] == CRD_NAME


@pytest.mark.parametrize("path", GATES, ids=[p.stem for p in GATES])
def test_example_gate_validates_against_the_first_shipped_crd(path: Path) -> None:
    _check(
        yaml.safe_load(path.read_text()),
        _served_schemas(yaml.safe_load(FIRST_SHIPPED.read_text())),
        "v1alpha1",
    )


@pytest.mark.parametrize(
    "path", [p for p in GATES if "contractRef" not in p.read_text()], ids=lambda p: p.stem
)
def test_example_gate_is_a_contract_gate_accepts(path: Path) -> None:
    """Beyond the schema: the inline contract passes gate's own validation (models and checks)."""
    doc = yaml.safe_load(path.read_text())
    contract = contract_from_data({**doc, "kind": "PerformanceContract"}, filename=str(path))
    assert contract.metadata.name == doc["metadata"]["name"]


def test_the_crd_schema_can_refuse() -> None:
    schemas = _served_schemas(yaml.safe_load(FIRST_SHIPPED.read_text()))
    gate = yaml.safe_load(GATES[0].read_text())
    gate["spec"]["objectivez"] = []
    with pytest.raises(AssertionError, match="objectivez"):
        _check(gate, schemas, "v1alpha1")


def test_first_shipped_crd_is_a_valid_crd() -> None:
    kubernetes_validate.validate(yaml.safe_load(FIRST_SHIPPED.read_text()), K8S_VERSION, strict=True)


def _rendered_crd(render: Render) -> dict[str, Any]:
    if not CRDS:
        pytest.skip("charts/gate/crds/ is not on this branch yet (the operator engineer generates it)")
    found = [d for d in by_kind(render(), "CustomResourceDefinition") if d["metadata"]["name"] == CRD_NAME]
    assert len(found) == 1, "helm template --include-crds renders the PerformanceGate CRD once"
    return found[0]


@pytest.mark.parametrize("path", GATES, ids=[p.stem for p in GATES])
def test_example_gate_validates_against_the_rendered_crd(render: Render, path: Path) -> None:
    _check(yaml.safe_load(path.read_text()), _served_schemas(_rendered_crd(render)), "the chart's CRD")


def test_an_upgrade_keeps_what_the_first_version_stored(render: Render) -> None:
    """The new CRD still serves every version the first one stored, and stores one of them."""
    old = yaml.safe_load(FIRST_SHIPPED.read_text())
    new = _rendered_crd(render)
    kubernetes_validate.validate(new, K8S_VERSION, strict=True)
    served = {v["name"] for v in new["spec"]["versions"] if v.get("served")}
    stored_before = {v["name"] for v in old["spec"]["versions"] if v.get("storage")}
    assert stored_before <= served
    assert sum(1 for v in new["spec"]["versions"] if v.get("storage")) == 1
    assert new["spec"]["names"]["plural"] == old["spec"]["names"]["plural"]
    assert new["spec"]["scope"] == old["spec"]["scope"]
    if len(served) > 1:
        assert new["spec"].get("conversion", {}).get("strategy") in ("None", "Webhook")
