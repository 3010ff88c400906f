"""Rollout steps: the typed forms, and the shorthand people write (`5%`, `pause 3m`, `analyze`).

`normalize_step` turns every accepted spelling into one canonical mapping with a `kind`, so the
models see a discriminated union and an unknown step kind is an error.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, WithJsonSchema

from gate.contract.base import Model
from gate.contract.errors import short
from gate.contract.units import Duration

_NUMBER = r"\d+(?:\.\d+)?"
_PERCENT_RE = re.compile(rf"^({_NUMBER})\s*%?$")
_STEP_WORDS = "5%, pause 3m, analyze 2m, load 3m, mirror 100%, mirror off, chaos NAME 1m"


def parse_percent(value: object) -> int:
    """`5%`, `5` or `5.0` -> 5 (whole percent, 0-100)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a percentage like 20%, got {value}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str) and _PERCENT_RE.match(value.strip()):
        number = float(value.strip().rstrip("%").strip())
    elif isinstance(value, str) and value.strip() in ("on", "off"):
        number = 100.0 if value.strip() == "on" else 0.0
    else:
        raise ValueError(f"expected a percentage like 20%, got {short(value)}")
    if number != int(number):
        raise ValueError(
            f"use a whole percentage (routers split traffic in whole percent), got {short(value)}"
        )
    if not 0 <= number <= 100:
        raise ValueError(f"a percentage is between 0% and 100%, got {short(value)}")
    return int(number)


Percent = Annotated[
    int,
    BeforeValidator(parse_percent),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 100},
                {"type": "string", "pattern": r"^\s*\d+(\.0+)?\s*%?\s*$"},
            ],
            "description": "A whole percentage: 20% or 20.",
        }
    ),
]


class SetWeight(Model):
    """Route `weight` percent of production traffic to the canary."""

    kind: Literal["setWeight"] = Field(
        default="setWeight", description="Always `setWeight` (the canonical form)."
    )
    weight: Percent = Field(description="Percent of production traffic sent to the canary (0-100).")


class Pause(Model):
    """Hold the current weight for `duration`, or until a reviewer approves when no duration is given."""

    kind: Literal["pause"] = Field(default="pause", description="Always `pause` (the canonical form).")
    duration: Duration | None = Field(default=None, description="How long to hold; empty: until approved.")


class Analyze(Model):
    """Judge the objectives for `duration` (default: until every objective has its minimum evidence)."""

    kind: Literal["analyze"] = Field(default="analyze", description="Always `analyze` (the canonical form).")
    duration: Duration | None = Field(
        default=None, description="How long to analyse; empty: until the minimum evidence is in."
    )


class LoadStep(Model):
    """Run the contract's synthetic load (`spec.load`) against both tracks."""

    kind: Literal["load"] = Field(default="load", description="Always `load` (the canonical form).")
    duration: Duration | None = Field(default=None, description="How long; empty: spec.load.duration.")


class ChaosStep(Model):
    """Run a chaos experiment of `spec.chaos` while the objectives are judged; faults are always undone."""

    kind: Literal["chaos"] = Field(default="chaos", description="Always `chaos` (the canonical form).")
    experiment: str = Field(description="Name of an experiment under spec.chaos.")
    duration: Duration | None = Field(
        default=None, description="How long the fault stays; empty: as long as the experiment runs."
    )


class Mirror(Model):
    """Mirror `percent` of production requests to the canary as shadow traffic (0 turns it off)."""

    kind: Literal["mirror"] = Field(default="mirror", description="Always `mirror` (the canonical form).")
    percent: Percent = Field(description="Percent of production requests mirrored to the canary; 0 = off.")


def _duration_arg(word: str, rest: str | None) -> dict[str, Any]:
    return {"kind": word, "duration": rest} if rest else {"kind": word}


_SHORT_KINDS = {"pause": "pause", "analyze": "analyze", "analyse": "analyze", "load": "load"}


def normalize_step(raw: object) -> object:
    """Any accepted spelling of a step -> its canonical mapping (`{"kind": ..., ...}`)."""
    if isinstance(raw, bool):
        raise ValueError(f"a step is a weight (20%) or a word; got {raw}")
    if isinstance(raw, int | float):
        return {"kind": "setWeight", "weight": raw}
    if isinstance(raw, str):
        return _from_text(raw)
    if isinstance(raw, dict):
        return _from_mapping(raw)
    raise ValueError(f"a step is one of: {_STEP_WORDS}")


def _from_text(raw: str) -> dict[str, Any]:
    words = raw.split()
    if not words:
        raise ValueError(f"empty step; write one of: {_STEP_WORDS}")
    head, rest = words[0], words[1:]
    # The argument may itself hold a space (`pause 3 min`, `mirror 100 %`): the rest is one value.
    arg = " ".join(rest)
    if _PERCENT_RE.match(raw.strip()):
        return {"kind": "setWeight", "weight": raw.strip()}
    if head in ("setWeight", "weight") and rest:
        return {"kind": "setWeight", "weight": arg}
    if head in _SHORT_KINDS:
        # `pause for 3m` reads as well as `pause 3m`.
        length = " ".join(rest[1:]) if rest[:1] == ["for"] else arg
        return _duration_arg(_SHORT_KINDS[head], length or None)
    if head == "mirror" and rest:
        return {"kind": "mirror", "percent": arg}
    if head == "chaos" and rest:
        tail = rest[1:]
        if tail and tail[0] == "for":
            tail = tail[1:]
        step: dict[str, Any] = {"kind": "chaos", "experiment": rest[0]}
        if tail:
            step["duration"] = " ".join(tail)
        return step
    raise ValueError(f"unknown step {short(raw)}; write one of: {_STEP_WORDS}")


_KEY_FIELD = {"setWeight": "weight", "mirror": "percent"}


def _from_mapping(raw: dict[Any, Any]) -> dict[str, Any]:
    if "kind" in raw:
        return dict(raw)
    keys = [k for k in raw if k not in ("for", "duration")]
    if len(keys) != 1:
        raise ValueError(
            "a step mapping has one key saying its kind (setWeight, pause, analyze, load, chaos, mirror)"
            + (f"; found {', '.join(short(str(k)) for k in keys[:5])}" if keys else "")
        )
    kind = str(keys[0])
    value = raw[kind]
    extra = {k: v for k, v in raw.items() if k != kind}
    if kind in _KEY_FIELD:
        if extra:
            raise ValueError(f"a {kind} step takes no other keys")
        return {"kind": kind, _KEY_FIELD[kind]: value}
    if kind in _SHORT_KINDS:
        canonical = _SHORT_KINDS[kind]
        if isinstance(value, dict):
            return {"kind": canonical, **value}
        if extra:
            raise ValueError(f"write `{kind}: 3m`; no other keys")
        return {"kind": canonical} if value is None else {"kind": canonical, "duration": value}
    if kind == "chaos":
        step: dict[str, Any] = {"kind": "chaos", "experiment": value}
        if "for" in extra and "duration" in extra:
            raise ValueError("give the chaos step's length once: `for: 1m`")
        length = extra.get("for", extra.get("duration"))
        if length is not None:
            step["duration"] = length
        return step
    raise ValueError(f"unknown step kind {short(kind)}; use setWeight, pause, analyze, load, chaos or mirror")


_DURATION_SCHEMA: dict[str, Any] = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}]}
_PERCENT_SCHEMA: dict[str, Any] = {
    "anyOf": [{"type": "integer", "minimum": 0, "maximum": 100}, {"type": "string"}]
}


def _canonical(kind: str, props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {"kind": {"const": kind}, **props},
        "required": ["kind", *required],
        "additionalProperties": False,
    }


def _single(key: str, value: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {key: value, **(extra or {})},
        "required": [key],
        "additionalProperties": False,
    }


_NULLABLE_DURATION = {"anyOf": [*_DURATION_SCHEMA["anyOf"], {"type": "null"}]}
_DURATION_OBJECT = {
    "anyOf": [
        *_NULLABLE_DURATION["anyOf"],
        {"type": "object", "properties": {"duration": _NULLABLE_DURATION}, "additionalProperties": False},
    ]
}

STEP_JSON_SCHEMA: dict[str, Any] = {
    "description": "A step: 20 / 20% (setWeight), 'pause 3m', 'analyze 2m', 'load 3m', 'mirror 100%', "
    "'chaos NAME 1m', a one-key mapping ({pause: 3m}, {chaos: NAME, for: 1m}) or the canonical {kind: ...}.",
    "anyOf": [
        {"type": "number", "minimum": 0, "maximum": 100},
        {
            "type": "string",
            "pattern": r"^\s*(\d+(\.\d+)?\s*%?|(setWeight|weight)\s+\S.*"
            r"|(pause|analyze|analyse|load)(\s+\S.*)?"
            r"|mirror\s+\S.*|chaos\s+\S+(\s+(for\s+)?\S.*)?)\s*$",
        },
        _single("setWeight", _PERCENT_SCHEMA),
        _single("mirror", {"anyOf": [*_PERCENT_SCHEMA["anyOf"]]}),
        _single("pause", _DURATION_OBJECT),
        _single("analyze", _DURATION_OBJECT),
        _single("analyse", _DURATION_OBJECT),
        _single("load", _DURATION_OBJECT),
        _single("chaos", {"type": "string"}, {"for": _DURATION_SCHEMA, "duration": _DURATION_SCHEMA}),
        _canonical("setWeight", {"weight": _PERCENT_SCHEMA}, ["weight"]),
        _canonical("pause", {"duration": _NULLABLE_DURATION}, []),
        _canonical("analyze", {"duration": _NULLABLE_DURATION}, []),
        _canonical("load", {"duration": _NULLABLE_DURATION}, []),
        _canonical(
            "chaos", {"experiment": {"type": "string"}, "duration": _NULLABLE_DURATION}, ["experiment"]
        ),
        _canonical("mirror", {"percent": _PERCENT_SCHEMA}, ["percent"]),
    ],
}

Step = Annotated[
    SetWeight | Pause | Analyze | LoadStep | ChaosStep | Mirror,
    Field(discriminator="kind"),
    BeforeValidator(normalize_step),
    WithJsonSchema(STEP_JSON_SCHEMA),
]
"""One rollout step, normalised from any accepted spelling; a union on `kind`."""

STEP_TYPES = (SetWeight, Pause, Analyze, LoadStep, ChaosStep, Mirror)
