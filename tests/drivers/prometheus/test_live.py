"""`measure` against a Prometheus scraping real instrumented processes: fresh data is evidence; when the
canary's target dies, its data is marked stale with the reason — the target is down (up == 0) — and is
never evidence."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIServer

import pytest
from prometheus_client import CollectorRegistry, Histogram, start_http_server

from gate.contract import parse_contract
from gate.contract.sli import SliLibrary
from gate.drivers.prometheus import PrometheusClient, measure
from gate.drivers.promserver import PrometheusServer, PromServerError, ScrapeJob, scrape_config
from gate.judge.evidence import Histogram as HistogramItem
from tests.support.ports import free_port
from tests.support.prom import prometheus_factory

__all__ = ["prometheus_factory"]  # the fixture, imported for pytest

INTERVAL = 0.5

CONTRACT = """
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: shop}
spec:
  target:
    stable: {url: http://127.0.0.1:1}
    canary: {url: http://127.0.0.1:2}
  prometheus: {scrapeInterval: 500ms}
  load: {tasks: [{name: home, get: /}]}
  objectives:
    - {sli: http-latency, quantile: 0.95, max: 220ms, sources: [synthetic]}
"""


class Exporter:
    """A real /metrics endpoint with the duration histogram of one track."""

    def __init__(self, track: str) -> None:
        self.registry = CollectorRegistry()
        self.histogram = Histogram(
            "http_request_duration_seconds",
            "duration",
            ["track", "traffic_source"],
            buckets=[0.05, 0.1, 0.2],
            registry=self.registry,
        )
        self.child = self.histogram.labels(track=track, traffic_source="synthetic")
        self.port = free_port()
        self.server: WSGIServer
        self.thread: threading.Thread
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def exporters() -> Iterator[dict[str, Exporter]]:
    made = {track: Exporter(track) for track in ("stable", "canary")}
    try:
        yield made
    finally:
        for exporter in made.values():
            exporter.stop()


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_fresh_evidence_then_a_dead_target_is_missing(
    exporters: dict[str, Exporter], prometheus_factory: Callable[..., PrometheusServer]
) -> None:
    jobs = [
        ScrapeJob(f"shop-{t}", [f"127.0.0.1:{e.port}"], labels={"team": "shop"}) for t, e in exporters.items()
    ]
    server = prometheus_factory(jobs=jobs, scrape_interval=INTERVAL)
    contract = parse_contract(CONTRACT, filename="<test>")
    library = SliLibrary.default()
    with PrometheusClient(server.url, retries=1) as client:
        # Requests arrive while Prometheus scrapes, so the window sees an increase.
        def observed() -> bool:
            for exporter in exporters.values():
                exporter.child.observe(0.07)
            found = client.query('http_request_duration_seconds_count{traffic_source="synthetic"}')
            return len(found) == 2 and all(s.value >= 5 for s in found)

        _wait(observed, "a few scrapes with requests")
        # The scrape config took: jobs, target labels, interval; both targets up.
        targets = sorted(client.targets(), key=lambda t: t.job)
        assert [(t.job, t.health, t.labels["team"]) for t in targets] == [
            ("shop-canary", "up", "shop"),
            ("shop-stable", "up", "shop"),
        ]
        assert targets[0].scrape_interval == pytest.approx(INTERVAL)
        assert [s.value for s in client.up(["shop-stable", "shop-canary"])] == [1.0, 1.0]
        # A reload with a config promtool rejects changes nothing; a good one is applied.
        with pytest.raises(PromServerError, match="promtool rejected"):
            server.reload("scrape_configs: [{job_name: 3, static_configs: banana}]\n")
        server.reload(scrape_config(jobs, scrape_interval=INTERVAL))

        def fresh() -> bool:
            now = time.time()
            evidence = measure(contract, library, client, now - 3, now)
            items = [evidence.get("http-latency", "synthetic", t) for t in ("stable", "canary")]
            return all(isinstance(i, HistogramItem) and not (i.stale or i.missing) for i in items)

        # Bounded retry: on a loaded machine a scrape can land just after the query's time.
        _wait(fresh, "fresh evidence on both tracks")

        exporters["canary"].stop()
        _wait(lambda: [s.value for s in client.up(["shop-canary"])] == [0.0], "up == 0 for the canary")
        now = time.time()
        evidence = measure(contract, library, client, now - 10, now)
        canary = evidence.get("http-latency", "synthetic", "canary")
        stable = evidence.get("http-latency", "synthetic", "stable")
    # Samples scraped before it died are in the window, but they are not evidence any more.
    assert canary is not None and canary.stale
    assert "shop-canary/127.0.0.1:" in canary.note and "is down (up == 0)" in canary.note
    assert stable is not None and not stable.missing
