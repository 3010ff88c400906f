"""Finding a caller's contract in the contracts folder by namespace and name, never by a path it gives."""

from __future__ import annotations

import re
from pathlib import Path

from gate.contract import Contract, ContractError, SliLibrary, load_contract

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


class ContractNotFound(LookupError):
    """No contract of that name (404)."""


class ContractInvalid(ValueError):
    """The named contract does not validate (the first problems, shortened)."""


def check_name(what: str, value: str) -> str:
    """`value` must be a Kubernetes name (DNS-1123 label): it becomes part of a file name."""
    if not _NAME.match(value):
        raise ValueError(f"{what}: {value[:80]!r} is not a Kubernetes name (lowercase letters, digits, '-')")
    return value


def find(folder: Path, namespace: str, name: str) -> Path:
    """`<folder>/<namespace>/<name>.yaml`, else `<folder>/<name>.yaml` (a ConfigMap mounted as files)."""
    check_name("namespace", namespace)
    check_name("contract", name)
    for candidate in (folder / namespace / f"{name}.yaml", folder / f"{name}.yaml"):
        if candidate.is_file():
            return candidate
    raise ContractNotFound(
        f"no contract {name!r} for namespace {namespace!r}: add {namespace}/{name}.yaml or {name}.yaml "
        "to gate's contracts folder"
    )


def load(path: Path) -> tuple[Contract, SliLibrary]:
    """The contract and its SLI library, as `gate check` loads them."""
    try:
        contract = load_contract(path, library=SliLibrary.default())
        return contract, SliLibrary.default(extra=contract.spec.slis)
    except ContractError as exc:
        first = "; ".join(str(p) for p in exc.problems[:3])
        more = f" (and {len(exc.problems) - 3} more)" if len(exc.problems) > 3 else ""
        raise ContractInvalid(f"{path.name} is not a valid contract: {first[:1500]}{more}") from None
