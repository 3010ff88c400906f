"""Fixtures for the chaos tests: a real nginx upstream, and the fault proxy (nginx + Lua) in front of it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gate.drivers.chaos import ChaosDriver, FaultLedger
from gate.drivers.chaos.faultproxy import FaultProxy
from gate.drivers.nginx import NginxServer, main_config
from tests.support.ports import free_port, wait_port

TARGET = "risk-api"


@dataclass
class Topology:
    upstream_url: str
    proxy: FaultProxy

    @property
    def url(self) -> str:
        return self.proxy.url()

    @property
    def admin(self) -> str:
        return self.proxy.admin_url


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[str]:
    """A fast loopback service (nginx answering 200 "ok") standing in for a dependency."""
    port = free_port()
    server = NginxServer(tmp_path / "upstream")
    server.apply(
        main_config(f"server {{ listen 127.0.0.1:{port}; location / {{ return 200 'ok'; }} }}", lua=False)
    )
    try:
        wait_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def topology(tmp_path: Path, upstream: str) -> Iterator[Topology]:
    # Two nginx workers: the faults are shared between them, the random draws are not.
    proxy = FaultProxy(tmp_path / "proxy", free_port(), upstream, free_port(), target=TARGET, workers=2)
    proxy.start()
    try:
        wait_port(proxy.route().listen_port)
        wait_port(proxy.admin_port)
        yield Topology(upstream, proxy)
    finally:
        proxy.stop()


@pytest.fixture
def ledger(tmp_path: Path) -> FaultLedger:
    return FaultLedger(tmp_path / "state" / "faults.jsonl")


@pytest.fixture
def driver(tmp_path: Path, ledger: FaultLedger) -> ChaosDriver:
    return ChaosDriver(ledger, tmp_path / "chaos", rollback_timeout=30)
