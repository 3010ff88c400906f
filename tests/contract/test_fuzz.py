"""Random and mutated YAML thrown at the loader: it accepts or raises ContractError, never crashes.

Every rejection carries problems with a bounded, non-empty message and a well-formed path.
"""

from __future__ import annotations

import copy
import io
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML

from gate.contract import Contract, ContractError, SliLibrary, contract_from_data, parse_contract
from gate.contract.yamlsrc import parse_yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {p.name: p.read_text() for p in sorted((ROOT / "contracts").glob("*.yaml"))}
LIBRARY = SliLibrary.default()
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKENS = [
    "-1",
    "1e999",
    "nan",
    ".inf",
    "[",
    "{",
    "}",
    "''",
    '"',
    "*a",
    "&a x",
    "!!binary AAAA",
    "!!python/name:os.system",
    "null",
    "~",
    "true",
    "0x10",
    "3m",
    "200%",
    "-5%",
    "0",
    "10000000000000000000000",
    "p150",
    "?",
    ": :",
    "- -",
    "\t",
    "%YAML 1.1",
    "---",
    "...",
    "{a: 1, a: 2}",
    "[1, [2, [3]]]",
    "\u202e",
    "\x00",
    "é",
    "$selector",
    "'\\'",
]
KEYS = [
    "sli",
    "max",
    "min",
    "quantile",
    "steps",
    "chaos",
    "during",
    "weight",
    "kind",
    "type",
    "router",
    "sources",
    "tracks",
    "load",
    "tasks",
    "users",
    "fault",
    "delay",
    "abort",
    "objectives",
    "spec",
    "metadata",
    "name",
]


def _check(call: Any) -> Contract | None:
    try:
        return call()  # type: ignore[no-any-return]
    except ContractError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.message and len(problem.message) < 600, problem
            assert "Traceback" not in problem.message
            assert problem.line is None or problem.line >= 1
            assert len(problem.path) < 600
        assert str(exc)
        return None


@FUZZ
@given(st.text(max_size=400))
def test_random_text(text: str) -> None:
    _check(lambda: parse_contract(text, library=LIBRARY))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(raw: bytes) -> None:
    from gate.contract.yamlsrc import read_bytes

    def go() -> Contract:
        return parse_contract(read_bytes(raw, "<bytes>"), library=LIBRARY)

    _check(go)


@st.composite
def mutated_text(draw: st.DrawFn) -> str:
    text = draw(st.sampled_from(sorted(EXAMPLES.values())))
    lines = text.splitlines()
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        index = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["delete", "duplicate", "token", "indent", "truncate", "key"]))
        if action == "delete":
            del lines[index]
        elif action == "duplicate":
            lines.insert(index, lines[index])
        elif action == "token":
            words = lines[index].split(" ")
            spot = draw(st.integers(0, len(words) - 1))
            words[spot] = draw(st.sampled_from(TOKENS))
            lines[index] = " ".join(words)
        elif action == "indent":
            lines[index] = draw(st.sampled_from(["", " ", "   ", "\t"])) + lines[index].lstrip()
        elif action == "truncate":
            lines[index] = lines[index][: draw(st.integers(0, len(lines[index])))]
        else:
            lines[index] = lines[index].replace(
                draw(st.sampled_from(KEYS)) + ":", draw(st.sampled_from(KEYS)) + ":", 1
            )
    return "\n".join(lines) + "\n"


@FUZZ
@given(mutated_text())
def test_mutated_examples(text: str) -> None:
    _check(lambda: parse_contract(text, filename="mutated.yaml", library=LIBRARY))


JSONISH = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.sampled_from(TOKENS),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_paths(value, (*prefix, index)))
    return out


@st.composite
def mutated_data(draw: st.DrawFn) -> Any:
    name = draw(st.sampled_from(sorted(EXAMPLES)))
    data = copy.deepcopy(parse_yaml(EXAMPLES[name], name).data)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(data) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = data
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSONISH)
    return data


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_data())
def test_mutated_structures(data: Any) -> None:
    _check(lambda: contract_from_data(data, filename="mutated", library=LIBRARY))
    # The same document through YAML text keeps behaving (positions now known).
    stream = io.StringIO()
    try:
        YAML(typ="safe", pure=True).dump(data, stream)
    except Exception:  # floats like nan dump fine; exotic keys may not — nothing to test then
        return
    _check(lambda: parse_contract(stream.getvalue(), filename="mutated.yaml", library=LIBRARY))


def test_deep_nesting_and_many_nodes_are_refused_quickly() -> None:
    assert _check(lambda: parse_contract("a: " + "[" * 5000 + "]" * 5000, library=LIBRARY)) is None
    assert _check(lambda: parse_contract("a: [" + "1, " * 10_500 + "1]", library=LIBRARY)) is None
    assert _check(lambda: parse_contract("x" * (2 * 1024 * 1024), library=LIBRARY)) is None


def test_huge_keys_and_values_are_never_echoed_whole() -> None:
    huge = "k" * 50_000
    key = "k" * 1000  # YAML limits implicit keys to 1024 characters
    text = f"""
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: x}}
spec:
  target: {{stable: {{url: "http://a"}}, canary: {{url: "http://b"}}}}
  chaos: {{{key}: {{fault: {{target: db, delay: 1s}}}}}}
  objectives: [{{sli: {huge}, max: {huge}}}]
  {key}: 1
"""
    try:
        parse_contract(text, library=LIBRARY)
    except ContractError as exc:
        assert len(exc.problems) >= 3
        for problem in exc.problems:
            assert len(str(problem)) < 400, str(problem)[:500]
    else:
        raise AssertionError("accepted")
