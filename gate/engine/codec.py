"""JSON form of the machine's states, inputs and effects, for checkpoints in the run store.

A checkpoint must read back to exactly what was written: the round trip is tested for every type.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from gate.engine.machine import Effect, Input, Plan, State

_STATE: TypeAdapter[State] = TypeAdapter(State)
_PLAN: TypeAdapter[Plan] = TypeAdapter(Plan)
_INPUT: TypeAdapter[Input] = TypeAdapter(Annotated[Input, Field(discriminator="kind")])
_EFFECT: TypeAdapter[Effect] = TypeAdapter(Annotated[Effect, Field(discriminator="kind")])


def dump_state(state: State) -> dict[str, Any]:
    """The state as JSON-ready data."""
    return _STATE.dump_python(state, mode="json")  # type: ignore[no-any-return]


def load_state(data: Any) -> State:
    """A state read back from a checkpoint."""
    return _STATE.validate_python(data)


def dump_plan(plan: Plan) -> dict[str, Any]:
    """The plan as JSON-ready data."""
    return _PLAN.dump_python(plan, mode="json")  # type: ignore[no-any-return]


def load_plan(data: Any) -> Plan:
    """A plan read back from the run store."""
    return _PLAN.validate_python(data)


def dump_input(event: Input) -> dict[str, Any]:
    """An input as JSON-ready data (its ``kind`` tells which)."""
    return _INPUT.dump_python(event, mode="json")  # type: ignore[no-any-return]


def load_input(data: Any) -> Input:
    """An input read back from the run store."""
    return _INPUT.validate_python(data)


def dump_effect(effect: Effect) -> dict[str, Any]:
    """An effect as JSON-ready data (its ``kind`` tells which)."""
    return _EFFECT.dump_python(effect, mode="json")  # type: ignore[no-any-return]


def load_effect(data: Any) -> Effect:
    """An effect read back from the run store."""
    return _EFFECT.validate_python(data)


def json_safe(value: Any, *, depth: int = 32) -> Any:
    """``value`` as strict JSON data: NaN and infinities as strings ("nan", "inf", "-inf", as the
    judge writes them), keys as strings, tuples as lists; nesting deeper than ``depth`` cut off.

    Looks' evidence summaries and verdict numbers go through here before the store: PostgreSQL's
    JSON refuses NaN (SQLite would keep it as non-standard JSON no other reader accepts)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, str | int | bool):
        return value
    if depth <= 0:
        return "…"
    if isinstance(value, dict):
        return {str(k): json_safe(v, depth=depth - 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth=depth - 1) for v in value]
    return str(value)
