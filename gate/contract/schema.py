"""JSON Schemas that `gate schema KIND` prints, in a small registry other modules may extend.

`register_schema("evidence", evidence_schema)` from another module adds a kind; the contract's
schema is registered here. Schemas describe the *input* (YAML) forms: camelCase keys, human units.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from gate.contract.models import Contract
from gate.contract.sli import NAME_RE, SliTemplate

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_REGISTRY: dict[str, Callable[[], dict[str, Any]]] = {}


def register_schema(kind: str, factory: Callable[[], dict[str, Any]]) -> None:
    """Make `gate schema KIND` print `factory()`; registering a kind twice replaces it."""
    _REGISTRY[kind] = factory


def schema_kinds() -> list[str]:
    """Registered kinds, sorted."""
    return sorted(_REGISTRY)


def schema_for(kind: str) -> dict[str, Any]:
    """The JSON Schema of a registered kind; `KeyError` naming the known kinds otherwise."""
    try:
        factory = _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"no schema {kind!r}; known: {', '.join(schema_kinds())}") from None
    return factory()


def contract_schema() -> dict[str, Any]:
    """JSON Schema (2020-12) of a PerformanceContract document, for editors and `kubectl` tooling."""
    schema = Contract.model_json_schema(by_alias=True, mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://perfgate.dev/schemas/v1alpha1/performancecontract.json",
        **schema,
        "title": "PerformanceContract",
    }


def sli_library_schema() -> dict[str, Any]:
    """JSON Schema of an `analyses/*.yaml` file: template names mapped to SLI templates."""
    adapter: TypeAdapter[dict[str, SliTemplate]] = TypeAdapter(dict[str, SliTemplate])
    schema = adapter.json_schema(by_alias=True, mode="validation")
    return {
        "$schema": SCHEMA_DIALECT,
        "$id": "https://perfgate.dev/schemas/v1alpha1/sli-library.json",
        **schema,
        "propertyNames": {"pattern": NAME_RE.pattern},
        "title": "SLI template library",
    }


register_schema("contract", contract_schema)
register_schema("sli-library", sli_library_schema)
