"""The base of every contract model: camelCase in YAML, snake_case in Python, unknown keys rejected."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Strict
from pydantic.alias_generators import to_camel

Track = Literal["stable", "canary"]
Source = Literal["synthetic", "shadow", "production"]
TRACKS: tuple[Track, ...] = ("stable", "canary")

# YAML gives real numbers and booleans; refuse `yes`, `"5"` or `true` where a number is meant
# (pydantic would otherwise coerce them, and the JSON Schema would disagree).
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
SOURCES: tuple[Source, ...] = ("synthetic", "shadow", "production")


class Model(BaseModel):
    """Strict by default: an unknown or misspelt key is an error, never silently ignored."""

    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        alias_generator=to_camel,
        allow_inf_nan=False,
        str_max_length=65_536,
        validate_default=False,
    )
