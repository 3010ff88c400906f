"""`measure` against a real Prometheus holding known data (backfilled with promtool, queried at fixed
times): one query per SLI (counted), the right evidence per track × source, freshness (stale data,
missing series, target down) and hostile label values that cannot reach someone else's series."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gate.contract import parse_contract
from gate.contract.sli import SliLibrary
from gate.drivers.prometheus import PrometheusClient
from gate.drivers.prometheus.measure import measure, selectors_of
from gate.judge.evidence import Counts, Evidence, GaugeSeries, Histogram
from tests.support.prom import T0, OpenMetrics, backfilled_prometheus, latency_points

SECONDS = 300
END = T0 + SECONDS - 1  # the newest sample of healthy series
START = END - 120
BOUNDS = [0.05, 0.1, 0.2, 0.5, 1.0]
# Per second, one request at each latency: stable and canary differ so a mix-up would show.
LATENCIES = {
    "stable": [0.03, 0.07, 0.15],
    "canary": [0.07, 0.15, 0.3, 0.7],
}
HOSTILE = 'checkout"} or vector(1) or {__name__=~".+'


def _service(om: OpenMetrics, service: str, *, sources: tuple[str, ...], canary_until: int = SECONDS) -> None:
    """One service's series: every track × source histogram and counters, goroutines per process."""
    for track in ("stable", "canary"):
        seconds = canary_until if track == "canary" else SECONDS
        job = f"{service}-{track}"
        target = {"job": job, "instance": f"10.0.0.{1 if track == 'stable' else 2}:8080"}
        for source in sources:
            labels = {"service": service, "track": track, "traffic_source": source, **target}
            om.histogram(
                "http_request_duration_seconds",
                labels,
                BOUNDS,
                latency_points(BOUNDS, LATENCIES[track], T0, seconds),
            )
            errors_per_s = 0 if track == "stable" else 1
            om.counter(
                "http_requests", {**labels, "code": "200"}, [(T0 + s, 9.0 * (s + 1)) for s in range(seconds)]
            )
            if errors_per_s:
                om.counter(
                    "http_requests",
                    {**labels, "code": "500"},
                    [(T0 + s, float(s + 1)) for s in range(seconds)],
                )
        growth = 0.0 if track == "stable" else 0.5
        om.gauge(
            "go_goroutines",
            {"service": service, "track": track, **target},
            [(T0 + s, 100.0 + growth * s) for s in range(seconds)],
        )


def _up(om: OpenMetrics, service: str, canary_up_until: int = SECONDS) -> None:
    for track in ("stable", "canary"):
        job = f"{service}-{track}"
        target = {"job": job, "instance": f"10.0.0.{1 if track == 'stable' else 2}:8080"}
        until = canary_up_until if track == "canary" else SECONDS
        om.gauge("up", target, [(T0 + s, 1.0 if s < until else 0.0) for s in range(SECONDS)])


def _dataset() -> str:
    om = OpenMetrics()
    _service(om, "checkout", sources=("synthetic", "shadow", "production"))
    _service(om, "stalled", sources=("synthetic", "production"), canary_until=200)  # canary stops at T0+199
    _service(om, "flaky", sources=("synthetic", "production"), canary_until=SECONDS - 30)
    _service(om, HOSTILE, sources=("synthetic",))
    _service(om, "st.*", sources=("synthetic",))
    _up(om, "checkout")
    _up(om, "stalled")
    _up(om, "flaky", canary_up_until=SECONDS - 30)  # the canary target went down 30 s before the end
    return om.text()


@pytest.fixture(scope="module")
def prom(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with backfilled_prometheus(_dataset(), tmp_path_factory.mktemp("prom")) as server:
        yield server.url


SLIS = """
  slis:
    http-latency:
      kind: latency-histogram
      unit: seconds
      serviceLabel: service
      promql: {buckets: 'http_request_duration_seconds_bucket{$selector}'}
    http-error-ratio:
      kind: counter-ratio
      unit: ratio
      serviceLabel: service
      promql:
        errors: 'http_requests_total{$selector, code=~"5.."}'
        total: 'http_requests_total{$selector}'
    goroutines:
      kind: gauge-trend
      unit: count
      scope: process
      serviceLabel: service
      promql: {gauge: 'go_goroutines{$selector}'}
"""

OBJECTIVES = """
  objectives:
    - {sli: http-latency, quantile: 0.95, max: 220ms, maxIncrease: 10%}
    - {sli: http-latency, quantile: 0.99, max: 2s, sources: [synthetic]}
    - {sli: http-error-ratio, max: 1%}
    - {sli: goroutines, maxGrowth: 0/min}
"""


def _contract(service: str, *, objectives: str = OBJECTIVES, traffic: str = "") -> str:
    return f"""
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: measured}}
spec:
  service: {_yaml_string(service)}
  target:
    stable: {{url: http://127.0.0.1:1}}
    canary: {{url: http://127.0.0.1:2}}
  prometheus: {{url: http://127.0.0.1:9090, scrapeInterval: 1s}}
  load: {{tasks: [{{name: home, get: /}}]}}
  router: {{type: nginx}}
  steps: [mirror 10%, 20%]
{traffic}{SLIS}{objectives}"""


def _yaml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _measure(
    url: str, text: str, start: float = START, end: float = END
) -> tuple[Evidence, PrometheusClient]:
    contract = parse_contract(text, filename="<test>")
    client = PrometheusClient(url, retries=0)
    evidence = measure(contract, SliLibrary({}), client, start, end)
    return evidence, client


def test_one_query_per_sli_and_the_right_evidence(prom: str) -> None:
    evidence, client = _measure(prom, _contract("checkout"))
    # 3 SLIs (the two latency objectives share one query) + 1 freshness probe + 1 `up` lookup.
    assert client.query_count == 5
    ev = evidence
    for source in ("synthetic", "shadow", "production"):
        stable = ev.get("http-latency", source, "stable")
        canary = ev.get("http-latency", source, "canary")
        assert isinstance(stable, Histogram) and isinstance(canary, Histogram)
        assert stable.bounds[-1] == float("inf") and stable.bounds[:-1] == BOUNDS
        assert not (stable.stale or stable.missing or canary.stale or canary.missing), (
            stable.note + canary.note
        )
        # 120 s window: 3 requests/s on stable, 4/s on canary (increase() extrapolates a little).
        assert stable.counts[-1] == pytest.approx(3 * 120, rel=0.02)
        assert canary.counts[-1] == pytest.approx(4 * 120, rel=0.02)
        # Stable: 1/3 of requests at or below 50 ms; canary: none.
        assert stable.counts[0] == pytest.approx(120, rel=0.02)
        assert canary.counts[0] == 0
        ratio = ev.get("http-error-ratio", source, "canary")
        assert isinstance(ratio, Counts)
        assert ratio.errors == pytest.approx(120, rel=0.02) and ratio.total == pytest.approx(1200, rel=0.02)
        stable_ratio = ev.get("http-error-ratio", source, "stable")
        assert isinstance(stable_ratio, Counts) and stable_ratio.errors == 0 and stable_ratio.total > 0
        # Process-wide gauges apply to every source of the objective.
        goroutines = ev.get("goroutines", source, "canary")
        assert isinstance(goroutines, GaugeSeries)
        assert goroutines.points[0] == (START, 100.0 + 0.5 * (START - T0))
        assert goroutines.points[-1] == (END, 100.0 + 0.5 * (END - T0))
        assert len(goroutines.points) == 121
    assert evidence.slis["http-latency"]["synthetic"]["stable"].window.start == START


def test_batching_does_not_grow_with_objectives(prom: str) -> None:
    many = "\n  objectives:\n" + "".join(
        f"    - {{sli: http-latency, quantile: 0.{q}, max: 2s}}\n" for q in range(50, 100, 5)
    )
    _, client = _measure(prom, _contract("checkout", objectives=many))
    assert client.query_count == 1 + 2


def test_stale_data_is_marked_not_evidence(prom: str) -> None:
    # The canary's series stop at T0+199; asked at END (100 s later, inside Prometheus's 5 m lookback,
    # so the instant query still answers with the old value).
    evidence, _ = _measure(prom, _contract("stalled"))
    canary = evidence.get("http-latency", "synthetic", "canary")
    stable = evidence.get("http-latency", "synthetic", "stable")
    assert canary.stale and not canary.missing
    assert "100s old" in canary.note and "scrape interval" in canary.note
    assert not stable.stale and stable.note == ""
    assert evidence.get("goroutines", "synthetic", "canary").stale
    assert evidence.get("http-error-ratio", "production", "canary").stale


def test_missing_series_are_marked_missing(prom: str) -> None:
    # "stalled" has no shadow traffic at all.
    evidence, _ = _measure(prom, _contract("stalled"))
    for track in ("stable", "canary"):
        item = evidence.get("http-latency", "shadow", track)
        assert isinstance(item, Histogram) and item.missing
        assert "no data for http-latency" in item.note and "shadow" in item.note
        counts = evidence.get("http-error-ratio", "shadow", track)
        assert isinstance(counts, Counts) and counts.missing


def test_a_down_target_is_not_evidence(prom: str) -> None:
    # The canary target answered up == 0 for the last 30 s; its last samples are 30 s old.
    evidence, _ = _measure(prom, _contract("flaky"))
    canary = evidence.get("http-latency", "production", "canary")
    assert canary.stale
    assert "flaky-canary/10.0.0.2:8080 is down (up == 0)" in canary.note
    assert not evidence.get("http-latency", "production", "stable").stale


def test_a_window_after_the_series_died_is_missing_with_when_it_was_last_seen(prom: str) -> None:
    # Ten minutes after the data ends, nothing is within Prometheus's lookback: no series at all.
    evidence, client = _measure(prom, _contract("checkout"), start=END + 540, end=END + 600)
    item = evidence.get("http-latency", "synthetic", "canary")
    assert item.missing
    assert client.query_count == 4  # no job seen, so no `up` lookup


def test_hostile_service_name_reads_exactly_its_own_series(prom: str) -> None:
    evidence, _ = _measure(prom, _contract(HOSTILE))
    item = evidence.get("http-latency", "synthetic", "stable")
    # Its own series exist (label value = the hostile text): read them, and only them.
    assert isinstance(item, Histogram) and not item.missing
    assert item.counts[-1] == pytest.approx(3 * 120, rel=0.02)
    # The injection would have pulled in every service (or a constant vector(1)); it did not.
    assert evidence.get("http-latency", "production", "stable").missing


def test_hostile_values_that_match_nothing_give_no_data(prom: str) -> None:
    for hostile in ['x"}) or sum(http_requests_total', "checkout\\", "checkout\n", ".*", "checkout|stalled"]:
        evidence, _ = _measure(prom, _contract(hostile))
        for source in ("synthetic", "shadow", "production"):
            for track in ("stable", "canary"):
                assert evidence.get("http-latency", source, track).missing, (hostile, source, track)


def test_regex_unions_escape_track_values(prom: str) -> None:
    # Track values differ, so the query selects both with one =~ union; "st.*" must not act as a regex.
    traffic = "  traffic:\n    tracks:\n      stable: {track: 'st.*'}\n      canary: {track: canary}\n"
    text = _contract("checkout", traffic=traffic)
    contract = parse_contract(text, filename="<test>")
    rendered = SliLibrary({}).render("http-latency", contract=contract, window=60, form="buckets")
    [selector] = selectors_of(rendered.promql)
    assert 'track=~"canary|st\\\\.\\\\*"' in selector
    evidence, _ = _measure(prom, text)
    assert evidence.get("http-latency", "synthetic", "stable").missing
    assert not evidence.get("http-latency", "synthetic", "canary").missing


def test_a_histogram_without_its_inf_bucket_is_missing(prom: str) -> None:
    slis = SLIS.replace(
        "{buckets: 'http_request_duration_seconds_bucket{$selector}'}",
        """{buckets: 'http_request_duration_seconds_bucket{$selector, le!="+Inf"}'}""",
    )
    evidence, _ = _measure(prom, _contract("checkout").replace(SLIS, slis))
    item = evidence.get("http-latency", "synthetic", "stable")
    assert item.missing and 'no le="+Inf" bucket' in item.note


def test_measure_refuses_an_empty_window(prom: str) -> None:
    with pytest.raises(ValueError, match="start < end"):
        _measure(prom, _contract("checkout"), start=END, end=END)


def test_up_lookup_matches_job_names_literally(prom: str) -> None:
    with PrometheusClient(prom, retries=0) as client:
        assert client.up([".*"], at=END) == []
        assert client.up(["checkout-.*", 'x"} or up{job=~".+'], at=END) == []
        found = client.up(["checkout-stable", HOSTILE + "-stable"], at=END)
    assert [s.labels["job"] for s in found] == ["checkout-stable"]


def test_data_of_unknown_age_is_not_evidence(prom: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # Should the freshness probe find no sample time, the data is not known to be fresh: stale.
    import importlib

    # (the package exports the function `measure`, which hides the module of the same name)
    measure_module = importlib.import_module("gate.drivers.prometheus.measure")

    monkeypatch.setattr(measure_module, "_freshness", lambda *args: measure_module._Fresh())
    evidence, _ = _measure(prom, _contract("checkout"))
    item = evidence.get("http-latency", "synthetic", "stable")
    assert item is not None and item.stale and not item.missing
    assert "age of the data could not be established" in item.note


def test_a_window_shorter_than_two_scrapes_says_so(prom: str) -> None:
    evidence, _ = _measure(prom, _contract("checkout"), start=END - 0.5, end=END)
    item = evidence.get("http-latency", "synthetic", "stable")
    assert item is not None and item.missing
    assert "shorter than two scrape intervals" in item.note


def test_the_judge_reads_this_evidence_and_never_passes_stale_data(prom: str) -> None:
    from gate.judge import Status, judge

    def verdicts(service: str) -> dict[tuple[str, str], Status]:
        contract = parse_contract(_contract(service), filename="<test>")
        with PrometheusClient(prom, retries=0) as client:
            evidence = measure(contract, SliLibrary({}), client, START, END)
        judgement = judge(contract.spec.objectives, evidence, contract.spec.policy, final=True)
        return {(v.objective, v.source): v.status for v in judgement.verdicts}

    healthy = verdicts("checkout")
    # The canary's p95 (in the 0.5-1 s bucket) is far above 220 ms on every source: measured, failed.
    assert {healthy[("http-latency-p95", s)] for s in ("synthetic", "shadow", "production")} == {Status.FAIL}
    stalled = verdicts("stalled")
    # Stale canary data and missing shadow data: never a pass, whatever the numbers.
    assert stalled[("http-latency-p95", "synthetic")] == Status.INCONCLUSIVE
    assert stalled[("http-latency-p95", "shadow")] == Status.INCONCLUSIVE
    assert Status.PASS not in set(stalled.values())
