"""Reading untrusted YAML: bounded, alias-free, and keeping the line and column of every node.

The round-trip loader of ruamel.yaml remembers where each key and item came from; `locate` maps a
field path back to that spot. Plain Python data (dicts, lists, scalars) is what the models validate.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.events import AliasEvent, ScalarEvent
from ruamel.yaml.reader import ReaderError

from gate import boundedio
from gate.contract.errors import ContractError, PathPart, Problem, short

MAX_BYTES = 1024 * 1024
"""Contracts and SLI library files larger than this are refused (1 MiB)."""
MAX_DEPTH = 40
"""Deepest nesting of mappings and lists accepted."""
MAX_NODES = 10_000
"""Most YAML nodes accepted in one file."""
MAX_DIGITS = 400
"""Longest run of digits accepted in a plain scalar (Python refuses to read 4,300 as an integer)."""
_LONG_NUMBER = re.compile(rf"^[-+]?(?:0[xob])?[0-9a-fA-F_]{{{MAX_DIGITS + 1},}}")

_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("str", "int", "float", "bool", "null", "map", "seq")
) | {"!", "?"}


@dataclass(frozen=True)
class Source:
    """A parsed YAML document: plain data for validation and the round-trip tree for positions."""

    filename: str
    data: Any
    tree: Any

    def locate(self, path: Sequence[PathPart]) -> tuple[int | None, int | None]:
        """Line and column (1-based) of the deepest node on `path` that exists in the file."""
        return locate(self.tree, path)

    def problem(self, path: Sequence[PathPart], message: str) -> Problem:
        """A `Problem` at `path` (dotted), positioned on the deepest existing node."""
        from gate.contract.errors import format_path

        line, column = self.locate(path)
        return Problem(self.filename, line, column, format_path(path), message)


def read_file(path: str | os.PathLike[str], what: str = "contract") -> str:
    """A contract-like file's text, read bounded: a FIFO, a device, a socket or a file over 1 MiB is
    refused (after `stat`, before any read) with a `ContractError`, and so is text that is not UTF-8."""
    try:
        raw = boundedio.read_limited(path, MAX_BYTES, what=what)
    except boundedio.FileRefused as exc:
        advice = (
            " — split it or move bulky parts (chaos experiments, locustfiles) into their own files"
            if "limited to" in exc.reason
            else ""
        )
        raise ContractError([Problem(str(path), None, None, "", exc.reason + advice)]) from None
    return read_bytes(raw, str(path))


def read_bytes(raw: bytes, filename: str) -> str:
    """Decode a file's bytes, refusing oversized or non-UTF-8 input with a clear problem."""
    if len(raw) > MAX_BYTES:
        raise ContractError(
            [
                Problem(
                    filename,
                    None,
                    None,
                    "",
                    f"file is {len(raw) / 1024 / 1024:.1f} MiB; contracts are limited to 1 MiB — "
                    "split it or move bulky parts (chaos experiments, locustfiles) into their own files",
                )
            ]
        )
    nul = raw.find(b"\x00")
    if nul >= 0:
        line = raw[:nul].count(b"\n") + 1
        column = nul - (raw.rfind(b"\n", 0, nul) + 1) + 1
        raise ContractError(
            [Problem(filename, line, column, "", "a NUL byte; the file is binary or corrupt, not YAML text")]
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ContractError(
            [Problem(filename, line, column, "", "file is not UTF-8 text; save it as UTF-8")]
        ) from None


def parse_yaml(text: str, filename: str) -> Source:
    """Parse one YAML document from untrusted text; every refusal is a `ContractError`."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_BYTES:
        raise ContractError(
            [Problem(filename, None, None, "", "text is larger than 1 MiB; contracts are limited to 1 MiB")]
        )
    nul = text.find("\x00")
    if nul >= 0:
        raise ContractError(
            [
                Problem(
                    filename, *_position(text, nul), "", "a NUL byte; the text is binary or corrupt, not YAML"
                )
            ]
        )
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.Composer = _guarded_composer(filename)
    try:
        documents = list(yaml.load_all(text))
    except ContractError:
        raise
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        column = mark.column + 1 if mark is not None else None
        what = _plain_yaml_problem(exc.problem or exc.context or "not valid YAML")
        raise ContractError(
            [Problem(filename, line, column, "", f"YAML syntax: {_sentence(what)}")]
        ) from None
    except ReaderError as exc:  # a character YAML does not allow; its position counts characters
        at = int(exc.position or 0)
        raise ContractError(
            [Problem(filename, *_position(text, at), "", f"YAML: character {exc.character!r} is not allowed")]
        ) from None
    except Exception as exc:  # the scanner raises assorted errors on hostile input
        raise ContractError(
            [Problem(filename, None, None, "", f"could not read YAML: {short(str(exc), 120)}")]
        ) from None
    if not documents or documents == [None]:
        raise ContractError(
            [Problem(filename, 1, 1, "", "file is empty; a contract starts with apiVersion:")]
        )
    if len(documents) > 1:
        raise ContractError(
            [
                Problem(
                    filename, None, None, "", f"file holds {len(documents)} YAML documents; keep one per file"
                )
            ]
        )
    tree = documents[0]
    return Source(filename=filename, data=to_plain(tree), tree=tree)


def _position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of a character index."""
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


_DUPLICATE_KEY = re.compile(r'duplicate key "(.*?)" with value')


def _plain_yaml_problem(what: str) -> str:
    """The YAML parser's wording, rephrased where a user would not know what to do."""
    duplicate = _DUPLICATE_KEY.search(what)
    if duplicate or "duplicate key" in what:
        name = duplicate.group(1) if duplicate else ""
        key = f" `{name if len(name) <= 40 else name[:37] + '...'}`" if name else ""
        return f"the key{key} appears twice in the same mapping; keep one"
    if "'\\t'" in what or "\t" in what:
        return "a tab character; YAML indents with spaces only, so replace the tab with spaces"
    return what


def _sentence(text: str) -> str:
    return text.strip().rstrip(".")


def _refuse(filename: str, event: Any, message: str) -> ContractError:
    mark = getattr(event, "start_mark", None)
    line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
    return ContractError([Problem(filename, line, column, "", message)])


def _guarded_composer(filename: str) -> type[Composer]:
    """A composer that refuses aliases, custom tags, deep nesting and huge node counts as it goes."""

    class GuardedComposer(Composer):
        gate_nodes = 0
        gate_depth = 0
        gate_documents = 0

        def compose_document(self) -> Any:
            self.gate_documents += 1
            if self.gate_documents > 1:
                raise _refuse(
                    filename,
                    self.parser.peek_event(),
                    "a second YAML document starts here; keep one contract per file",
                )
            return super().compose_document()

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.parser.peek_event()
            if isinstance(event, AliasEvent):
                raise _refuse(
                    filename, event, "YAML aliases (*name) are not allowed in contracts; write the value out"
                )
            tag = getattr(event, "tag", None)
            if tag is not None and str(tag) not in _PLAIN_TAGS:
                raise _refuse(
                    filename, event, f"YAML tag {short(str(tag))} is not allowed; contracts use plain values"
                )
            if isinstance(event, ScalarEvent) and event.style is None and _LONG_NUMBER.match(event.value):
                raise _refuse(
                    filename, event, f"a number of more than {MAX_DIGITS} digits; numbers here are shorter"
                )
            self.gate_nodes += 1
            if self.gate_nodes > MAX_NODES:
                raise _refuse(filename, event, f"more than {MAX_NODES} YAML nodes; a contract is smaller")
            self.gate_depth += 1
            if self.gate_depth > MAX_DEPTH:
                raise _refuse(filename, event, f"nesting deeper than {MAX_DEPTH} levels; flatten it")
            try:
                return super().compose_node(parent, index)
            finally:
                self.gate_depth -= 1

    return GuardedComposer


def to_plain(node: Any) -> Any:
    """Round-trip YAML objects -> plain dicts, lists, str, int, float, bool, None."""
    if isinstance(node, dict):
        return {_plain_key(k): to_plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [to_plain(v) for v in node]
    if isinstance(node, bool):
        return bool(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    if isinstance(node, dt.datetime | dt.date):
        return node.isoformat()
    if node is None:
        return None
    return str(node)


def _plain_key(key: Any) -> Any:
    plain = to_plain(key)
    # Mapping keys in contracts are names; a number or boolean key (`5: x`, `yes: 1`) becomes its text.
    if isinstance(plain, bool):
        return str(plain).lower()
    if isinstance(plain, int | float):
        return str(plain)
    if plain is None:
        return "null"
    if isinstance(plain, list | dict):
        return short(plain)
    return plain


def locate(tree: Any, path: Sequence[PathPart]) -> tuple[int | None, int | None]:
    """Line and column (1-based) of the deepest node along `path`."""
    node = tree
    line: int | None = None
    column: int | None = None
    if isinstance(node, CommentedMap | CommentedSeq):
        line, column = node.lc.line + 1, node.lc.col + 1
    for part in path:
        if isinstance(node, CommentedMap):
            key = _find_key(node, part)
            if key is None:
                break
            child = node[key]
            # A collection is pointed at by its key; a scalar by its value (where the mistake is).
            pos = node.lc.key(key) if isinstance(child, CommentedMap | CommentedSeq) else node.lc.value(key)
            if pos is not None:
                line, column = pos[0] + 1, pos[1] + 1
            node = child
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            pos = node.lc.item(part)
            if pos is not None:
                line, column = pos[0] + 1, pos[1] + 1
            node = node[part]
        else:
            break
    return line, column


def _find_key(node: CommentedMap, part: PathPart) -> Any:
    if part in node:
        return part
    for key in node:
        if str(key) == str(part):
            return key
    return None
