"""The Prometheus process manager: backfilled data served at fixed times, a live scrape of a real
exporter, a rejected config, and the process gone after stop."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, start_http_server

from gate.drivers.prometheus import PrometheusClient
from gate.drivers.promserver import (
    PrometheusServer,
    PromServerError,
    ScrapeJob,
    backfill_openmetrics,
    scrape_config,
)
from tests.support.ports import free_port
from tests.support.prom import T0, OpenMetrics, backfilled_prometheus, live_prometheus


def test_backfilled_data_is_served_at_fixed_times(tmp_path: Path) -> None:
    om = OpenMetrics()
    om.counter("demo_requests", {"track": "stable"}, [(T0 + i, 10.0 * i) for i in range(120)])
    om.gauge("demo_level", {"track": "stable"}, [(T0 + i, float(i)) for i in range(120)])
    with backfilled_prometheus(om.text(), tmp_path) as server, PrometheusClient(server.url) as client:
        [rate] = client.query("rate(demo_requests_total[1m])", at=T0 + 100)
        assert rate.labels == {"track": "stable"}
        assert rate.value == pytest.approx(10.0)
        [level] = client.query("demo_level", at=T0 + 50)
        assert level.value == 50.0 and level.timestamp == T0 + 50
        pid = server.pid()
        assert pid is not None
    assert not server.running()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_backfill_refuses_bad_text(tmp_path: Path) -> None:
    with pytest.raises(PromServerError, match="promtool could not backfill"):
        backfill_openmetrics("# TYPE x counter\nx_total{ 1 2\n# EOF\n", tmp_path / "data")


def test_rejected_config_starts_nothing(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path / "data", free_port(), config="global: {scrape_interval: banana}\n")
    with pytest.raises(PromServerError, match="promtool rejected"):
        server.start()
    assert not server.running()


def test_live_scrape_of_a_real_exporter(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    hits = Counter("demo_hits", "hits", ["track"], registry=registry)
    hits.labels(track="canary").inc(7)
    port = free_port()
    httpd, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        job = ScrapeJob("demo", [f"127.0.0.1:{port}"], labels={"team": "shop"})
        with (
            live_prometheus(tmp_path, [job], scrape_interval=0.2) as server,
            PrometheusClient(server.url) as client,
        ):
            deadline = time.monotonic() + 15
            found = []
            while time.monotonic() < deadline and not found:
                found = client.query('demo_hits_total{job="demo"}')
                time.sleep(0.1)
            assert found and found[0].value == 7.0 and found[0].labels["team"] == "shop"
            [target] = client.targets()
            assert (target.job, target.health) == ("demo", "up")
            assert target.scrape_interval == pytest.approx(0.2)
            assert [s.value for s in client.up(["demo"])] == [1.0]
            # A reload with a rejected config changes nothing.
            with pytest.raises(PromServerError):
                server.reload("scrape_configs: [{job_name: 3, static_configs: banana}]\n")
            server.reload(scrape_config([job], scrape_interval=0.5))
    finally:
        httpd.shutdown()
        thread.join(timeout=5)
