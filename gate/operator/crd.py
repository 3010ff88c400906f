"""The ``PerformanceGate`` CustomResourceDefinition, generated from the pydantic models.

One source of truth: ``gate.operator.resource`` (the contract's spec plus ``contractRef``) is turned
into a *structural* OpenAPI v3 schema, the kind a real API server accepts:

- ``$ref``/``$defs`` inlined; ``title``, ``$schema``, ``examples``, ``default`` and JSON-Schema-only
  keywords dropped (the models apply their own defaults; the server must not write them);
- ``exclusiveMinimum: 0`` (draft 2020 numeric form) into ``minimum: 0, exclusiveMinimum: true``;
- ``X | None`` into ``nullable: true``;
- unions of objects (routers, notifications, chaos experiments) merged into one object with every
  variant's fields (the operator validates the variant itself); unions a structural schema cannot say
  (``220ms`` or ``0.22``, ``5%`` or ``{setWeight: 5}``) become ``x-kubernetes-preserve-unknown-fields``
  nodes and are checked by the operator, which refuses the gate with the field path;
- CEL ``x-kubernetes-validations`` where the models' rules fit (``RULES``).

``gate operator crd`` prints it; ``charts/gate/crds/performancegates.yaml`` is this output, and a test
fails when the two differ.
"""

from __future__ import annotations

import copy
import io
import json
import re
from typing import Any

from gate.operator import resource

JSON = dict[str, Any]

# Keywords a CRD's JSONSchemaProps has (apiextensions.k8s.io/v1); anything else is dropped.
_KEEP = {
    "type",
    "format",
    "description",
    "properties",
    "additionalProperties",
    "items",
    "required",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "minItems",
    "maxItems",
    "uniqueItems",
    "pattern",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "nullable",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-int-or-string",
    "x-kubernetes-validations",
    "x-kubernetes-list-type",
    "x-kubernetes-map-type",
}
# Formats the API server knows; others are dropped (it would ignore them, with a warning).
_FORMATS = {"int32", "int64", "float", "double", "byte", "date", "date-time", "duration", "uri", "email"}
# RE2 (the API server's regular expressions) has no look-around and no back-references.
_NOT_RE2 = re.compile(r"\(\?[=!<]|\\[1-9]")

# CEL rules where the models' rules fit, by the path of the node in the spec schema.
RULES: dict[tuple[str, ...], list[JSON]] = {
    (): [
        {
            "rule": "has(self.target) != has(self.contractRef)",
            "message": "set either the contract inline (target, …) or contractRef, not both",
        }
    ],
    ("contractRef",): [
        {
            "rule": "(has(self.kind) && self.kind == 'ConfigMap') == has(self.key)",
            "message": "a ConfigMap reference needs key (and only a ConfigMap reference has one)",
        }
    ],
    ("target", "stable"): [
        {
            "rule": "has(self.url) || has(self.deployment) || has(self.service)",
            "message": "say how to reach this track: url, deployment or service",
        }
    ],
    ("target", "canary"): [
        {
            "rule": "has(self.url) || has(self.deployment) || has(self.service)",
            "message": "say how to reach this track: url, deployment or service",
        }
    ],
}

PRINTER_COLUMNS: list[JSON] = [
    {"name": "Phase", "type": "string", "jsonPath": ".status.phase", "description": "Where the gate is."},
    {"name": "Step", "type": "string", "jsonPath": ".status.stepLabel", "description": "The current step."},
    {"name": "Weight", "type": "integer", "jsonPath": ".status.weight", "description": "Canary weight (%)."},
    {
        "name": "Decision",
        "type": "string",
        "jsonPath": ".status.lastDecision.action",
        "description": "The last decision.",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
    {
        "name": "Reason",
        "type": "string",
        "jsonPath": ".status.message",
        "priority": 1,
        "description": "Why (with the numbers).",
    },
]


def spec_schema() -> JSON:
    """The structural schema of a gate's ``spec``."""
    raw = resource.GateSpec.model_json_schema(by_alias=True, mode="validation")
    schema = structural(raw, raw.get("$defs", {}))
    _apply_rules(schema, RULES)
    return schema


def status_schema() -> JSON:
    """The structural schema of a gate's ``status``."""
    raw = resource.GateStatus.model_json_schema(by_alias=True, mode="validation")
    return structural(raw, raw.get("$defs", {}))


def crd() -> JSON:
    """The CustomResourceDefinition object."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{resource.PLURAL}.{resource.GROUP}",
            "annotations": {"perfgate.dev/generated-by": "gate operator crd"},
        },
        "spec": {
            "group": resource.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": resource.KIND,
                "listKind": f"{resource.KIND}List",
                "plural": resource.PLURAL,
                "singular": resource.SINGULAR,
                "shortNames": list(resource.SHORT_NAMES),
                "categories": ["perfgate"],
            },
            "versions": [
                {
                    "name": resource.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": PRINTER_COLUMNS,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": "A performance gate: every new revision of the canary goes out "
                            "under this contract.",
                            "properties": {
                                "apiVersion": {"type": "string"},
                                "kind": {"type": "string"},
                                "metadata": {"type": "object"},
                                "spec": spec_schema(),
                                "status": status_schema(),
                            },
                            "required": ["spec"],
                        }
                    },
                }
            ],
        },
    }


def crd_yaml() -> str:
    """The CRD as YAML text (block style, stable key order), as committed under ``charts/gate/crds/``."""
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.default_flow_style = False
    yaml.width = 4096
    out = io.StringIO()
    out.write("# Generated by `gate operator crd` from gate/operator/resource.py; do not edit.\n")
    yaml.dump(json.loads(json.dumps(crd())), out)
    return out.getvalue()


# ------------------------------------------------------------------------------- the conversion


def structural(node: Any, defs: JSON, _seen: tuple[str, ...] = ()) -> JSON:
    """A structural OpenAPI v3 schema equivalent to (or more permissive than) the JSON Schema ``node``."""
    if not isinstance(node, dict):
        return {"x-kubernetes-preserve-unknown-fields": True}
    node = dict(node)
    ref = node.pop("$ref", None)
    if isinstance(ref, str):
        name = ref.rsplit("/", 1)[-1]
        if name in _seen:  # a recursive type: the API server cannot express it; the operator checks it
            return _free(node.get("description"))
        target = dict(defs.get(name, {}))
        target.update({k: v for k, v in node.items() if k == "description"})
        return structural(target, defs, (*_seen, name))
    if "const" in node:
        node.setdefault("enum", [node.pop("const")])
    if "type" in node and isinstance(node["type"], list):
        types = [t for t in node["type"] if t != "null"]
        if len(types) < len(node["type"]):
            node["nullable"] = True
        node["type"] = types[0] if len(types) == 1 else None
        if node["type"] is None:
            return _free(node.get("description"), nullable=bool(node.get("nullable")))
    for key in ("anyOf", "oneOf"):
        if key in node:
            return _union(node, node.pop(key), defs, _seen)
    if "allOf" in node:
        parts = node.pop("allOf")
        if isinstance(parts, list) and len(parts) == 1:
            merged = structural(parts[0], defs, _seen)
            merged.update(_plain(node, defs, _seen))
            return merged
        return _free(node.get("description"))
    return _plain(node, defs, _seen)


def _plain(node: JSON, defs: JSON, seen: tuple[str, ...]) -> JSON:
    out: JSON = {}
    for key, value in node.items():
        if key not in _KEEP:
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs, seen) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs, seen)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = structural(value, defs, seen) if value else _free(None)
            # `additionalProperties: false` is the pruning a structural schema does anyway
        elif key == "format":
            if value in _FORMATS:
                out[key] = value
        elif key == "pattern":
            if isinstance(value, str) and not _NOT_RE2.search(value):
                out[key] = value
        else:
            out[key] = copy.deepcopy(value)
    for bound, edge in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
            out[edge] = out[bound]
            out[bound] = True
    if "type" not in out:
        if out.get("properties") or "additionalProperties" in out:
            out["type"] = "object"
        elif "items" in out:
            out["type"] = "array"
        elif "enum" in out and all(isinstance(v, str) for v in out["enum"]):
            out["type"] = "string"
        else:
            return _free(out.get("description"), nullable=bool(out.get("nullable")))
    if out.get("type") == "object" and "properties" in out and "additionalProperties" in out:
        out.pop("additionalProperties")  # a structural schema cannot have both
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    if out.get("type") == "array" and "items" not in out:
        out["items"] = _free(None)
    if "required" in out and "properties" in out:
        out["required"] = [r for r in out["required"] if r in out["properties"]]
        if not out["required"]:
            out.pop("required")
    return out


def _union(node: JSON, variants: list[Any], defs: JSON, seen: tuple[str, ...]) -> JSON:
    description = node.get("description")
    nullable = False
    parts: list[JSON] = []
    for variant in variants:
        if isinstance(variant, dict) and variant.get("type") == "null":
            nullable = True
            continue
        parts.append(structural(variant, defs, seen))
    # Keywords beside the union (bounds, lengths) apply to the one remaining variant.
    extra = {k: v for k, v in node.items() if k in _KEEP and k not in ("description", "type")}
    if len(parts) == 1:
        out = parts[0]
        out.update(copy.deepcopy(extra))
    elif parts and all(p.get("type") == "object" and "properties" in p for p in parts):
        out = _merge_objects(parts)
    elif {p.get("type") for p in parts} == {"integer", "string"} and len(parts) == 2:
        out = {"x-kubernetes-int-or-string": True}
    elif parts and len({json.dumps(p, sort_keys=True) for p in parts}) == 1:
        out = parts[0]
    else:
        return _free(description, nullable=nullable)
    if (description and "description" not in out) or description:
        out["description"] = description
    if nullable:
        out["nullable"] = True
    return out


def _merge_objects(parts: list[JSON]) -> JSON:
    """One object with the fields of every variant; a field two variants type differently is free."""
    props: JSON = {}
    required: set[str] | None = None
    for part in parts:
        for name, sub in part["properties"].items():
            if name not in props:
                props[name] = sub
            elif json.dumps(props[name], sort_keys=True) != json.dumps(sub, sort_keys=True):
                props[name] = _merge_field(props[name], sub)
        names = set(part.get("required", []))
        required = names if required is None else required & names
    out: JSON = {"type": "object", "properties": props}
    if required:
        out["required"] = sorted(required)
    return out


def _merge_field(a: JSON, b: JSON) -> JSON:
    if a.get("type") == b.get("type") == "string" and "enum" in a and "enum" in b:
        merged = dict(a)
        merged["enum"] = list(dict.fromkeys([*a["enum"], *b["enum"]]))
        return merged
    if a.get("type") == b.get("type") == "object" and "properties" in a and "properties" in b:
        return _merge_objects([a, b])
    return _free(a.get("description") or b.get("description"))


def _free(description: Any, *, nullable: bool = False) -> JSON:
    out: JSON = {"x-kubernetes-preserve-unknown-fields": True}
    if isinstance(description, str) and description:
        out["description"] = description
    if nullable:
        out["nullable"] = True
    return out


def _apply_rules(schema: JSON, rules: dict[tuple[str, ...], list[JSON]]) -> None:
    for path, found in rules.items():
        node = schema
        for part in path:
            node = node["properties"][part]
        node["x-kubernetes-validations"] = copy.deepcopy(found)


# ------------------------------------------------------------------------------------ checks


def structural_problems(schema: Any, path: str = "") -> list[str]:
    """What a structural schema forbids, found in ``schema`` (empty when it is structural).

    The API server's rules: every node has a type (unless int-or-string or preserve-unknown-fields);
    no type, description, default, additionalProperties or nullable inside anyOf/allOf/oneOf/not;
    properties and additionalProperties not both; no keyword a CRD schema does not have."""
    problems: list[str] = []
    if not isinstance(schema, dict):
        return [f"{path or '.'}: not a schema"]
    for key in schema:
        if key not in _KEEP and key not in ("anyOf", "allOf", "oneOf", "not"):
            problems.append(f"{path or '.'}: keyword {key!r} is not allowed in a CRD schema")
    free = schema.get("x-kubernetes-preserve-unknown-fields") or schema.get("x-kubernetes-int-or-string")
    if "type" not in schema and not free:
        problems.append(f"{path or '.'}: no type")
    if "properties" in schema and "additionalProperties" in schema:
        problems.append(f"{path or '.'}: both properties and additionalProperties")
    if schema.get("additionalProperties") is False:
        problems.append(f"{path or '.'}: additionalProperties: false")
    if schema.get("type") == "array" and "items" not in schema:
        problems.append(f"{path or '.'}: an array without items")
    if isinstance(schema.get("exclusiveMinimum"), int | float) and not isinstance(
        schema.get("exclusiveMinimum"), bool
    ):
        problems.append(f"{path or '.'}: numeric exclusiveMinimum")
    for key in ("anyOf", "allOf", "oneOf"):
        for i, sub in enumerate(schema.get(key, [])):
            for banned in ("type", "description", "default", "additionalProperties", "nullable"):
                if banned in sub:
                    problems.append(f"{path}.{key}[{i}]: {banned} inside {key}")
    for name, sub in (schema.get("properties") or {}).items():
        problems.extend(structural_problems(sub, f"{path}.{name}"))
    if isinstance(schema.get("additionalProperties"), dict):
        problems.extend(structural_problems(schema["additionalProperties"], f"{path}.*"))
    if isinstance(schema.get("items"), dict):
        problems.extend(structural_problems(schema["items"], f"{path}[]"))
    return problems


def jsonschema_of(schema: Any) -> Any:
    """The CRD schema as plain JSON Schema (``nullable`` as a null type), to validate objects offline."""
    if isinstance(schema, list):
        return [jsonschema_of(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out: JSON = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-"):
            continue
        if key == "properties":
            out[key] = {name: jsonschema_of(sub) for name, sub in value.items()}
        else:
            out[key] = jsonschema_of(value)
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    out.pop("nullable", None)
    if schema.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if out.get("exclusiveMinimum") is True:
        out["exclusiveMinimum"] = out.pop("minimum")
    if out.get("exclusiveMaximum") is True:
        out["exclusiveMaximum"] = out.pop("maximum")
    if (
        out.get("type") == "object"
        and "properties" in out
        and "additionalProperties" not in schema
        and not schema.get("x-kubernetes-preserve-unknown-fields")
    ):
        out["additionalProperties"] = False  # what the server's pruning would drop, refused here
    return out
