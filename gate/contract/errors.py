"""Problems found in a contract, each pointing at its spot: file, line, column, dotted field path.

A `ContractError` carries every problem of a file at once, so a user fixes them in one pass.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

PathPart = str | int


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong in a contract, in words a user can act on."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column or 1}"
        field = f" {self.path}:" if self.path else ""
        return f"{where}:{field} {self.message}"


class ContractError(ValueError):
    """A contract (or SLI library file) could not be accepted; `problems` lists every reason."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems: list[Problem] = sorted(problems, key=_order)
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid contract")


def _order(problem: Problem) -> tuple[str, int, int, str, str]:
    return (problem.file, problem.line or 0, problem.column or 0, problem.path, problem.message)


def format_path(parts: Sequence[PathPart]) -> str:
    """`("spec", "objectives", 1, "max")` -> `spec.objectives[1].max`."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # Keys come from the file: a huge one is shortened, never echoed whole.
            name = part if len(part) <= 60 else part[:57] + "..."
            out += ("." if out else "") + name
    return out


def short(value: object, limit: int = 40) -> str:
    """A bounded rendering of an untrusted value, never the whole of a huge one."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
