"""`gate schema` agrees with the models: examples validate, model-valid documents are schema-valid,
documents with schema-level mistakes are rejected by both, and docs/contract.schema.json is current."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from typer.testing import CliRunner

from gate.cli.main import app
from gate.contract import Contract
from gate.contract.schema import contract_schema, register_schema, schema_for, schema_kinds
from gate.contract.yamlsrc import parse_yaml

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "contracts").glob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(contract_schema())


def _data(path: Path) -> Any:
    return parse_yaml(path.read_text(), str(path)).data


def _model_accepts(data: Any) -> bool:
    try:
        Contract.model_validate(data)
    except ValidationError:
        return False
    return True


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(contract_schema())


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_validates_against_the_schema(path: Path) -> None:
    errors = [f"{list(e.absolute_path)}: {e.message[:200]}" for e in VALIDATOR.iter_errors(_data(path))]
    assert not errors


def test_committed_schema_is_current() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    committed = (ROOT / "docs" / "contract.schema.json").read_text()
    assert json.loads(result.stdout) == json.loads(committed), (
        "run: .venv/bin/gate schema > docs/contract.schema.json"
    )


def _set(data: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    out = copy.deepcopy(data)
    node: Any = out
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    return out


CHECKOUT = _data(ROOT / "contracts" / "checkout.yaml")
REJECTED_BY_BOTH = [
    (["spec", "router", "type"], "traefik"),
    (["spec", "objectives", 0, "maxIncrese"], "10%"),
    (["spec", "steps", 1], "bake 5m"),
    (["spec", "steps", 1], {"wait": "5m"}),
    (["spec", "policy", "onInconclusive"], "shrug"),
    (["spec", "load", "users"], "many"),
    (["spec", "load", "tasks", 0, "method"], "FETCH"),
    (["apiVersion"], "perfgate.dev/v2"),
    (["kind"], "Rollout"),
    (["spec", "chaos", "risk-api-slow"], {"netem": {}}),
    (["spec", "traffic"], {"sources": {"replay": {"a": "b"}}}),
    (["metadata", "color"], "blue"),
]


@pytest.mark.parametrize(("path", "value"), REJECTED_BY_BOTH, ids=lambda v: str(v)[:30])
def test_schema_level_mistakes_are_rejected_by_both(path: list[Any], value: Any) -> None:
    data = _set(CHECKOUT, path, value)
    assert not _model_accepts(data)
    assert not VALIDATOR.is_valid(data)


def test_spellings_accepted_by_the_models_are_accepted_by_the_schema() -> None:
    for path, value in [
        (["spec", "objectives", 0, "quantile"], "p95"),
        (["spec", "objectives", 0, "quantile"], "95%"),
        (["spec", "objectives", 0, "max"], 0.22),
        (["spec", "objectives", 0, "max"], "512Mi"),
        (["spec", "load", "spawnRate"], 10),
        (["spec", "load", "spawnRate"], "600/min"),
        (["spec", "load", "workers"], 4),
        (["spec", "load", "tasks", 0], {"name": "x", "method": "PUT", "path": "/x"}),
        (
            ["spec", "steps"],
            [
                5,
                "10%",
                {"setWeight": 20},
                {"kind": "setWeight", "weight": "30%"},
                "pause",
                {"pause": None},
                "mirror off",
                "chaos risk-api-slow for 1m",
            ],
        ),
        (["spec", "policy", "deadline"], 7200),
    ]:
        data = _set(CHECKOUT, path, value)
        assert _model_accepts(data), (path, value)
        assert VALIDATOR.is_valid(data), (path, value, [e.message for e in VALIDATOR.iter_errors(data)][:3])


VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 200),
    st.floats(-1, 1000, allow_nan=False),
    st.sampled_from(
        [
            "5%",
            "3m",
            "250ms",
            "p95",
            "0.1%",
            "10/s",
            "0/min",
            "auto",
            "nginx",
            "istio",
            "GET",
            "pause 1m",
            "hold",
            "synthetic",
            "risk-api-slow",
            "http-latency",
            "x",
            "",
            "512Mi",
            "mirror 50%",
            "analyze",
            "1h",
        ]
    ),
    st.just({}),
    st.just([]),
)


def _leaves(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for key, value in node.items():
            out.extend(_leaves(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.extend(_leaves(value, (*prefix, index)))
    return out


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(EXAMPLES), st.data())
def test_model_valid_documents_are_schema_valid(path: Path, data: st.DataObject) -> None:
    document = copy.deepcopy(_data(path))
    spots = _leaves(document)
    for _ in range(data.draw(st.integers(1, 2))):
        spot = data.draw(st.sampled_from(spots))
        document = _set(document, list(spot), data.draw(VALUES))
        spots = _leaves(document)
    if _model_accepts(document):
        errors = [f"{list(e.absolute_path)}: {e.message[:150]}" for e in VALIDATOR.iter_errors(document)]
        assert not errors


def test_other_modules_can_register_a_schema() -> None:
    register_schema("example-kind", lambda: {"type": "object", "title": "example"})
    assert "example-kind" in schema_kinds() and schema_for("example-kind")["title"] == "example"
    result = CliRunner().invoke(app, ["schema", "example-kind"])
    assert result.exit_code == 0 and json.loads(result.stdout)["title"] == "example"
    result = CliRunner().invoke(app, ["schema", "no-such-kind"])
    assert result.exit_code == 2


def test_library_files_validate_against_the_sli_library_schema() -> None:
    validator = jsonschema.Draft202012Validator(schema_for("sli-library"))
    for path in sorted((ROOT / "analyses").glob("*.yaml")):
        assert not [e.message for e in validator.iter_errors(_data(path))], path
    assert not validator.is_valid(
        {"Bad Name": {"kind": "rate", "unit": "count", "promql": {"counter": "x{$selector}"}}}
    )
