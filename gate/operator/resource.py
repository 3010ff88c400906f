"""The ``PerformanceGate`` resource: the contract's spec inline, or a reference to one, plus its status.

A gate's ``spec`` is a contract's ``spec`` (the same fields, the same units), so a contract file and a
gate read alike; instead of the contract inline, ``spec.contractRef`` may name a ``PerformanceContract``
resource in the gate's namespace, or a key of a ``ConfigMap`` there holding a contract file (the YAML
``gate run`` reads: a whole ``PerformanceContract`` document, or just its ``spec``). ``contract_of``
turns a gate (and what it references) into a validated ``Contract``, with every problem named by its
field path in the gate (or in the referenced object).

Pure: no I/O here (the referenced object is handed in).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field, model_validator

from gate.contract import Contract, ContractError, SliLibrary
from gate.contract.base import Int, Model
from gate.contract.errors import Problem, short
from gate.contract.loader import contract_from_data
from gate.contract.models import Metadata, Spec, Target
from gate.contract.yamlsrc import parse_yaml

GROUP = "perfgate.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "PerformanceGate"
PLURAL = "performancegates"
SINGULAR = "performancegate"
SHORT_NAMES = ("pgate", "pgates")
CONTRACT_KIND = "PerformanceContract"
CONTRACT_PLURAL = "performancecontracts"
CONFIGMAP_KIND = "ConfigMap"
REF_KINDS = (CONTRACT_KIND, CONFIGMAP_KIND)

APPROVE_ANNOTATION = "perfgate.dev/approve"
"""Set (to any value, e.g. the reviewer's name) to resume a held run; gate removes it once acted on."""
ABORT_ANNOTATION = "perfgate.dev/abort"
"""Set (to a reason) to roll the run back; gate removes it once acted on."""
RESTART_ANNOTATION = "perfgate.dev/restart"
"""Set to start a new run on the current revision (e.g. after a rollback the canary was not changed)."""

MAX_OBJECT_BYTES = 512 * 1024  # a gate (or its referenced contract) larger than this is refused


class ContractRef(Model):
    """Where the contract is: a ``PerformanceContract`` resource, or a key of a ``ConfigMap``, in the
    gate's namespace. A change of it takes effect at the next revision (a run keeps its contract)."""

    kind: Literal["PerformanceContract", "ConfigMap"] = Field(
        default="PerformanceContract", description="The kind referenced: PerformanceContract or ConfigMap."
    )
    name: str = Field(min_length=1, max_length=253, description="Its name, in the gate's namespace.")
    key: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="ConfigMap only: the key of data holding the contract's YAML.",
    )

    @model_validator(mode="after")
    def _key_for_configmap(self) -> ContractRef:
        if (self.kind == "ConfigMap") != (self.key is not None):
            raise ValueError("a ConfigMap reference needs key (and only a ConfigMap reference has one)")
        return self


class GateSpec(Spec):
    """A contract's spec (``target``, ``router``, ``objectives``, ``steps`` …) or a ``contractRef``."""

    target: Target | None = Field(  # type: ignore[assignment]
        default=None, description="The stable and canary versions (omit with contractRef)."
    )
    contract_ref: ContractRef | None = Field(
        default=None, description="Use this PerformanceContract instead of a contract inline."
    )

    @model_validator(mode="after")
    def _one_source(self) -> GateSpec:
        if (self.target is None) == (self.contract_ref is None):
            raise ValueError("set either the contract inline (target, …) or contractRef, not both")
        return self


class Condition(Model):
    """A Kubernetes-style condition."""

    type: str = Field(description="Ready, Progressing, Promoted, RolledBack or Held.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word.")
    message: str = Field(default="", description="What happened, with the numbers.")
    last_transition_time: str = Field(default="", description="When status last changed (RFC 3339).")
    observed_generation: Int | None = Field(default=None, description="The generation it describes.")


class Decision(Model):
    """The last decision of the run and what it rests on."""

    action: str = Field(description="promote, hold or rollback.")
    reason: str = Field(default="", description="The judge's words, with the numbers.")
    basis: str = Field(default="", description="evidence, inconclusive or errors.")
    look: Int | None = Field(default=None, description="The look it came from.")
    step: Int | None = Field(default=None, description="The step it was taken in (0-based).")
    at: str = Field(default="", description="When (RFC 3339).")
    verdicts: list[dict[str, Any]] = Field(
        default_factory=list, description="The verdicts behind it (objective, source, status, reason)."
    )


class GateStatus(Model):
    """What the operator writes: the run's state as the run store has it."""

    phase: str = Field(
        default="", description="Waiting, Progressing, Held, Promoted, RolledBack, Failed, Invalid."
    )
    run_id: str = Field(default="", description="The run in the run store.")
    revision: str = Field(default="", description="The canary revision the run is for.")
    images: list[str] = Field(default_factory=list, description="The canary's images at that revision.")
    step: Int = Field(default=0, description="Steps done (1-based current step while progressing).")
    steps: Int = Field(default=0, description="Steps in the plan.")
    step_label: str = Field(default="", description="The current step in words.")
    weight: Int = Field(default=0, description="Canary weight gate has set (percent).")
    mirror: Int = Field(default=0, description="Mirrored percent of production requests.")
    last_decision: Decision | None = Field(default=None, description="The last decision and its basis.")
    message: str = Field(default="", description="The run's reason, or what is wrong with the spec.")
    conditions: list[Condition] = Field(default_factory=list, description="Ready, Progressing, Promoted …")
    observed_generation: Int | None = Field(default=None, description="The spec generation acted on.")
    updated_at: str = Field(default="", description="When the operator last wrote this status.")


class PerformanceGate(Model):
    """``apiVersion: perfgate.dev/v1alpha1``, ``kind: PerformanceGate``."""

    api_version: Literal["perfgate.dev/v1alpha1"] = Field(description="Always perfgate.dev/v1alpha1.")
    kind: Literal["PerformanceGate"] = Field(description="Always PerformanceGate.")
    metadata: Metadata = Field(description="Name, namespace, labels, annotations.")
    spec: GateSpec = Field(description="The contract (inline or referenced).")
    status: GateStatus | None = Field(default=None, description="Written by the operator.")


def contract_document(
    gate: dict[str, Any], referenced: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str]:
    """The ``PerformanceContract`` document a gate stands for, and the prefix its field paths need.

    Inline: the gate's spec (without ``contractRef``) under the gate's name and namespace.
    Referenced: the referenced contract's spec; its problems are said to be in that object."""
    meta = gate.get("metadata") or {}
    spec = dict(gate.get("spec") or {})
    ref = spec.get("contractRef")
    if ref is not None:
        if referenced is None:
            return {}, ""
        ref_meta = referenced.get("metadata") or {}
        if isinstance(ref, dict) and ref.get("kind") == CONFIGMAP_KIND:
            where = configmap_where(ref_meta, str(ref.get("key")))
            data = configmap_contract(referenced, str(ref.get("key")), where)
            body = data.get("spec") if isinstance(data.get("spec"), dict) else data
            return {
                "apiVersion": "perfgate.dev/v1alpha1",
                "kind": CONTRACT_KIND,
                "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
                "spec": body,
            }, f"{where}: "
        document = {
            "apiVersion": "perfgate.dev/v1alpha1",
            "kind": CONTRACT_KIND,
            "metadata": {"name": meta.get("name"), "namespace": meta.get("namespace")},
            "spec": referenced.get("spec"),
        }
        return document, f"{CONTRACT_KIND} {ref_meta.get('namespace')}/{ref_meta.get('name')}: "
    spec.pop("contractRef", None)
    document = {
        "apiVersion": "perfgate.dev/v1alpha1",
        "kind": CONTRACT_KIND,
        "metadata": {
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "labels": dict(meta.get("labels") or {}),
            "annotations": {
                k: v for k, v in (meta.get("annotations") or {}).items() if k.startswith("perfgate.dev/")
            },
        },
        "spec": spec,
    }
    return document, ""


def contract_of(
    gate: dict[str, Any],
    *,
    referenced: dict[str, Any] | None = None,
    library: SliLibrary | None = None,
) -> Contract:
    """The validated contract of a gate; ``ContractError`` with field paths as in the gate otherwise."""
    name = (
        f"{KIND} {(gate.get('metadata') or {}).get('namespace')}/{(gate.get('metadata') or {}).get('name')}"
    )
    spec = gate.get("spec")
    if not isinstance(spec, dict):
        raise ContractError([Problem(name, None, None, "spec", "a gate needs a spec (the contract)")])
    ref = spec.get("contractRef")
    has_inline = "target" in spec
    if ref is not None and has_inline:
        raise ContractError(
            [Problem(name, None, None, "spec", "set either the contract inline (target, …) or contractRef")]
        )
    if ref is not None:
        if not isinstance(ref, dict) or not isinstance(ref.get("name"), str):
            raise ContractError([Problem(name, None, None, "spec.contractRef.name", "name the contract")])
        kind = ref.get("kind", CONTRACT_KIND)
        if kind not in REF_KINDS:
            raise ContractError(
                [
                    Problem(
                        name,
                        None,
                        None,
                        "spec.contractRef.kind",
                        f"expected {' or '.join(REF_KINDS)}, got {short(kind)}",
                    )
                ]
            )
        key = ref.get("key")
        if kind == CONFIGMAP_KIND and not (isinstance(key, str) and key):
            raise ContractError(
                [
                    Problem(
                        name,
                        None,
                        None,
                        "spec.contractRef.key",
                        "name the ConfigMap's key holding the contract",
                    )
                ]
            )
        if referenced is None:
            raise ContractError(
                [Problem(name, None, None, "spec.contractRef.name", f"no {kind} {short(ref['name'])}")]
            )
        if kind == CONFIGMAP_KIND and str(key) not in (referenced.get("data") or {}):
            keys = ", ".join(sorted(referenced.get("data") or {})) or "none"
            raise ContractError(
                [
                    Problem(
                        name,
                        None,
                        None,
                        "spec.contractRef.key",
                        f"ConfigMap {short(ref['name'])} has no key {short(key)} (its keys: {keys})",
                    )
                ]
            )
    document, where = contract_document(gate, referenced)
    filename = where.rstrip(": ") if where else name
    return contract_from_data(document, filename=filename, library=library)


def configmap_where(ref_meta: dict[str, Any], key: str) -> str:
    """How a ConfigMap's contract is named in problems: ``ConfigMap ns/name data.key``."""
    return f"{CONFIGMAP_KIND} {ref_meta.get('namespace')}/{ref_meta.get('name')} data.{key}"


def configmap_contract(configmap: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    """The contract YAML under ``data[key]`` of a ConfigMap, parsed (``ContractError`` with the line
    and column for text that is not YAML, or not a mapping)."""
    text = (configmap.get("data") or {}).get(key)
    if not isinstance(text, str):
        raise ContractError([Problem(where, None, None, "", "no such key in the ConfigMap's data")])
    source = parse_yaml(text, where)
    data = json.loads(json.dumps(source.data, default=str))  # plain dicts and lists
    if not isinstance(data, dict):
        raise ContractError(
            [
                Problem(
                    where,
                    None,
                    None,
                    "",
                    f"expected a contract (a mapping with spec, or a spec), got {type(data).__name__}",
                )
            ]
        )
    return data


def problems_text(exc: ContractError, limit: int = 5) -> str:
    """The first few problems of a refused gate, one per line, each with its field path."""
    lines = [f"{p.path}: {p.message}" if p.path else p.message for p in exc.problems[:limit]]
    if len(exc.problems) > limit:
        lines.append(f"… and {len(exc.problems) - limit} more")
    return "\n".join(lines)
