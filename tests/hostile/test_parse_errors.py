"""Unparseable input is exit 2 with file:line:col — never a traceback, never exit 1 ("the canary failed").

On main a JSON integer of more than 4,300 digits made `gate judge` print a traceback and exit 1, and a
duplicate `canary` key was read silently (last one wins), so a canary 5x slower than stable was promoted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.contract import ContractError, parse_contract
from gate.contract.jsonsrc import parse_json

from .conftest import CONTRACT

runner = CliRunner()
OBJECTIVES = [{"sli": "http-latency", "quantile": "p95", "maxIncrease": "10%", "sources": ["synthetic"]}]


def _samples(scale: float, seed: int) -> list[float]:
    return (np.random.default_rng(seed).lognormal(-2.3, 0.3, 400) * scale).round(5).tolist()


def _judge(tmp_path: Path, text: str, name: str = "evidence.json") -> tuple[int, str]:
    path = tmp_path / name
    path.write_text(text)
    result = runner.invoke(app, ["judge", str(path)])
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_duplicate_canary_key_is_refused_with_its_position(tmp_path: Path) -> None:
    slow, fast = json.dumps(_samples(5.0, 1)), json.dumps(_samples(1.0, 2))
    text = (
        '{"objectives": ' + json.dumps(OBJECTIVES) + ',\n "slis": {"http-latency": {"synthetic": {\n'
        f'  "stable": {{"kind": "samples", "values": {fast}}},\n'
        f'  "canary": {{"kind": "samples", "values": {slow}}},\n'
        f'  "canary": {{"kind": "samples", "values": {fast}}}\n'
        "}}}}\n"
    )
    code, output = _judge(tmp_path, text)
    assert code == 2, output
    assert f"{tmp_path / 'evidence.json'}:5:3: the key 'canary' appears twice in the same object" in output
    # Without the duplicate, the slow canary is rolled back: the refusal is what stood in the way.
    ok = text.replace(f'  "canary": {{"kind": "samples", "values": {fast}}}\n', "").replace(
        f"{slow}}},\n", f"{slow}}}\n"
    )
    code, output = _judge(tmp_path, ok, "single.json")
    assert code == 1, output


def test_huge_integer_is_exit_2_with_line_and_column(tmp_path: Path) -> None:
    text = (
        '{"objectives": [],\n "slis": {"x": {"synthetic": {"stable": {"kind": "counts", "total": '
        + ("9" * 5000)
        + "}}}}}"
    )
    code, output = _judge(tmp_path, text)
    assert code == 2, output
    assert re.search(r"evidence\.json:2:\d+: an integer of 5000 digits", output), output


def test_nul_byte_in_json_and_yaml_evidence(tmp_path: Path) -> None:
    code, output = _judge(tmp_path, '{"objectives": [],\n  "slis": {"a\x00": {}}}')
    assert code == 2 and "evidence.json:2:14: a NUL byte" in output, output
    code, output = _judge(tmp_path, "objectives: []\nslis:\n  a: \x00\n", "evidence.yaml")
    assert code == 2 and "evidence.yaml:3:6: a NUL byte" in output, output


def test_deep_json_nesting_is_refused_at_its_spot(tmp_path: Path) -> None:
    code, output = _judge(tmp_path, '{"slis":\n' + "[" * 500 + "]" * 500 + "}")
    assert code == 2 and "evidence.json:2:64: JSON nested deeper than 64 levels" in output, output


def test_broken_json_keeps_its_position(tmp_path: Path) -> None:
    code, output = _judge(tmp_path, '{"objectives": [\n  1,\n  2,,\n]}')
    assert code == 2 and "evidence.json:3:5: JSON syntax" in output, output


def test_second_yaml_document_is_pointed_at(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    text = CONTRACT.read_text()
    path.write_text(text.rstrip("\n") + "\n---\nkind: PerformanceContract\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    line = text.rstrip("\n").count("\n") + 2
    assert f"c.yaml:{line}:1: a second YAML document starts here" in result.output, result.output


def test_yaml_huge_number_and_nul_have_positions() -> None:
    with pytest.raises(ContractError) as caught:
        parse_contract("apiVersion: perfgate.dev/v1alpha1\nkind: " + "7" * 5000 + "\n", "c.yaml")
    assert str(caught.value.problems[0]).startswith("c.yaml:2:7: a number of more than 400 digits")
    with pytest.raises(ContractError) as caught:
        parse_contract("apiVersion: x\n  \x00\n", "c.yaml")
    assert str(caught.value.problems[0]).startswith("c.yaml:2:3: a NUL byte")
    with pytest.raises(ContractError) as caught:
        parse_contract("apiVersion: x\nkind: \x07\n", "c.yaml")
    assert str(caught.value.problems[0]).startswith("c.yaml:2:7: YAML: character")


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        ('{"a": {"b": 1, "c": 2, "b": 3}}', "1:24", "key 'b' appears twice"),
        ('[{"k": 1}, {"k": 2, "k": 3}]', "1:21", "key 'k' appears twice"),
        ("-" + "1" * 401, "1:1", "integer of 401 digits"),
        ('{"x": [1, 2, ' + "3" * 401 + "]}", "1:14", "integer of 401 digits"),
    ],
)
def test_strict_json_positions(text: str, where: str, words: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_json(text, "f.json")
    assert str(caught.value.problems[0]).startswith(f"f.json:{where}: "), caught.value
    assert words in str(caught.value)


def test_strict_json_reads_what_plain_json_reads() -> None:
    doc = {"a": [1, 2.5, -3, 1e300, None, True, "\u00e9", {"b": {"c": []}}], "s": "x" * 1000}
    assert parse_json(json.dumps(doc), "f.json") == doc
