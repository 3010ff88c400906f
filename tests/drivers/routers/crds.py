"""Validation of the objects gate writes against the real schemas.

HTTPRoute and VirtualService: the upstream CRDs (Apache-2.0), read from `../shared/schemas` beside
the repository when it is there, else from the copies in `tests/drivers/routers/schemas/` (see its
LICENSE note). The `v1` openAPIV3Schema is checked with jsonschema, made strict (a field the schema
does not declare is an error: the API server would silently prune it). Core kinds (Deployment,
Ingress) are checked with kubernetes-validate, strict.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[2].parent / "shared" / "schemas"
BUNDLED = HERE / "schemas"
FILES = {
    "HTTPRoute": "gateway-api-v1.6.1-httproutes.yaml",
    "VirtualService": "istio-v1.30.3-virtualservices.yaml",
}


def crd_path(kind: str) -> Path:
    for folder in (SHARED, BUNDLED):
        if (folder / FILES[kind]).exists():
            return folder / FILES[kind]
    pytest.skip(
        f"the {kind} CRD schema is missing: neither {SHARED} nor {BUNDLED} holds {FILES[kind]}; "
        "objects written by gate cannot be validated"
    )


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@functools.cache
def _validator(kind: str) -> jsonschema.protocols.Validator:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crd = yaml.load(crd_path(kind).read_text(), Loader=loader)  # a safe loader (C when available)
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1")
    schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
    # The API server adds the object envelope to every CRD schema; some CRDs leave it out.
    envelope = {"apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"}}
    schema["properties"] = {**envelope, **schema.get("properties", {})}
    schema = _strict(schema)
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    return cls(schema)


def validate_crd(obj: dict[str, Any]) -> None:
    """Raise AssertionError listing every schema violation of an HTTPRoute or VirtualService."""
    errors = sorted(_validator(obj["kind"]).iter_errors(obj), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:10])


def validate_core(obj: dict[str, Any]) -> None:
    """Validate a Deployment or Ingress with kubernetes-validate (strict: no unknown fields)."""
    try:
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)
    except kubernetes_validate.ValidationError as exc:
        raise AssertionError(f"{obj.get('kind')} invalid: {exc}") from exc
