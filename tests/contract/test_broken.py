"""Every deliberately broken contract fails with exactly the problems its header declares.

Each file in tests/contract/broken/ starts with `# expect: LINE:COL PATH: MESSAGE-START` lines
(`-` for problems that belong to no field), one per problem the loader must report.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gate.contract import ContractError, SliLibrary, load_contract

BROKEN = Path(__file__).parent / "broken"
_EXPECT = re.compile(r"^# expect: (\d+):(\d+) (\S+): (.+)$")


def _expectations(path: Path) -> list[tuple[int, int, str, str]]:
    out = []
    for line in path.read_text().splitlines():
        match = _EXPECT.match(line)
        if match:
            out.append((int(match[1]), int(match[2]), "" if match[3] == "-" else match[3], match[4].strip()))
    return out


@pytest.fixture(scope="module")
def library() -> SliLibrary:
    return SliLibrary.default()


@pytest.mark.parametrize("path", sorted(BROKEN.glob("*.yaml")), ids=lambda p: p.stem)
def test_broken_contract_reports_expected_problems(path: Path, library: SliLibrary) -> None:
    expected = _expectations(path)
    assert expected, f"{path.name} declares no `# expect:` line"
    with pytest.raises(ContractError) as caught:
        load_contract(path, library=library)
    problems = caught.value.problems
    got = [(p.line, p.column, p.path, p.message) for p in problems]
    assert len(problems) == len(expected), f"{path.name}: got {got}"
    for (line, column, field, message), problem in zip(expected, problems, strict=True):
        assert (problem.line, problem.column, problem.path) == (line, column, field), got
        assert problem.message.startswith(message), got
        assert problem.file == str(path)
        # The printed form is what `gate validate` shows: file:line:col: path: message.
        assert str(problem).startswith(f"{path}:{line}:{column}:")


def test_at_least_the_issue_cases_are_covered() -> None:
    names = {p.stem for p in BROKEN.glob("*.yaml")}
    for needed in (
        "syntax-error",
        "unknown-sli",
        "promql-does-not-parse",
        "weights-go-down",
        "shadow-without-mirror",
        "production-without-weight",
        "chaos-step-unknown",
        "during-unknown",
        "pause-past-deadline",
        "alias-bomb",
    ):
        assert needed in names
