"""SLI rendering: one query per SLI for every track × source, and no label value can reshape it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import promql_parser
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.contract import Contract, ContractError, SliLibrary, parse_contract
from gate.contract.promql import escape_regex, regex_literal, string_literal
from gate.contract.sli import FORMS

ROOT = Path(__file__).resolve().parents[2]

BASE = """
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: sli}
spec:
  service: checkout
  target: {stable: {url: "http://127.0.0.1:1"}, canary: {url: "http://127.0.0.1:2"}}
  load: {tasks: [{name: home, get: /}]}
"""

HOSTILE = [
    '"',
    "\\",
    '"}',
    "|",
    "\n",
    '" or vector(1) or "',
    '"} or vector(1) #',
    "a|b",
    ".*",
    '\\"',
    "\x00\x07",
    "é ü 日本",
    "}{[]()",
    "`'",
    "$selector",
    "\\n",
    "\t\r",
]


@pytest.fixture(scope="module")
def library() -> SliLibrary:
    return SliLibrary.default()


def _contract(
    library: SliLibrary,
    sources: dict[str, dict[str, str]],
    tracks: dict[str, dict[str, str]],
    service: str = "checkout",
) -> Contract:
    contract = parse_contract(BASE, library=library)
    # Values go in through the model (as from YAML), bypassing only the file format.
    traffic = contract.spec.traffic.model_validate({"sources": sources, "tracks": tracks})
    contract.spec.traffic = traffic
    contract.spec.service = service
    return contract


def _shape(expr: Any) -> list[Any]:
    """The structure of a parsed query: node kinds, functions, groupings, matcher names and ops."""
    out: list[Any] = []

    def visit(node: Any) -> None:
        name = type(node).__name__
        if isinstance(node, promql_parser.VectorSelector):
            out.append((name, node.name, sorted((m.name, str(m.op)) for m in node.matchers.matchers)))
        elif isinstance(node, promql_parser.AggregateExpr):
            out.append((name, str(node.op), node.modifier.labels if node.modifier else None))
        elif isinstance(node, promql_parser.Call):
            out.append((name, node.func.name))
        elif isinstance(node, promql_parser.StringLiteral):
            out.append((name,))
        else:
            out.append((name,))

    promql_parser.walk(expr, visit)
    return out


def _matchers(expr: Any) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []

    def visit(node: Any) -> None:
        if isinstance(node, promql_parser.VectorSelector):
            found.extend((m.name, str(m.op), m.value) for m in node.matchers.matchers)

    promql_parser.walk(expr, visit)
    return found


def test_one_query_covers_every_track_and_source(library: SliLibrary) -> None:
    contract = parse_contract(BASE, library=library)
    rq = library.render("http-latency", contract, form="value", quantile=0.95)
    assert rq.by == ["track", "traffic_source"]
    assert rq.promql.count("http_request_duration_seconds_bucket") == 1
    for track in ("stable", "canary"):
        for source in ("synthetic", "shadow", "production"):
            assert rq.classify({"track": track, "traffic_source": source, "le": "0.1"}) == (track, source)
    assert rq.classify({"track": "other", "traffic_source": "synthetic"}) is None
    assert rq.classify({"track": "canary"}) is None


def test_every_template_renders_every_form_and_parses(library: SliLibrary) -> None:
    contract = parse_contract(BASE, library=library)
    for template in library:
        for form in FORMS[template.kind]:
            rq = library.render(template.name, contract, form=form, quantile=0.9, window="5m")
            promql_parser.parse(rq.promql)
            # Gauge series are raw levels over a range query; everything else uses the window.
            assert ("[5m]" in rq.promql) != (form == "series" and template.kind.startswith("gauge"))
            assert rq.range_query == (form == "series")
            if template.scope == "process":
                assert rq.by == ["track"] and "traffic_source" not in rq.promql
                assert rq.classify({"track": "canary"}) == ("canary", None)


def test_counts_form_tells_errors_from_total(library: SliLibrary) -> None:
    contract = parse_contract(BASE, library=library)
    rq = library.render("http-error-ratio", contract, form="counts")
    assert rq.part_label == "gate_part"
    assert '"errors"' in rq.promql and '"total"' in rq.promql


def test_millisecond_histograms_are_scaled(library: SliLibrary) -> None:
    contract = parse_contract(BASE, library=library)
    value = library.render("istio-latency", contract, quantile=0.99)
    assert value.promql.endswith("* 0.001") and 'destination_service_name="checkout"' in value.promql
    buckets = library.render("istio-latency", contract, form="buckets")
    assert buckets.le_scale == 0.001


def test_unknown_form_and_missing_quantile_are_errors(library: SliLibrary) -> None:
    contract = parse_contract(BASE, library=library)
    with pytest.raises(ValueError, match="no 'series' form"):
        library.render("http-latency", contract, form="series")
    with pytest.raises(ValueError, match="quantile"):
        library.render("http-latency", contract)
    with pytest.raises(KeyError, match="unknown SLI"):
        library.render("nope", contract)


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_label_values_cannot_reshape_a_query(library: SliLibrary, value: str) -> None:
    benign = _contract(
        library,
        {"synthetic": {"src": "a"}, "shadow": {"src": "b"}, "production": {"src": "c"}},
        {"stable": {"t": "s"}, "canary": {"t": "c"}},
    )
    hostile = _contract(
        library,
        {"synthetic": {"src": value}, "shadow": {"src": value + "x"}, "production": {"src": "c"}},
        {"stable": {"t": value}, "canary": {"t": "c"}},
        service=value,
    )
    for name, form in (
        ("http-latency", "value"),
        ("http-error-ratio", "counts"),
        ("istio-latency", "buckets"),
    ):
        good = library.render(name, benign, form=form, quantile=0.95)  # type: ignore[arg-type]
        bad = library.render(name, hostile, form=form, quantile=0.95)  # type: ignore[arg-type]
        parsed = promql_parser.parse(bad.promql)
        assert _shape(parsed) == _shape(promql_parser.parse(good.promql))
        for label, op, text in _matchers(parsed):
            if label == "src" and op == "MatchOp.Re":
                # The union matches exactly the hostile values (Prometheus anchors regexes).
                pattern = re.compile(text)
                assert pattern.fullmatch(value) and pattern.fullmatch(value + "x")
                assert pattern.fullmatch("c") and not pattern.fullmatch(value + "y")
            if label == "destination_service_name":
                assert text == value
        assert bad.classify({"t": value, "src": value}) == ("stable", "synthetic")
        assert bad.classify({"t": value, "src": value + "x"}) == ("stable", "shadow")


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=0, max_size=40))
def test_any_text_is_a_literal(value: str) -> None:
    expr = promql_parser.parse(f"m{{a={string_literal(value)}, b=~{regex_literal([value, 'z'])}}}")
    assert isinstance(expr, promql_parser.VectorSelector)
    [a, b] = expr.matchers.matchers
    assert a.value == value
    assert re.fullmatch(b.value, value) and re.fullmatch(b.value, "z")
    assert re.fullmatch(escape_regex(value), value)


def test_library_files_with_mistakes_report_positions(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(
        "x-latency:\n  kind: latency-histogram\n  unit: seconds\n  promql:\n    buckets: rate(x_bucket{$selector}[1m])\n"
    )
    with pytest.raises(ContractError) as caught:
        SliLibrary.load(tmp_path)
    [problem] = caught.value.problems
    assert (problem.line, problem.path) == (5, "x-latency.promql.buckets")
    assert "one series selector" in problem.message


@pytest.mark.parametrize(
    "part",
    [
        "x{$selector} or vector(1)",
        "x",
        "x{a='b'} $selector",
        "x{$selector, $window}",
        "x{$selector} offset 5m",
        "x{$selector}[5m]",
    ],
)
def test_template_parts_must_be_plain_selectors(part: str) -> None:
    from gate.contract.sli import check_part

    with pytest.raises(ValueError):
        check_part(part)


def test_default_library_is_found_from_the_package() -> None:
    # gate/contract/analyses links to the top-level analyses/, so a built wheel carries the library.
    assert SliLibrary.default_path().resolve() == ROOT / "analyses"
    assert (ROOT / "gate" / "contract" / "analyses").resolve() == ROOT / "analyses"


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_routes_and_selectors_are_literals(library: SliLibrary, value: str) -> None:
    from gate.contract import Objective

    contract = parse_contract(BASE, library=library)
    contract.spec.traffic.selector = {"job": value}
    objective = Objective.model_validate(
        {"sli": "http-latency", "quantile": 0.95, "max": "1s", "route": {"method": "GET", "path": value}}
    )
    rq = library.render(objective, contract)
    matchers = {
        name: text for name, op, text in _matchers(promql_parser.parse(rq.promql)) if op == "MatchOp.Equal"
    }
    assert matchers["job"] == value and matchers["route"] == value and matchers["method"] == "GET"
    benign = Objective.model_validate(
        {"sli": "http-latency", "quantile": 0.95, "max": "1s", "route": {"method": "GET", "path": "/x"}}
    )
    contract.spec.traffic.selector = {"job": "j"}
    assert _shape(promql_parser.parse(rq.promql)) == _shape(
        promql_parser.parse(library.render(benign, contract).promql)
    )
