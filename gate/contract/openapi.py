"""Objectives from an OpenAPI 3 document: each operation's `x-performance-contract` extension.

```yaml
paths:
  /orders/{id}:
    get:
      x-performance-contract:
        p95: 120ms            # shorthand: pNN -> latency objective, errorRatio -> error-ratio objective
        errorRatio: 0.1%
        objectives:           # or full objectives (any SLI); the route is filled in
          - {sli: http-latency, quantile: 0.99, max: 400ms, critical: true}
```

Each imported objective is restricted to its operation by a `route` (method + path template), which
the SLI queries turn into matchers on the contract's `traffic.routeLabel` / `methodLabel`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gate.contract.errors import Problem, short
from gate.contract.yamlsrc import Source, parse_yaml, read_file

EXTENSION = "x-performance-contract"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_QUANTILE_KEY = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
_FIELD_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_SHORTHAND = ("errorRatio", "objectives", "critical", "sources", "minEvidence")


@dataclass(frozen=True)
class Imported:
    """One objective imported from an operation, with where it came from."""

    origin: str
    """`GET /orders/{id} in api.yaml`, for messages."""
    raw: dict[str, Any]
    document: Source | None = None
    """The OpenAPI document, so problems can point into it."""
    fields: dict[str, list[Any]] = field(default_factory=dict)
    """Objective field -> its path in the document (`""`: the objective as a whole)."""

    def locate(self, objective_field: str) -> list[Any] | None:
        """The document path of an objective field (`max`, `sources[1]`, `minEvidence.requests`)."""
        parts: list[Any] = [
            int(index) if index else name for name, index in _FIELD_PART.findall(objective_field)
        ]
        if parts and isinstance(parts[0], str) and parts[0] in self.fields:
            return [*self.fields[parts[0]], *parts[1:]]
        return self.fields.get("")


def read_document(path: Path) -> Source:
    """Parse an OpenAPI document (YAML or JSON) with the same limits as contracts."""
    return parse_yaml(read_file(path, what="OpenAPI document"), str(path))


def objectives_from(source: Source) -> tuple[list[Imported], list[Problem]]:
    """The objectives of every operation's extension, and problems with the document."""
    data = source.data
    problems: list[Problem] = []
    out: list[Imported] = []
    if not isinstance(data, dict) or not str(data.get("openapi", "")).startswith("3"):
        problems.append(source.problem(["openapi"], "not an OpenAPI 3 document (`openapi: 3.x` missing)"))
        return out, problems
    paths = data.get("paths")
    if not isinstance(paths, dict):
        return out, problems
    for route, item in paths.items():
        if not isinstance(item, dict):
            continue
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict) or EXTENSION not in operation:
                continue
            where = ["paths", route, method, EXTENSION]
            origin = f"{method.upper()} {route} in {Path(source.filename).name}"
            ext = operation[EXTENSION]
            if not isinstance(ext, dict):
                problems.append(
                    source.problem(
                        where, "expected a mapping (p95: 120ms, errorRatio: 0.1%, objectives: [...])"
                    )
                )
                continue
            for objective, fields in _expand(ext, source, where, problems):
                objective["route"] = {"method": method.upper(), "path": str(route)}
                out.append(Imported(origin=origin, raw=objective, document=source, fields=fields))
    return out, problems


def _expand(
    ext: dict[str, Any], source: Source, where: list[Any], problems: list[Problem]
) -> list[tuple[dict[str, Any], dict[str, list[Any]]]]:
    """The objectives of one extension, each with the document path of its fields."""
    common: dict[str, Any] = {k: ext[k] for k in ("critical", "sources", "minEvidence") if k in ext}
    common_fields = {k: [*where, k] for k in common}
    out: list[tuple[dict[str, Any], dict[str, list[Any]]]] = []
    for key, value in ext.items():
        match = _QUANTILE_KEY.match(str(key))
        shorthand = {"": [*where, key], "max": [*where, key], **common_fields}
        if match:
            out.append(
                (
                    {
                        "sli": "http-latency",
                        "quantile": float(match.group(1)) / 100.0,
                        "max": value,
                        **common,
                    },
                    shorthand,
                )
            )
        elif key == "errorRatio":
            out.append(({"sli": "http-error-ratio", "max": value, **common}, shorthand))
        elif key == "objectives":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                problems.append(source.problem([*where, key], "expected a list of objectives"))
                continue
            for position, item in enumerate(value):
                if "route" in item:
                    problems.append(
                        source.problem(
                            [*where, key, position, "route"],
                            "an imported objective's route comes from the operation",
                        )
                    )
                    continue
                item_path = [*where, key, position]
                fields = {**common_fields, "": item_path, **{str(k): [*item_path, k] for k in item}}
                out.append(({**common, **item}, fields))
        elif key not in _SHORTHAND:
            problems.append(
                source.problem(
                    [*where, key],
                    f"unknown key {short(str(key))}; "
                    "use pNN (p95), errorRatio, objectives, critical, sources, minEvidence",
                )
            )
    return out
