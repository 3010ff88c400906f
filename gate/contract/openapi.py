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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gate.contract.errors import ContractError, Problem, short
from gate.contract.yamlsrc import Source, parse_yaml, read_bytes

EXTENSION = "x-performance-contract"
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_QUANTILE_KEY = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
_SHORTHAND = ("errorRatio", "objectives", "critical", "sources", "minEvidence")


@dataclass(frozen=True)
class Imported:
    """One objective imported from an operation, with where it came from."""

    origin: str
    """`GET /orders/{id} in api.yaml`, for messages."""
    raw: dict[str, Any]


def read_document(path: Path) -> Source:
    """Parse an OpenAPI document (YAML or JSON) with the same limits as contracts."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ContractError(
            [Problem(str(path), None, None, "", f"cannot read OpenAPI document: {exc.strerror or exc}")]
        ) from None
    return parse_yaml(read_bytes(raw, str(path)), str(path))


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
            for objective in _expand(ext, source, where, problems):
                objective["route"] = {"method": method.upper(), "path": str(route)}
                out.append(Imported(origin=origin, raw=objective))
    return out, problems


def _expand(
    ext: dict[str, Any], source: Source, where: list[Any], problems: list[Problem]
) -> list[dict[str, Any]]:
    common: dict[str, Any] = {k: ext[k] for k in ("critical", "sources", "minEvidence") if k in ext}
    out: list[dict[str, Any]] = []
    for key, value in ext.items():
        match = _QUANTILE_KEY.match(str(key))
        if match:
            out.append(
                {"sli": "http-latency", "quantile": float(match.group(1)) / 100.0, "max": value, **common}
            )
        elif key == "errorRatio":
            out.append({"sli": "http-error-ratio", "max": value, **common})
        elif key == "objectives":
            if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
                problems.append(source.problem([*where, key], "expected a list of objectives"))
                continue
            for item in value:
                if "route" in item:
                    problems.append(
                        source.problem(
                            [*where, key], "an imported objective's route comes from the operation"
                        )
                    )
                    continue
                out.append({**common, **item})
        elif key not in _SHORTHAND:
            problems.append(
                source.problem(
                    [*where, key],
                    f"unknown key {short(str(key))}; "
                    "use pNN (p95), errorRatio, objectives, critical, sources",
                )
            )
    return out
