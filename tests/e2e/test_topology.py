"""The demo topology comes up on loopback, Prometheus tells all three sources and both tracks apart,
the fault proxy slows the dependency while the breaker keeps checkout answering, and every process
is gone afterwards."""

from __future__ import annotations

import os
import time
from pathlib import Path

import httpx
import pytest

from gate.demo.topology import Topology, TopologyConfig


def _query(url: str, promql: str) -> list[dict[str, object]]:
    resp = httpx.get(f"{url}/api/v1/query", params={"query": promql}, timeout=5)
    resp.raise_for_status()
    result: list[dict[str, object]] = resp.json()["data"]["result"]
    return result


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow  # ~10 s: the whole demo topology
def test_topology_serves_three_sources_and_stops_everything(tmp_path: Path) -> None:
    topology = Topology(TopologyConfig(scenario="good", workdir=tmp_path / "demo", users_rate=20, seed=7))
    with topology.start():
        pids = topology.pids()
        assert set(pids) == {"prometheus", "dependency", "fault proxy", "stable", "canary", "router", "users"}
        assert topology.router is not None
        topology.router.set_mirror(100)
        topology.router.set_weight(50)
        # synthetic requests go straight to both tracks with the header, as gate's load does
        for track in ("stable", "canary"):
            for _ in range(5):
                httpx.get(f"{topology.url(track)}/catalog/1", headers={"X-Traffic-Source": "synthetic"})
        seen: set[tuple[str, str]] = set()
        deadline = time.monotonic() + 20
        query = 'sum by (track, traffic_source) (http_requests_total{service="checkout"})'
        while time.monotonic() < deadline and len(seen) < 5:
            seen = {
                (str(r["metric"]["track"]), str(r["metric"]["traffic_source"]))  # type: ignore[index]
                for r in _query(topology.prometheus_url, query)
            }
            time.sleep(0.5)
        # shadow exists only on the canary: nginx mirrors production requests to it
        assert seen == {
            ("stable", "production"),
            ("canary", "production"),
            ("canary", "shadow"),
            ("stable", "synthetic"),
            ("canary", "synthetic"),
        }

        # the dependency behind the fault proxy: slowed and failing, checkout still answers in time
        assert topology.proxy is not None
        put = httpx.put(
            f"{topology.fault_admin_url}/faults/risk-api",
            json={"delay_ms": 800, "delay_percent": 100, "abort_status": 503, "abort_percent": 15},
        )
        assert put.status_code == 200
        answers = [
            httpx.post(f"{topology.stable_url}/orders", json={"sku": "A-1"}, timeout=5).json()
            for _ in range(12)
        ]
        assert all(a["accepted"] for a in answers)
        assert answers[-1]["risk_source"] == "breaker-open"
        httpx.delete(f"{topology.fault_admin_url}/faults/risk-api")
    assert topology.pids() == {}
    assert not any(_alive(pid) for pid in pids.values())
