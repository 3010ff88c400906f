"""`gate learn` against a real Prometheus holding known production traffic: the expected weights and
coverage report, only the stable track's production counted, and `--write` changing nothing in the
file but the weight values (comments, quoting, flow and block style kept)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gate.cli.main import app
from gate.contract import load_contract, parse_contract
from gate.contract.sli import SliLibrary
from gate.drivers.learn import (
    LearnError,
    RouteTraffic,
    bucket_quantile,
    largest_remainder,
    learn,
    match_route,
    rewrite_weights,
    route_pattern,
)
from gate.drivers.prometheus import PrometheusClient
from gate.judge.evidence import Histogram
from tests.support.ports import free_port
from tests.support.prom import T0, OpenMetrics, backfilled_prometheus, latency_points

SECONDS = 300
END = T0 + SECONDS - 1
BOUNDS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0]
# Stable production, per second: one request at each latency listed (20 requests/s in all).
PRODUCTION = {
    ("GET", "/orders"): [0.08, 0.1, 0.12, 0.14, 0.3],  # 25 %
    ("POST", "/orders"): [0.3, 0.35, 0.45],  # 15 %, the slowest
    ("GET", "/catalog/{id}"): [0.008] * 10,  # 50 %
    ("GET", "/health"): [0.004, 0.004],  # 10 %, no task touches it
}
# Traffic that must NOT count: the canary's production and stable's synthetic load, with other mixes.
OTHER = {
    ("canary", "production"): {("GET", "/v1/legacy"): [0.01] * 50},
    ("stable", "synthetic"): {("POST", "/orders"): [0.3] * 40},
}


def _dataset() -> str:
    om = OpenMetrics()
    for track, source, mix in [
        ("stable", "production", PRODUCTION),
        *[(t, s, m) for (t, s), m in OTHER.items()],
    ]:
        for (method, route), latencies in mix.items():
            labels = {"track": track, "traffic_source": source, "route": route, "method": method}
            om.histogram(
                "http_request_duration_seconds",
                labels,
                BOUNDS,
                latency_points(BOUNDS, latencies, T0, SECONDS),
            )
    return om.text()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backfilled_prometheus(_dataset(), tmp_path_factory.mktemp("prom")) as server:
        yield server.url


CONTRACT = """\
# The checkout contract. Comments must survive `gate learn --write`.
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: checkout}
spec:
  target:
    stable: {url: http://127.0.0.1:1}
    canary: {url: http://127.0.0.1:2}
  prometheus: {url: PROMETHEUS, scrapeInterval: 1s}
  load:
    users: 5          # per track
    tasks:            # the scenario
      - {name: place-order, weight: 3, post: /orders, json: {sku: A-1, qty: 1}}   # the money path
      - name: list-orders    # first page
        weight: 1            # was 1 before learning
        get: /orders
      - {name: deep-page, weight: 1,   get: "/orders?offset=10000"}
      - name: item
        get: /catalog/42     # no weight yet: the default
      - {name: legacy, weight: 2, get: /v1/legacy}   # production stopped calling this
  objectives:
    - {sli: http-latency, quantile: 0.95, max: 220ms, sources: [synthetic]}
"""

EXPECTED_WEIGHTS = {"place-order": 17, "list-orders": 14, "deep-page": 14, "item": 55, "legacy": 0}


def test_learns_weights_and_reports_coverage(prom: str) -> None:
    contract = parse_contract(CONTRACT.replace("PROMETHEUS", prom), filename="<test>")
    with PrometheusClient(prom, retries=0) as client:
        report = learn(contract, SliLibrary.default(), client, END - 120, END)
    assert report.queries == 1
    assert report.total_requests == pytest.approx(20 * 120, rel=0.02)
    shares = {(r.method, r.route): r.share for r in report.routes}
    assert shares == pytest.approx(
        {
            ("GET", "/orders"): 0.25,
            ("POST", "/orders"): 0.15,
            ("GET", "/catalog/{id}"): 0.5,
            ("GET", "/health"): 0.1,
        },
        abs=0.005,
    )
    assert report.coverage == pytest.approx(0.9, abs=0.005)
    assert [(r.method, r.route) for r in report.uncovered] == [("GET", "/health")]
    assert [t.name for t in report.unused_tasks] == ["legacy"]
    assert {t.name: t.learned for t in report.tasks} == EXPECTED_WEIGHTS
    slowest = report.slowest
    assert (slowest[0].method, slowest[0].route) == ("POST", "/orders")
    assert 0.25 < (slowest[0].p95 or 0) <= 0.5  # inside the bucket holding 0.45 s
    catalog = report.routes[0]
    assert catalog.route == "/catalog/{id}" and catalog.covered_by == ("item",)
    # Every request at 8 ms, in the (5 ms, 10 ms] bucket: interpolated like histogram_quantile.
    assert catalog.p50 == pytest.approx(0.0075) and catalog.p95 == pytest.approx(0.00975)
    by_route = {r.route: r.covered_by for r in report.routes if r.method == "GET"}
    assert by_route["/orders"] == ("list-orders", "deep-page")
    assert report.mix_distance_after < 0.02 < report.mix_distance_before
    # The quantiles agree with Prometheus's own histogram_quantile on the same buckets.
    with PrometheusClient(prom, retries=0) as client:
        theirs = client.query(
            "histogram_quantile(0.95, sum by (le, route, method) (increase("
            'http_request_duration_seconds_bucket{track="stable", traffic_source="production"}[2m])))',
            at=END,
        )
    ours = {(r.method, r.route): r.p95 for r in report.routes}
    assert len(theirs) == 4
    for sample in theirs:
        assert ours[(sample.labels["method"], sample.labels["route"])] == pytest.approx(sample.value)


def test_cli_write_changes_only_the_weights(prom: str, tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    original = CONTRACT.replace("PROMETHEUS", prom)
    path.write_text(original)
    result = CliRunner().invoke(app, ["learn", str(path), "--at", str(END), "--window", "2m", "--write"])
    assert result.exit_code == 0, result.output
    assert "covers 90.0% of production" in result.output
    assert "GET /health (10.0%)" in result.output
    written = path.read_text()
    expected = (
        original.replace("weight: 3, post", "weight: 17, post")
        .replace("weight: 1            #", "weight: 14            #")
        .replace("weight: 1,   get", "weight: 14,   get")
        .replace("      - name: item\n", "      - weight: 55\n        name: item\n")
        .replace("weight: 2, get: /v1/legacy", "weight: 0, get: /v1/legacy")
    )
    assert written == expected
    reloaded = load_contract(path)
    assert reloaded.spec.load is not None
    assert {t.name: t.weight for t in reloaded.spec.load.tasks} == EXPECTED_WEIGHTS
    # Learning again from the same production changes nothing.
    again = CliRunner().invoke(app, ["learn", str(path), "--at", str(END), "--window", "2m", "--write"])
    assert again.exit_code == 0 and path.read_text() == expected


def test_cli_json_and_exit_codes(prom: str, tmp_path: Path) -> None:
    path = tmp_path / "checkout.yaml"
    path.write_text(CONTRACT.replace("PROMETHEUS", prom))
    runner = CliRunner()
    result = runner.invoke(app, ["learn", str(path), "--at", str(END), "--window", "2m", "--format", "json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["written"] is False and doc["queries"] == 1
    assert doc["uncovered"] == [{"method": "GET", "route": "/health", "share": pytest.approx(0.1, abs=0.005)}]
    assert {t["name"]: t["learnedWeight"] for t in doc["tasks"]} == EXPECTED_WEIGHTS
    unchanged = path.read_text()
    # No production traffic in the window: nothing to learn, nothing written.
    empty = runner.invoke(app, ["learn", str(path), "--at", str(T0 - 3600), "--window", "10m", "--write"])
    assert empty.exit_code == 3 and "no production traffic" in empty.output
    assert path.read_text() == unchanged
    # Prometheus unreachable.
    down = runner.invoke(
        app, ["learn", str(path), "--prometheus", f"http://127.0.0.1:{free_port()}", "--at", str(END)]
    )
    assert down.exit_code == 4 and "cannot read Prometheus" in down.output
    # An invalid contract: where and what.
    bad = tmp_path / "bad.yaml"
    bad.write_text(CONTRACT.replace("weight: 3,", "weight: lots,").replace("PROMETHEUS", prom))
    invalid = runner.invoke(app, ["learn", str(bad), "--at", str(END)])
    assert invalid.exit_code == 2 and "bad.yaml:13" in invalid.output


def test_a_scenario_touching_no_production_route_learns_nothing(prom: str, tmp_path: Path) -> None:
    path = tmp_path / "legacy.yaml"
    text = CONTRACT.replace("PROMETHEUS", prom)
    head, _, _ = text.partition("    tasks:")
    path.write_text(
        head
        + "    tasks: [{name: legacy, get: /v1/legacy}]\n  objectives:\n"
        + text.split("  objectives:\n")[1]
    )
    result = CliRunner().invoke(app, ["learn", str(path), "--at", str(END), "--window", "2m", "--write"])
    assert result.exit_code == 3 and "touches none of production's routes" in result.output
    assert "weight" not in path.read_text().split("tasks:")[1].split("objectives")[0]


# ---- pure parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("route", "path", "hit"),
    [
        ("/orders/{id}", "/orders/42", True),
        ("/orders/{id}", "/orders/42/items", False),
        ("/orders/:id", "/orders/42", True),
        ("/files/<path:rest>", "/files/a", True),
        ("/static/{path:path}", "/static/a/b.css", True),
        ("/orders", "/orders", True),
        ("/a.b", "/aXb", False),  # dots are literal
        ("other", "/other", False),
    ],
)
def test_route_templates(route: str, path: str, hit: bool) -> None:
    pattern = route_pattern(route)
    assert (pattern is not None and pattern.fullmatch(path) is not None) == hit


def test_the_most_specific_route_wins() -> None:
    routes = [
        RouteTraffic("GET", "/orders/{id}", 1, 0.5, None, None),
        RouteTraffic("GET", "/orders/new", 1, 0.5, None, None),
    ]
    assert match_route("get", "/orders/new?x=1", routes) == routes[1]
    assert match_route("GET", "/orders/7", routes) == routes[0]
    assert match_route("POST", "/orders/7", routes) is None


def test_bucket_quantile_interpolates_like_prometheus() -> None:
    bounds = [0.1, 0.2, float("inf")]
    assert bucket_quantile(0.5, bounds, [50, 100, 100]) == pytest.approx(0.1)
    assert bucket_quantile(0.75, bounds, [50, 100, 100]) == pytest.approx(0.15)
    assert bucket_quantile(0.99, bounds, [0, 0, 10]) == 0.2  # in +Inf: the highest finite bound
    assert bucket_quantile(0.5, bounds, [0, 0, 0]) is None


def test_largest_remainder_keeps_every_used_route() -> None:
    assert largest_remainder({0: 0.999, 1: 0.001, 2: 0.0}, 100) == {0: 99, 1: 1, 2: 0}
    assert sum(largest_remainder({i: 1 / 7 for i in range(7)}, 100).values()) == 100


def test_rewrite_refuses_what_it_cannot_find() -> None:
    with pytest.raises(LearnError, match=r"spec\.load\.tasks"):
        rewrite_weights("spec: {}\n", {0: 1})


def test_route_objectives_are_measured_and_filed_apart(prom: str) -> None:
    # (Here because this module's Prometheus holds route-labelled traffic.)
    from gate.drivers.prometheus import evidence_key, measure

    text = CONTRACT.replace("PROMETHEUS", prom).replace(
        "    - {sli: http-latency, quantile: 0.95, max: 220ms, sources: [synthetic]}\n",
        "    - {sli: http-latency, quantile: 0.95, max: 220ms, sources: [synthetic]}\n"
        "    - {sli: http-latency, quantile: 0.95, max: 1s, sources: [synthetic], route: {method: POST, path: /orders}}\n"
        "    - {sli: http-latency, quantile: 0.99, max: 2s, sources: [synthetic], route: {method: GET, path: /orders}}\n",
    )
    contract = parse_contract(text, filename="<test>")
    with PrometheusClient(prom, retries=0) as client:
        evidence = measure(contract, SliLibrary.default(), client, END - 120, END)
    # One query per distinct series set, + the probe (these series carry no job label: no `up` lookup).
    assert client.query_count == 3 + 1
    post_key, get_key = (evidence_key(o) for o in contract.spec.objectives[1:])
    assert post_key.startswith("http-latency:POST-orders-") and get_key.startswith("http-latency:GET-orders-")
    assert set(evidence.slis) == {"http-latency", post_key, get_key}
    post = evidence.get(post_key, "synthetic", "stable")
    get = evidence.get(get_key, "synthetic", "stable")
    everything = evidence.get("http-latency", "synthetic", "stable")
    assert post is not None and get is not None and everything is not None
    assert isinstance(post, Histogram) and post.counts[-1] == pytest.approx(40 * 120, rel=0.02)
    assert get.missing  # stable's synthetic load never calls GET /orders
    assert isinstance(everything, Histogram) and everything.counts[-1] == pytest.approx(40 * 120, rel=0.02)


def test_rewrite_refuses_hostile_yaml() -> None:
    with pytest.raises(LearnError, match="cannot read the contract"):
        rewrite_weights("a: &x [1]\nb: *x\n", {0: 1})


def test_evidence_keys_keep_routes_apart() -> None:
    from gate.contract.models import Objective, Route
    from gate.drivers.prometheus import evidence_key

    keys = {
        evidence_key(Objective(sli="http-latency", max=1.0, route=Route(method=m, path=p)))
        for m, p in [
            ("GET", "/orders/{id}"),
            ("GET", "/orders/id"),
            (None, "/orders/id"),
            ("POST", "/orders/id"),
        ]
    }
    assert len(keys) == 4
    assert evidence_key(Objective(sli="http-latency", max=1.0)) == "http-latency"


def test_rewrite_replaces_quoted_and_commented_weights_in_place() -> None:
    text = (
        "spec:\n  load:\n    tasks:\n"
        "      - {name: a, weight: '3', get: /a}   # a\n"
        '      - name: b\n        weight: "12" # b\n        get: /b\n'
        "      - {name: c, weight: 1}\n"
    )
    assert rewrite_weights(text, {0: 40, 1: 5, 2: 55}) == (
        "spec:\n  load:\n    tasks:\n"
        "      - {name: a, weight: 40, get: /a}   # a\n"
        "      - name: b\n        weight: 5 # b\n        get: /b\n"
        "      - {name: c, weight: 55}\n"
    )
