"""Reading untrusted JSON strictly: duplicate keys, huge integers and deep nesting refused at their spot.

Python's `json` silently keeps the last of two equal keys (a file whose first `canary` entry is slower
would be judged by the second), turns a 5,000-digit integer into a `ValueError` without a position, and
recurses until `RecursionError`. Here each is a `ContractError` with file:line:column.

The fast C parser reads the document; only when it finds a problem does a second pass, with the pure
Python scanner and position-aware hooks, find where it is (the file is bounded, so that pass is too).
"""

from __future__ import annotations

import json
import json.decoder
import json.scanner
import re
from collections.abc import Callable
from typing import Any

from gate.contract.errors import ContractError, Problem, short

MAX_INT_DIGITS = 400
"""Longest integer accepted (beyond float range already; Python itself refuses 4,300 digits)."""
MAX_DEPTH = 64
"""Deepest nesting of objects and arrays accepted."""

# The pure-Python parts of `json` (not in its typed surface, stable since Python 2.7).
_py_decoder: Any = json.decoder
_py_scanner: Any = json.scanner
_TOKENS = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', re.DOTALL)
_WS = _py_decoder.WHITESPACE.match


class _Found(Exception):
    """A problem found by a hook; `where` is the index into the text, when known."""

    def __init__(self, message: str, where: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.where = where


def _position(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    column = index - (text.rfind("\n", 0, index) + 1) + 1
    return line, column


def _problem(filename: str, text: str, index: int | None, message: str) -> ContractError:
    line, column = _position(text, index) if index is not None else (None, None)
    return ContractError([Problem(filename, line, column, "", message)])


def _too_deep(text: str) -> int | None:
    """Index of the first bracket nested deeper than MAX_DEPTH (strings skipped), or None."""
    depth = 0
    for match in _TOKENS.finditer(text):
        bracket = match.group()
        if bracket in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif bracket in "]}":
            depth -= 1
    return None


def _check_int(digits: str) -> int:
    if len(digits.lstrip("-")) > MAX_INT_DIGITS:
        raise _Found(
            f"an integer of {len(digits.lstrip('-'))} digits; numbers here have at most {MAX_INT_DIGITS}"
        )
    return int(digits)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Found(f"the key {short(key)} appears twice in the same object; keep one")
        out[key] = value
    return out


def parse_json(text: str, filename: str) -> Any:
    """Parse untrusted JSON text; every refusal is a `ContractError` with line and column."""
    nul = text.find("\x00")
    if nul >= 0:
        raise _problem(filename, text, nul, "a NUL byte; the file is binary or corrupt, not JSON text")
    deep = _too_deep(text)
    if deep is not None:
        raise _problem(filename, text, deep, f"JSON nested deeper than {MAX_DEPTH} levels; flatten it")
    try:
        return json.loads(text, object_pairs_hook=_unique, parse_int=_check_int)
    except json.JSONDecodeError as exc:
        raise ContractError(
            [Problem(filename, exc.lineno, exc.colno, "", f"JSON syntax: {exc.msg}")]
        ) from None
    except _Found:
        where = _locate(text)
        raise _problem(filename, text, where.where, where.message) from None
    except (ValueError, RecursionError) as exc:  # anything else the parser refuses
        raise _problem(filename, text, None, f"not valid JSON: {short(str(exc), 120)}") from None


def _locate(text: str) -> _Found:
    """Second pass: the first problem, with its index."""
    decoder: Any = json.JSONDecoder(object_pairs_hook=_unique, parse_int=_check_int)
    original_object = _py_decoder.JSONObject
    original_array = _py_decoder.JSONArray

    def positioned(scan_once: Callable[[str, int], tuple[Any, int]]) -> Callable[[str, int], tuple[Any, int]]:
        def scan(s: str, idx: int) -> tuple[Any, int]:
            try:
                return scan_once(s, idx)
            except _Found as found:
                if found.where is None:
                    found.where = idx
                raise

        return scan

    def parse_object(  # noqa: PLR0917 - the signature json's scanner calls
        s_and_end: tuple[str, int],
        strict: bool,
        scan_once: Any,
        object_hook: Any,
        object_pairs_hook: Any,
        memo: Any = None,
    ) -> Any:
        s, start = s_and_end
        try:
            return original_object(
                s_and_end, strict, positioned(scan_once), object_hook, object_pairs_hook, memo
            )
        except _Found as found:
            if found.where is None:  # the duplicate key of this very object
                found.where = _duplicate_key_index(s, start, strict, scan_once)
            raise

    def parse_array(s_and_end: tuple[str, int], scan_once: Any) -> Any:
        return original_array(s_and_end, positioned(scan_once))

    decoder.parse_object = parse_object
    decoder.parse_array = parse_array
    decoder.scan_once = _py_scanner.py_make_scanner(decoder)
    try:
        decoder.decode(text)
    except _Found as found:
        if found.where is None:  # the document itself is the offending value
            found.where = _WS(text, 0).end()
        return found
    return _Found("not valid JSON")  # pragma: no cover - the first pass found a problem


def _duplicate_key_index(s: str, start: int, strict: bool, scan_once: Any) -> int | None:
    """Index of the second occurrence of a repeated key in the object whose `{` ends at `start`."""
    seen: set[str] = set()
    idx = _WS(s, start).end()
    while idx < len(s) and s[idx] == '"':
        key_at = idx
        key, idx = _py_decoder.scanstring(s, idx + 1, strict)
        idx = int(idx)
        if key in seen:
            return int(key_at)
        seen.add(key)
        idx = _WS(s, _WS(s, idx).end() + 1).end()  # past the colon
        _value, idx = scan_once(s, idx)
        idx = _WS(s, idx).end()
        if idx >= len(s) or s[idx] != ",":
            break
        idx = _WS(s, idx + 1).end()
    return None
