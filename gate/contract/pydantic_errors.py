"""Turning pydantic's validation errors into `Problem`s a user can act on.

pydantic reports a `loc` that mixes field names with union tags and validator names; here it is walked
against the document's own data so the path shows only what the user wrote, and the message is
rephrased in plain words (with a suggestion for a misspelt key).
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from gate.contract.errors import PathPart, Problem, format_path, short
from gate.contract.yamlsrc import Source

_VOCABULARY: set[str] = set()


def register_vocabulary(*models: type[BaseModel]) -> None:
    """Remember every field alias of these models (and nested ones) for did-you-mean suggestions."""
    stack = list(models)
    seen: set[type[BaseModel]] = set()
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        for name, info in model.model_fields.items():
            _VOCABULARY.add(info.alias or name)
            for arg in _walk_types(info.annotation):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    stack.append(arg)


def _walk_types(annotation: Any) -> list[Any]:
    out = [annotation]
    for arg in getattr(annotation, "__args__", ()) or ():
        out.extend(_walk_types(arg))
    for meta in getattr(annotation, "__metadata__", ()) or ():
        del meta
    origin = getattr(annotation, "__origin__", None)
    if origin is not None:
        out.append(origin)
    return out


def data_path(data: Any, loc: Sequence[PathPart]) -> list[PathPart]:
    """The part of a pydantic `loc` that names real keys/items of `data` (union tags dropped).

    A trailing name absent from the data is kept (a missing field, or one derived from shorthand like
    `get: /x` -> `path`), unless it repeats the key just walked: that is a union tag named like its
    field (`chaos.x.fault`, tag `fault`, field `fault`).
    """
    path: list[PathPart] = []
    node = data
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        child = _child(node, part)
        if child is not _ABSENT:
            path.append(part)
            node = child
        elif (
            isinstance(node, dict)
            and last
            and isinstance(part, str)
            and not _is_tag(part)
            and not (path and path[-1] == part)
        ):
            # A missing field: name it, though it has no place in the file yet.
            path.append(part)
        else:
            continue
    return path


_ABSENT = object()


def _child(node: Any, part: PathPart) -> Any:
    if isinstance(node, dict) and part in node:
        return node[part]
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return _ABSENT


def _is_tag(part: str) -> bool:
    return "[" in part or part.startswith(("function-", "tagged-union", "union[", "lax-", "json-or-python"))


def message_for(error: ErrorDetails, path: list[PathPart], data: Any) -> str:
    """pydantic's message rephrased for a contract author."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    field = str(path[-1]) if path else "value"
    if kind == "missing":
        if field == "path" and "tasks" in path:
            return "a task says its request: `get: /orders` (or post, put, delete, ...), or method: and path:"
        return f"`{field}` is required here; add it"
    if kind == "extra_forbidden":
        hint = difflib.get_close_matches(field, sorted(_VOCABULARY), n=1, cutoff=0.75)
        if hint and hint[0] == field:  # a real field of the contract, in the wrong place
            parent = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[:-1]).lstrip(".")
            name = short(field)[1:-1] if len(field) > 38 else field
            return (
                f"`{name}` is not a field of {parent or 'the document'}"
                " (it is one elsewhere in a contract); move it where it belongs or remove it"
            )
        suggestion = f"; did you mean `{hint[0]}`?" if hint else "; remove it or check the spelling"
        return f"unknown field `{short(field)[1:-1] if len(field) > 38 else field}`{suggestion}"
    if kind == "union_tag_invalid":
        expected = str(ctx.get("expected_tags", "")).replace("'", "")
        discriminator = str(ctx.get("discriminator", "kind")).strip("'")
        return f"unknown {discriminator} {short(ctx.get('tag'))}; use one of: {expected}"
    if kind == "union_tag_not_found":
        discriminator = str(ctx.get("discriminator", "type")).strip("'")
        return f"`{discriminator}` is required here (it says which kind this is)"
    if kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        return f"must be {expected}" if " or " not in expected else f"must be one of {expected}"
    if kind in ("value_error", "assertion_error"):
        text = str(ctx.get("error") or error["msg"])
        return text.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return "expected a mapping (key: value)"
    if kind == "list_type":
        return "expected a list"
    if kind == "string_type":
        return "expected text"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return "expected a whole number"
    if kind in ("float_type", "float_parsing"):
        return "expected a number"
    if kind in ("bool_type", "bool_parsing"):
        return "expected true or false"
    if kind == "finite_number":
        return "expected a finite number"
    if kind == "string_too_long":
        return f"text is too long (at most {ctx.get('max_length')} characters)"
    if kind == "string_pattern_mismatch":
        return "text has the wrong form"
    if kind.startswith(("greater_than", "less_than")):
        return _bound_message(kind, ctx, _value_at(data, path))
    return error["msg"]


_BOUND_WORDS = {
    "greater_than": ("gt", "more than"),
    "greater_than_equal": ("ge", "at least"),
    "less_than": ("lt", "less than"),
    "less_than_equal": ("le", "at most"),
}


def _bound_message(kind: str, ctx: dict[str, Any], written: Any) -> str:
    """`must be at most 100%` — in percent when the user wrote a percentage, else as a number."""
    key, words = _BOUND_WORDS.get(kind, ("", ""))
    limit = ctx.get(key)
    if not words or not isinstance(limit, int | float):
        return f"must be {kind.replace('_', ' ')} {limit}"
    if isinstance(written, str) and written.strip().endswith("%"):
        return f"must be {words} {limit * 100:g}%, got {short(written)}"
    return f"must be {words} {limit:g}"


def _value_at(data: Any, path: Sequence[PathPart]) -> Any:
    node = data
    for part in path:
        node = _child(node, part)
        if node is _ABSENT:
            return None
    return node


def problems_from_validation(
    source: Source, exc: ValidationError, prefix: Sequence[PathPart] = (), data: Any = None
) -> list[Problem]:
    """One `Problem` per pydantic error, positioned in the file and free of internal tags."""
    root = source.data if data is None else data
    base: Any = root
    for part in prefix:
        if isinstance(base, dict):
            base = base.get(part)
        elif isinstance(base, list) and isinstance(part, int) and 0 <= part < len(base):
            base = base[part]
        else:
            base = None
    problems: list[Problem] = []
    seen: set[tuple[str, str]] = set()
    for error in exc.errors(include_url=False, include_input=False):
        path = list(prefix) + data_path(base, list(error["loc"]))
        message = message_for(error, path, root)
        key = (format_path(path), message)
        if key in seen:
            continue
        seen.add(key)
        line, column = source.locate(path)
        problems.append(Problem(source.filename, line, column, format_path(path), message))
    return problems
