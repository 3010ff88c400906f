"""The Prometheus process manager: backfilled data served at fixed times, a rejected config, and the
process gone after stop. (Live scraping, targets and reload: test_live.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gate.drivers.prometheus import PrometheusClient
from gate.drivers.promserver import (
    PrometheusServer,
    PromServerError,
    backfill_openmetrics,
)
from tests.support.ports import free_port
from tests.support.prom import T0, OpenMetrics, backfilled_prometheus


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


def test_remote_write_receiver_is_enabled_on_request(tmp_path: Path) -> None:
    import json
    import urllib.request

    server = PrometheusServer(tmp_path / "data", free_port(), remote_write=True)
    with server:
        with urllib.request.urlopen(f"{server.url}/api/v1/status/flags", timeout=5) as resp:
            flags = json.load(resp)["data"]
        assert flags["web.enable-remote-write-receiver"] == "true"
        assert flags["web.listen-address"] == f"127.0.0.1:{server.port}"
    assert not server.running()
