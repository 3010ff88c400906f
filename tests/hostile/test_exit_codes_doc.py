"""docs/ci.md lists every exit code of every command: each `EXIT_*` constant of a command's module."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from gate.cli import config_cmd, contract_cmds, demo_cmd, judge_cmd, learn_cmd, load_cmd, run_cmd
from gate.compose import check

DOC = (Path(__file__).resolve().parents[2] / "docs" / "ci.md").read_text()


def _table() -> dict[str, set[int]]:
    section = DOC.split("### Every command", 1)[1].split("\n\n|", 1)[1]
    rows: dict[str, set[int]] = {}
    command = ""
    for line in ("|" + section).splitlines():
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] and cells[0].startswith("`gate "):
            command = cells[0].strip("`")
        found = re.fullmatch(r"(\d+)(?:–(\d+))?", cells[1])
        if found:
            low, high = int(found.group(1)), int(found.group(2) or found.group(1))
            rows.setdefault(command, set()).update(range(low, high + 1))
    return rows


def _codes(module: ModuleType) -> set[int]:
    codes = {v for k, v in vars(module).items() if k.startswith("EXIT_") and isinstance(v, int)}
    for value in vars(module).values():
        is_map = isinstance(value, dict) and value and all(isinstance(v, int) for v in value.values())
        if is_map and set(value) & {"promoted", "rolled_back", "promote", "rollback"}:
            codes |= set(value.values())
    return codes


@pytest.mark.parametrize(
    ("command", "module"),
    [
        ("gate validate", contract_cmds),
        ("gate explain", contract_cmds),
        ("gate judge", judge_cmd),
        ("gate check", check),
        ("gate run", run_cmd),
        ("gate learn", learn_cmd),
        ("gate load", load_cmd),
        ("gate demo", demo_cmd),
        ("gate config", config_cmd),
    ],
)
def test_every_exit_code_is_documented(command: str, module: ModuleType) -> None:
    table = _table()
    assert command in table, f"{command} has no rows in docs/ci.md's exit code table"
    missing = _codes(module) - table[command]
    assert not missing, f"{command}: exit codes {sorted(missing)} are not in docs/ci.md"
