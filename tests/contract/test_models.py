"""The contract models: shorthand normalised, defaults derived from the whole contract, kinds closed."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.contract import (
    Analyze,
    ChaosStep,
    ContractError,
    FaultExperiment,
    GatewayApiRouter,
    InlineExperiment,
    LoadStep,
    Mirror,
    Pause,
    SetWeight,
    SliLibrary,
    contract_from_data,
    load_contract,
    parse_contract,
)

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / "contracts"

MINIMAL = """
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: mini}
spec:
  target: {stable: {url: "http://127.0.0.1:1"}, canary: {url: "http://127.0.0.1:2"}}
  load: {tasks: [{name: home, get: /}]}
  objectives: [{sli: http-latency, quantile: p95, max: 200ms}]
"""


@pytest.fixture(scope="module")
def library() -> SliLibrary:
    return SliLibrary.default()


def test_checkout_reads_as_the_issue_says(library: SliLibrary) -> None:
    contract = load_contract(CONTRACTS / "checkout.yaml", library=library)
    spec = contract.spec
    assert contract.metadata.name == "checkout" and spec.service == "checkout"
    assert isinstance(spec.router, GatewayApiRouter) and spec.router.http_route == "checkout"
    assert spec.prometheus.scrape_interval == 15
    assert spec.load is not None and spec.load.spawn_rate == 10 and spec.load.duration == 180
    assert spec.load.tasks[0].method == "POST" and spec.load.tasks[0].path == "/orders"
    assert spec.load.tasks[0].json_body == {"sku": "A-1", "qty": 1}
    fault = spec.chaos["risk-api-slow"]
    assert isinstance(fault, FaultExperiment) and fault.kind == "fault"
    assert fault.fault.delay == pytest.approx(0.8) and fault.fault.abort == pytest.approx(0.15)
    p95 = contract.objective("http-latency-p95")
    assert p95.max == pytest.approx(0.22) and p95.max_increase == pytest.approx(0.1) and p95.critical
    assert p95.sources == ["synthetic", "shadow", "production"]
    assert contract.objective("http-error-ratio").max == pytest.approx(0.001)
    breaker = contract.objective("http-latency-p99-during-risk-api-slow")
    assert breaker.max == pytest.approx(2.1) and breaker.during == "risk-api-slow"
    assert contract.objective("go-goroutines").max_growth == 0
    weights = [s.weight for s in spec.steps if isinstance(s, SetWeight)]
    assert weights == [5, 20, 50, 100]
    assert any(isinstance(s, Pause) and s.duration == 180 for s in spec.steps)
    assert any(isinstance(s, Analyze) for s in spec.steps)
    assert any(isinstance(s, ChaosStep) and s.duration == 60 for s in spec.steps)
    assert spec.policy.confidence == pytest.approx(0.99)
    assert contract.base_dir == CONTRACTS


def test_every_step_spelling(library: SliLibrary) -> None:
    text = (
        MINIMAL
        + """
  router: {type: nginx}
  prometheus: {url: "http://127.0.0.1:9090"}
  chaos: {slow: {fault: {target: db, delay: 1s}}}
  steps:
    - 5
    - 10%
    - setWeight 15
    - {setWeight: 20%}
    - {kind: setWeight, weight: 25}
    - pause
    - pause 3m
    - {pause: 1m}
    - {pause: {duration: 2m}}
    - analyze
    - analyse 2m
    - {analyze: 30s}
    - load
    - {load: 1m}
    - mirror 50%
    - mirror off
    - {mirror: 100%}
    - chaos slow
    - chaos slow for 1m
    - chaos slow 2m
    - {chaos: slow, for: 30s}
    - {kind: chaos, experiment: slow, duration: 10s}
"""
    )
    steps = parse_contract(text, library=library).spec.steps
    kinds = [s.kind for s in steps]
    assert (
        kinds
        == ["setWeight"] * 5 + ["pause"] * 4 + ["analyze"] * 3 + ["load"] * 2 + ["mirror"] * 3 + ["chaos"] * 5
    )
    assert [s.weight for s in steps[:5] if isinstance(s, SetWeight)] == [5, 10, 15, 20, 25]
    assert [s.duration for s in steps[5:9] if isinstance(s, Pause)] == [None, 180, 60, 120]
    assert [s.percent for s in steps if isinstance(s, Mirror)] == [50, 0, 100]
    assert [s.duration for s in steps if isinstance(s, LoadStep)] == [None, 60]
    assert [s.duration for s in steps if isinstance(s, ChaosStep)] == [None, 60, 120, 30, 10]


def test_default_sources_are_those_the_steps_produce(library: SliLibrary) -> None:
    only_load = parse_contract(MINIMAL, library=library)
    assert only_load.spec.objectives[0].sources == ["synthetic"]
    with_weight = parse_contract(
        MINIMAL
        + '  router: {type: nginx}\n  prometheus: {url: "http://127.0.0.1:9090"}\n  steps: [10%, 100%]\n',
        library=library,
    )
    assert with_weight.spec.objectives[0].sources == ["synthetic", "production"]


def test_camel_case_in_yaml_snake_case_in_python_and_both_accepted(library: SliLibrary) -> None:
    data = parse_contract(MINIMAL, library=library).model_dump(by_alias=True, exclude_none=True)
    assert "apiVersion" in data and "minEvidence" in data["spec"]["objectives"][0]
    again = contract_from_data(data, library=library)
    assert again.spec.objectives[0].max == pytest.approx(0.2)
    snake = parse_contract(MINIMAL.replace("apiVersion", "api_version"), library=library)
    assert snake.api_version == "perfgate.dev/v1alpha1"


def test_custom_resource_from_the_api_server_is_accepted(library: SliLibrary) -> None:
    data = parse_contract(MINIMAL, library=library).model_dump(by_alias=True, exclude_none=True)
    data["metadata"].update(
        uid="0b7c",
        resourceVersion="42",
        generation=3,
        creationTimestamp="2026-01-01T00:00:00Z",
        managedFields=[],
    )
    data["status"] = {"phase": "Progressing"}
    contract = contract_from_data(data, library=library)
    assert contract.metadata.generation == 3 and contract.status == {"phase": "Progressing"}


def test_inline_chaos_and_unknown_kind(library: SliLibrary) -> None:
    text = (
        MINIMAL
        + """
  chaos:
    kill: {inline: {title: kill a pod, method: [{type: action, name: kill}]}}
"""
    )
    contract = parse_contract(text, library=library)
    assert isinstance(contract.spec.chaos["kill"], InlineExperiment)
    with pytest.raises(ContractError) as caught:
        parse_contract(MINIMAL + "\n  chaos: {kill: {netem: {}}}\n", library=library)
    assert "exactly one of: fault, experiment" in str(caught.value)


def test_all_errors_at_once(library: SliLibrary) -> None:
    text = MINIMAL.replace("max: 200ms", "max: 200xs") + "  policy: {confidence: 2%, onInconclusive: shrug}\n"
    with pytest.raises(ContractError) as caught:
        parse_contract(text, library=library)
    paths = [p.path for p in caught.value.problems]
    assert paths == ["spec.objectives[0].max", "spec.policy.confidence", "spec.policy.onInconclusive"]


def test_objective_keys_can_be_set_and_must_be_unique(library: SliLibrary) -> None:
    text = MINIMAL.replace(
        "objectives: [{sli: http-latency, quantile: p95, max: 200ms}]",
        "objectives: [{key: fast, sli: http-latency, quantile: 0.95, max: 200ms},"
        " {key: fast, sli: http-error-ratio, max: 1%}]",
    )
    with pytest.raises(ContractError) as caught:
        parse_contract(text, library=library)
    assert "already used" in str(caught.value)


def test_every_example_contract_loads(library: SliLibrary) -> None:
    for path in CONTRACTS.glob("*.yaml"):
        load_contract(path, library=library)


def test_openapi_objectives_get_routes(library: SliLibrary) -> None:
    contract = load_contract(CONTRACTS / "orders.yaml", library=library)
    routed = [o for o in contract.spec.objectives if o.route is not None]
    assert {(o.route.method, o.route.path) for o in routed if o.route} == {
        ("POST", "/orders"),
        ("GET", "/orders"),
        ("GET", "/orders/{id}"),
    }
    place = contract.objective("http-latency-p95-post-orders")
    assert place.critical and place.max == pytest.approx(0.25)
    query = library.render(place, contract).promql
    assert 'route="/orders"' in query and 'method="POST"' in query


def test_openapi_problems_point_into_the_document(tmp_path: Path, library: SliLibrary) -> None:
    (tmp_path / "api.yaml").write_text(
        "openapi: 3.1.0\npaths:\n  /x:\n    get:\n      x-performance-contract:\n        p95: fast\n"
    )
    (tmp_path / "c.yaml").write_text(MINIMAL + "  objectivesFrom: [{openapi: api.yaml}]\n")
    with pytest.raises(ContractError) as caught:
        load_contract(tmp_path / "c.yaml", library=library)
    [problem] = caught.value.problems
    # The line to fix is in the OpenAPI document: `p95: fast`.
    assert problem.file == str(tmp_path / "api.yaml")
    assert (problem.line, problem.column) == (6, 14)
    assert problem.path == "paths./x.get.x-performance-contract.p95"
    assert "GET /x in api.yaml" in problem.message and "max" in problem.message

    (tmp_path / "c.yaml").write_text(MINIMAL + "  objectivesFrom: [{openapi: gone.yaml}]\n")
    with pytest.raises(ContractError) as caught:
        load_contract(tmp_path / "c.yaml", library=library)
    [problem] = caught.value.problems
    assert problem.file == str(tmp_path / "c.yaml") and problem.line is not None
    assert problem.path == "spec.objectivesFrom[0].openapi" and "not found" in problem.message


def test_schema_errors_and_contradictions_come_together(library: SliLibrary) -> None:
    text = (
        MINIMAL
        + """
  router: {type: nginx, port: 99999}
  prometheus: {url: "http://127.0.0.1:9090"}
  steps: [50%, 20%, {chaos: nope}]
"""
    )
    with pytest.raises(ContractError) as caught:
        parse_contract(text, library=library)
    messages = {p.path: p.message for p in caught.value.problems}
    assert "spec.router.port" in messages  # schema
    assert "lower than 50%" in messages["spec.steps[1]"]  # contradiction
    assert "does not define" in messages["spec.steps[2].chaos"]  # contradiction


@pytest.mark.parametrize("path", sorted(CONTRACTS.glob("*.yaml")), ids=lambda p: p.stem)
def test_dump_and_reload_is_the_same_contract(path: Path, library: SliLibrary) -> None:
    # The operator and the run store keep contracts as data; reloading must give the same contract.
    contract = load_contract(path, library=library)
    for mode in ("python", "json"):
        data = contract.model_dump(by_alias=True, mode=mode)  # type: ignore[arg-type]
        again = contract_from_data(data, library=library, base_dir=contract.base_dir)
        assert again == contract


def test_step_arguments_may_hold_spaces(library: SliLibrary) -> None:
    text = (
        MINIMAL
        + """
  router: {type: nginx}
  prometheus: {url: "http://127.0.0.1:9090"}
  chaos: {slow: {fault: {target: db, delay: 1s}}}
  steps: [weight 10 %, pause for 3 min, analyze 2 minutes, mirror 50 %, chaos slow for 1 min, load 90 s, 100%]
"""
    )
    steps = parse_contract(text, library=library).spec.steps
    assert [s.model_dump(exclude_none=True) for s in steps] == [
        {"kind": "setWeight", "weight": 10},
        {"kind": "pause", "duration": 180},
        {"kind": "analyze", "duration": 120},
        {"kind": "mirror", "percent": 50},
        {"kind": "chaos", "experiment": "slow", "duration": 60},
        {"kind": "load", "duration": 90},
        {"kind": "setWeight", "weight": 100},
    ]
