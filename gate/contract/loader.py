"""Loading a contract: YAML -> models -> contradiction checks, with every problem of a file at once.

Input is untrusted: size, nesting and node count are bounded, aliases and custom tags refused,
values never echoed whole. Every problem names file:line:column and the dotted field path.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gate.contract import checks, openapi
from gate.contract.errors import ContractError, Problem, format_path, short
from gate.contract.models import Contract
from gate.contract.pydantic_errors import problems_from_validation
from gate.contract.sli import SliLibrary
from gate.contract.yamlsrc import Source, parse_yaml, read_file


def load_contract(path: Path, library: SliLibrary | None = None) -> Contract:
    """Read and validate a contract file; `ContractError` lists every problem."""
    text = read_file(path)
    return validate_source(parse_yaml(text, str(path)), library=library, base_dir=path.resolve().parent)


def parse_contract(
    text: str, filename: str = "<inline>", library: SliLibrary | None = None, base_dir: Path | None = None
) -> Contract:
    """Validate a contract given as YAML text."""
    return validate_source(parse_yaml(text, filename), library=library, base_dir=base_dir)


def contract_from_data(
    data: Any, filename: str = "<object>", library: SliLibrary | None = None, base_dir: Path | None = None
) -> Contract:
    """Validate a contract already parsed (e.g. a custom resource from the Kubernetes API); no positions."""
    return validate_source(
        Source(filename=filename, data=data, tree=None), library=library, base_dir=base_dir
    )


def validate_source(
    source: Source, library: SliLibrary | None = None, base_dir: Path | None = None
) -> Contract:
    """Schema, OpenAPI import and contradiction checks over one parsed document."""
    data = source.data
    if not isinstance(data, dict):
        problem = source.problem([], "a contract is a mapping with apiVersion, kind, metadata and spec")
        if source.tree is not None and problem.line is None:
            # A scalar document has no position of its own; it starts the file.
            problem = Problem(problem.file, 1, 1, problem.path, problem.message)
        raise ContractError([problem])
    problems: list[Problem] = []
    merged, imported, import_problems = _merge_openapi(source, base_dir)
    problems.extend(import_problems)
    merged_source = Source(filename=source.filename, data=merged, tree=source.tree)
    contract: Contract | None = None
    try:
        contract = Contract.model_validate(merged)
    except ValidationError as exc:
        problems.extend(problems_from_validation(merged_source, exc))
    if library is None:
        library = SliLibrary.default()
    problems.extend(checks.check(merged_source, library, base_dir))
    # Imported objectives sharing an extension's `sources` or `minEvidence` share its mistakes: say each once.
    problems = list(dict.fromkeys(_reattribute(problems, source, imported)))
    if problems or contract is None:
        raise ContractError(problems or [source.problem([], "invalid contract")])
    _finish(contract, base_dir)
    return contract


def _merge_openapi(
    source: Source, base_dir: Path | None
) -> tuple[dict[str, Any], list[tuple[int, int, openapi.Imported]], list[Problem]]:
    """The document with imported objectives appended; (index, from-index, import) of each."""
    data: dict[str, Any] = source.data
    spec = data.get("spec")
    if not isinstance(spec, dict) or not isinstance(spec.get("objectivesFrom"), list):
        return data, [], []
    merged = copy.deepcopy(data)
    objectives = merged["spec"].setdefault("objectives", [])
    if not isinstance(objectives, list):
        return data, [], []
    imported: list[tuple[int, int, openapi.Imported]] = []
    problems: list[Problem] = []
    for from_index, entry in enumerate(spec["objectivesFrom"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("openapi"), str):
            continue  # the schema reports it
        where: list[str | int] = ["spec", "objectivesFrom", from_index, "openapi"]
        path = Path(entry["openapi"])
        if not path.is_absolute():
            if base_dir is None:
                problems.append(
                    source.problem(
                        where, "a relative OpenAPI path needs the contract's folder; load it from a file"
                    )
                )
                continue
            path = base_dir / path
        if not path.is_file():
            # Point at the reference in the contract: that is the line to fix.
            problems.append(
                source.problem(
                    where,
                    f"OpenAPI document {short(entry['openapi'])} not found "
                    "(paths are relative to the contract)",
                )
            )
            continue
        try:
            document = openapi.read_document(path)
        except ContractError as exc:
            problems.extend(exc.problems)
            continue
        found, doc_problems = openapi.objectives_from(document)
        problems.extend(doc_problems)
        if not found and not doc_problems:
            problems.append(
                source.problem(where, f"{path.name} has no operation with x-performance-contract")
            )
        for item in found:
            imported.append((len(objectives), from_index, item))
            objectives.append(item.raw)
    return merged, imported, problems


def _reattribute(
    problems: list[Problem], source: Source, imported: list[tuple[int, int, openapi.Imported]]
) -> list[Problem]:
    """Problems of imported objectives point into the OpenAPI document (the line to fix) and name the
    operation; where the document gives no spot, at the contract's `objectivesFrom` entry."""
    if not imported:
        return problems
    out = []
    for original in problems:
        problem = original
        for index, from_index, item in imported:
            prefix = format_path(["spec", "objectives", index])
            if problem.path == prefix or problem.path.startswith((prefix + ".", prefix + "[")):
                field = original.path[len(prefix) :].lstrip(".")
                message = (
                    f"objective of {item.origin}"
                    + (f", field {field}" if field else "")
                    + f": {original.message}"
                )
                doc_path = item.locate(field)
                if item.document is not None and doc_path is not None:
                    problem = item.document.problem(doc_path, message)
                else:
                    where = source.problem(["spec", "objectivesFrom", from_index], "")
                    problem = Problem(original.file, where.line, where.column, where.path, message)
                break
        out.append(problem)
    return out


def _finish(contract: Contract, base_dir: Path | None) -> None:
    """Defaults that depend on the whole contract: each objective's sources, the contract's folder."""
    produced = checks.produced_sources(contract.spec.steps, contract.spec.load is not None)
    for objective in contract.spec.objectives:
        if "sources" not in objective.model_fields_set and produced:
            objective.sources = list(produced)
    # Imported objectives now live in `objectives`; keeping the references would import them twice
    # when the loaded contract is dumped and loaded again (run store, operator).
    contract.spec.objectives_from = []
    contract._base_dir = base_dir
