"""`recoverWithin` objectives read their SLI over time: ONE range query (p99 per scrape step, grouped by
track and source) against a real Prometheus holding a fault's latency spike, and the judge times the
recovery from it."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import replace

import pytest

from gate.contract import parse_contract
from gate.contract.sli import SliLibrary
from gate.drivers.prometheus import PrometheusClient, measure, recovery_key
from gate.judge import FaultWindow, GaugeSeries, Status, judge
from gate.judge.spec import objective_spec
from tests.support.prom import T0, OpenMetrics, backfilled_prometheus

SECONDS = 260
BOUNDS = [0.1, 0.5, 1.0, 2.5, 5.0]
FAULT = T0 + 100  # the fault is injected here
START, END = T0 + 90, T0 + 200


def _spike(om: OpenMetrics, service: str, slow_until: int) -> None:
    """10 requests/s per track: 50 ms, except on the canary from FAULT until `slow_until` (3 s each)."""
    for track in ("stable", "canary"):
        counts = [0.0] * (len(BOUNDS) + 1)
        total = 0.0
        points = []
        for s in range(SECONDS):
            slow = track == "canary" and FAULT - T0 <= s < slow_until - T0
            latency = 3.0 if slow else 0.05
            for i, edge in enumerate([*BOUNDS, math.inf]):
                if latency <= edge:
                    counts[i] += 10
            total += 10 * latency
            points.append((T0 + s, list(counts), total))
        labels = {"service": service, "track": track, "traffic_source": "synthetic", "job": service}
        om.histogram("http_request_duration_seconds", labels, BOUNDS, points)


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    om = OpenMetrics()
    _spike(om, "quick", slow_until=T0 + 118)  # the breaker opens after 18 s
    _spike(om, "late", slow_until=T0 + 145)  # after 45 s: too late for 30 s
    with backfilled_prometheus(om.text(), tmp_path_factory.mktemp("prom")) as server:
        yield server.url


def _contract(service: str) -> str:
    return f"""
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: recovery}}
spec:
  service: {service}
  target:
    stable: {{url: http://127.0.0.1:1}}
    canary: {{url: http://127.0.0.1:2}}
  prometheus: {{url: http://127.0.0.1:9090, scrapeInterval: 1s}}
  load: {{tasks: [{{name: home, get: /}}]}}
  router: {{type: nginx}}
  chaos:
    risk-api-slow: {{fault: {{target: risk-api, delay: 3s}}}}
  steps: [{{chaos: risk-api-slow, for: 2m}}]
  slis:
    http-latency:
      kind: latency-histogram
      unit: seconds
      serviceLabel: service
      promql: {{buckets: 'http_request_duration_seconds_bucket{{$selector}}'}}
  objectives:
    - {{sli: http-latency, quantile: 0.99, max: 2.1s, during: risk-api-slow, recoverWithin: 30s,
        sources: [synthetic], critical: true}}
"""


@pytest.mark.parametrize(("service", "status", "recovered"), [("quick", "pass", 18), ("late", "fail", 45)])
def test_range_query_and_recovery_time(prom: str, service: str, status: str, recovered: float) -> None:
    contract = parse_contract(_contract(service), filename="<test>")
    objective = contract.spec.objectives[0]
    with PrometheusClient(prom, retries=0) as client:
        evidence = measure(contract, SliLibrary({}), client, START, END)
        # The series query (range, p99 per step, by track and source) + freshness + `up`: no buckets query.
        assert client.query_count == 3
    key = recovery_key(objective)
    assert key == "http-latency:p99-over-time" and "http-latency" not in evidence.slis
    canary = evidence.get(key, "synthetic", "canary")
    assert isinstance(canary, GaugeSeries) and not (canary.missing or canary.stale), canary.note
    times = [t for t, _ in canary.points]
    assert times[0] == START and times[-1] == END and len(times) == END - START + 1  # step = 1 s scrape
    # Before the fault p99 is under 100 ms; during it, in the (2.5 s, 5 s] bucket.
    assert dict(canary.points)[FAULT - 5] <= 0.1
    assert dict(canary.points)[FAULT + 10] > 2.5
    stable = evidence.get(key, "synthetic", "stable")
    assert isinstance(stable, GaugeSeries) and max(v for _, v in stable.points) <= 0.1

    spec = replace(objective_spec(objective, "seconds"), sli=key)
    with_fault = evidence.model_copy(update={"chaos": {"risk-api-slow": FaultWindow(start=FAULT, end=END)}})
    verdict = judge([spec], with_fault, contract.spec.policy, final=True).verdicts[0]
    assert verdict.status == Status(status), verdict.reason
    # The 4 s rate window makes the measured recovery late by up to 4 s, never early.
    assert recovered <= verdict.numbers["recovery_time"] <= recovered + 4, verdict.reason
    assert "after the fault started (bound 30 s)" in verdict.reason
