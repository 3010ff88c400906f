"""PromQL text safety: escaping label values, label-name checks and parsing with a real PromQL parser.

Every label value gate substitutes into a query goes through `string_literal` (and `regex_literal` for
`=~` unions), so no value — quotes, backslashes, `"}`, `|`, newlines — can change a query's shape.
"""

from __future__ import annotations

import re

import promql_parser

LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_REGEX_SPECIAL = frozenset("\\.+*?()|[]{}^$")
MAX_QUERY_CHARS = 16_384


def _check_text(value: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("label value is not valid Unicode text") from None


def escape_string(value: str) -> str:
    """The body of a double-quoted PromQL string literal whose value is exactly `value`."""
    _check_text(value)
    out: list[str] = []
    for char in value:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif char == '"':
            out.append('\\"')
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        else:
            out.append(char)
    return "".join(out)


def string_literal(value: str) -> str:
    """`value` as a double-quoted PromQL string literal."""
    return f'"{escape_string(value)}"'


def escape_regex(value: str) -> str:
    """`value` as an RE2 pattern matching exactly that text (before string-literal escaping)."""
    _check_text(value)
    return "".join("\\" + c if c in _REGEX_SPECIAL else c for c in value)


def regex_literal(values: list[str]) -> str:
    """A string literal for `=~` matching exactly one of `values` (Prometheus anchors regexes)."""
    return string_literal("|".join(escape_regex(v) for v in values))


def check_label_name(name: str) -> str:
    """Refuse anything but a Prometheus label name (names cannot be escaped, only checked)."""
    if not LABEL_NAME_RE.match(name):
        raise ValueError(
            f"{name[:40]!r} is not a Prometheus label name (letters, digits and _, not starting with a digit)"
        )
    return name


def parse(query: str) -> promql_parser.Expr:
    """Parse PromQL with a real parser; a `ValueError` in plain words when it does not parse."""
    if len(query) > MAX_QUERY_CHARS:
        raise ValueError(f"PromQL longer than {MAX_QUERY_CHARS} characters")
    try:
        return promql_parser.parse(query)
    except BaseException as exc:  # the Rust parser may raise PanicException on odd input
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        message = str(exc).strip() or type(exc).__name__
        raise ValueError(f"PromQL does not parse: {message[:200]}") from None
