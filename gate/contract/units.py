"""Human units in contracts — `3m`, `250ms`, `0.1%`, `10/s`, `512Mi` — parsed into base units.

Every quantity is stored in base units: seconds, fractions (0.1% -> 0.001), bytes, events per second.
The annotated types below parse on input and publish a JSON Schema that accepts the same spellings,
so editors and `gate schema` agree with the models.
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, WithJsonSchema

Dimension = Literal["duration", "fraction", "bytes", "number"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
# People write `220 ms`, `3 min` and `2 hours` as often as `220ms`: the words map onto the short units.
# Longer spellings come first so the regex never stops at a prefix (`ms` before `m`, `min` before `m`).
_DURATION_WORDS = {
    "milliseconds": "ms",
    "millisecond": "ms",
    "msecs": "ms",
    "msec": "ms",
    "ms": "ms",
    "seconds": "s",
    "second": "s",
    "secs": "s",
    "sec": "s",
    "s": "s",
    "minutes": "m",
    "minute": "m",
    "mins": "m",
    "min": "m",
    "m": "m",
    "hours": "h",
    "hour": "h",
    "hrs": "h",
    "hr": "h",
    "h": "h",
    "days": "d",
    "day": "d",
    "d": "d",
}
_UNIT_ALTERNATION = "|".join(sorted(_DURATION_WORDS, key=len, reverse=True))
_DURATION_PART = re.compile(rf"(\d+(?:\.\d+)?)\s*({_UNIT_ALTERNATION})")
DURATION_RE = re.compile(rf"^(?:\d+(?:\.\d+)?\s*(?:{_UNIT_ALTERNATION})\s*)+$")
_NUMBER_RE = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")
_BYTE_UNITS = {
    "B": 1.0,
    "k": 1e3,
    "K": 1e3,
    "kB": 1e3,
    "KB": 1e3,
    "M": 1e6,
    "MB": 1e6,
    "G": 1e9,
    "GB": 1e9,
    "Ki": 1024.0,
    "KiB": 1024.0,
    "Mi": 1024.0**2,
    "MiB": 1024.0**2,
    "Gi": 1024.0**3,
    "GiB": 1024.0**3,
}
_BYTES_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|k|K|kB|KB|M|MB|G|GB|Ki|KiB|Mi|MiB|Gi|GiB)$")
_PER = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

# Patterns published in the JSON Schema (kept loose enough to match what the parsers accept).
_DURATION_PATTERN = rf"^\s*(?:\d+(?:\.\d+)?\s*(?:{_UNIT_ALTERNATION})\s*)+$"
_PERCENT_PATTERN = r"^\s*[+-]?(?:\d+(?:\.\d*)?|\.\d+)\s*%\s*$"
_RATE_PATTERN = r"^\s*[^/]+/\s*(?:s|sec|m|min|h|d)\s*$"


def _short(value: object) -> str:
    """A bounded rendering of a user value for error messages (input is untrusted)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: float, what: str) -> float:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{what} must be a finite number")
    return value


def parse_duration(value: object) -> float:
    """`250ms`, `3m`, `1h30m`, `2.5s` or a number of seconds -> seconds (float, >= 0)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 250ms or 3m, got {_short(value)}")
    if isinstance(value, int | float):
        seconds = _finite(float(value), "a duration")
    elif isinstance(value, str):
        text = value.strip()
        if _NUMBER_RE.match(text):
            seconds = _finite(float(text), "a duration")
        elif DURATION_RE.match(text):
            seconds = sum(
                float(n) * _DURATION_UNITS[_DURATION_WORDS[u]] for n, u in _DURATION_PART.findall(text)
            )
        else:
            raise ValueError(
                f"expected a duration like 250ms, 30s, 3m or 1h30m, got {_short(value)} "
                "(units: ms, s, m, h, d)"
            )
    else:
        raise ValueError(f"expected a duration like 250ms or 3m, got {_short(value)}")
    if seconds < 0:
        raise ValueError(f"a duration cannot be negative, got {_short(value)}")
    return seconds


def parse_fraction(value: object) -> float:
    """`0.1%`, `99%` or a plain number -> a fraction (`0.1%` -> 0.001, `0.25` -> 0.25)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage like 0.1% or a fraction, got {_short(value)}")
    if isinstance(value, int | float):
        return _finite(float(value), "a fraction")
    if isinstance(value, str):
        text = value.strip()
        if text.endswith("%") and _NUMBER_RE.match(text[:-1].strip()):
            return _finite(float(text[:-1].strip()) / 100.0, "a percentage")
        if _NUMBER_RE.match(text):
            return _finite(float(text), "a fraction")
    raise ValueError(f"expected a percentage like 0.1% or a fraction like 0.001, got {_short(value)}")


def parse_quantity(value: object) -> float:
    """A bound on an SLI: a duration (-> seconds), a percentage (-> fraction), bytes (`512Mi`) or a number."""
    return parse_quantity_with_dimension(value)[0]


def parse_quantity_with_dimension(value: object) -> tuple[float, Dimension]:
    """Like `parse_quantity`, also telling which dimension the spelling implies (for unit checks)."""
    if isinstance(value, bool):
        raise ValueError(
            f"expected a number, a duration (220ms), a percentage (0.1%) or bytes (512Mi), got {value}"
        )
    if isinstance(value, int | float):
        return _finite(float(value), "a bound"), "number"
    if isinstance(value, str):
        text = value.strip()
        if _NUMBER_RE.match(text):
            return _finite(float(text), "a bound"), "number"
        if text.endswith("%"):
            return parse_fraction(text), "fraction"
        if DURATION_RE.match(text):
            return parse_duration(text), "duration"
        match = _BYTES_RE.match(text)
        if match:
            return float(match.group(1)) * _BYTE_UNITS[match.group(2)], "bytes"
    raise ValueError(
        f"expected a number, a duration (220ms), a percentage (0.1%) or bytes (512Mi), got {_short(value)}"
    )


def parse_rate(value: object) -> float:
    """`10/s`, `600/min`, `0/min`, `5Mi/h` or a number (per second) -> amount per second."""
    return parse_rate_with_dimension(value)[0]


def parse_rate_with_dimension(value: object) -> tuple[float, Dimension]:
    """Like `parse_rate`, also telling the dimension of the amount (bytes, number, ...)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a rate like 10/s or 0/min, got {value}")
    if isinstance(value, int | float):
        return _finite(float(value), "a rate"), "number"
    if isinstance(value, str) and "/" in value:
        amount, _, per = value.rpartition("/")
        per = per.strip()
        if per in _PER and amount.strip():
            quantity, dimension = parse_quantity_with_dimension(amount)
            return quantity / _PER[per], dimension
    if isinstance(value, str) and _NUMBER_RE.match(value.strip()):
        return _finite(float(value), "a rate"), "number"
    raise ValueError(f"expected a rate like 10/s, 600/min or 0/min, got {_short(value)}")


def format_duration(seconds: float) -> str:
    """Seconds -> the shortest human spelling (`180` -> `3m`, `0.25` -> `250ms`)."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds >= 60 and seconds == int(seconds):
        minutes, rest = divmod(int(seconds), 60)
        return f"{minutes}m{rest}s"
    return f"{seconds:g}s"


def format_promql_duration(seconds: float) -> str:
    """Seconds -> a PromQL range duration (`60` -> `1m`, `0.5` -> `500ms`); always a valid literal."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError("a PromQL window must be positive")
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if millis % size == 0:
            return f"{millis // size}{unit}"
    return f"{millis}ms"


def _schema(*alternatives: dict[str, Any], description: str) -> WithJsonSchema:
    return WithJsonSchema({"anyOf": list(alternatives), "description": description})


_NUM: dict[str, Any] = {"type": "number"}

Duration = Annotated[
    float,
    BeforeValidator(parse_duration),
    _schema(
        {**_NUM, "minimum": 0},
        {"type": "string", "pattern": _DURATION_PATTERN},
        {"type": "string", "pattern": r"^\s*[0-9.eE+]+\s*$"},
        description="A duration: 250ms, 30s, 3m, 1h30m, or a number of seconds.",
    ),
]
"""Seconds; written `250ms`, `30s`, `3m`, `1h30m`, or a number of seconds."""

Fraction = Annotated[
    float,
    BeforeValidator(parse_fraction),
    _schema(
        _NUM,
        {"type": "string", "pattern": _PERCENT_PATTERN},
        description="A percentage (0.1%, 99%) or a fraction (0.001).",
    ),
]
"""A fraction; written `0.1%`, `99%`, or as a plain fraction `0.001`."""

Quantity = Annotated[
    float,
    BeforeValidator(parse_quantity),
    _schema(
        _NUM,
        {"type": "string", "pattern": _DURATION_PATTERN},
        {"type": "string", "pattern": _PERCENT_PATTERN},
        {
            "type": "string",
            "pattern": r"^\s*\d+(?:\.\d+)?\s*(B|k|K|kB|KB|M|MB|G|GB|Ki|KiB|Mi|MiB|Gi|GiB)\s*$",
        },
        {"type": "string", "pattern": r"^\s*[+-]?[0-9.eE+-]+\s*$"},
        description="A bound in the SLI's unit: 220ms, 2.1s, 0.1%, 512Mi, or a plain number.",
    ),
]
"""A bound in the SLI's base unit: seconds, fraction, bytes, or a plain number."""


def parse_quantile(value: object) -> float:
    """`0.95`, `95%` or `p95` (`p99.9`) -> 0.95; strictly between 0 and 1."""
    if isinstance(value, str) and re.fullmatch(r"\s*p\d+(\.\d+)?\s*", value):
        number = float(value.strip()[1:]) / 100.0
    elif isinstance(value, str) and value.strip().endswith("%"):
        number = parse_fraction(value)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        number = _finite(float(value), "a quantile")
    else:
        raise ValueError(f"expected a quantile like 0.95, 95% or p95, got {_short(value)}")
    if not 0 < number < 1:
        raise ValueError(f"a quantile is between 0 and 1 (p50, p95, p99.9), got {_short(value)}")
    return number


Quantile = Annotated[
    float,
    BeforeValidator(parse_quantile),
    _schema(
        {**_NUM, "exclusiveMinimum": 0, "exclusiveMaximum": 1},
        {"type": "string", "pattern": r"^\s*p\d+(\.\d+)?\s*$"},
        {"type": "string", "pattern": _PERCENT_PATTERN},
        description="A quantile: 0.95, 95% or p95.",
    ),
]
"""A quantile in (0, 1); written `0.95`, `95%` or `p95`."""

Rate = Annotated[
    float,
    BeforeValidator(parse_rate),
    _schema(
        _NUM,
        {"type": "string", "pattern": _RATE_PATTERN},
        description="An amount per unit of time: 10/s, 600/min, 0/min, 5Mi/h; a number means per second.",
    ),
]
"""Amount per second; written `10/s`, `600/min`, `0/min`, `5Mi/h`."""
