"""Fixtures for the load-driver tests: two real HTTP services on loopback, one per track."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.kube import kube_api  # noqa: F401  (the emulator fixture, for test_cluster_load)
from tests.support.ports import free_port, wait_port


@dataclass
class Services:
    urls: dict[str, str]

    def seen(self, track: str) -> dict[str, Any]:
        return httpx.get(f"{self.urls[track]}/__seen", timeout=5).json()


def start_service(track: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.drivers.load.server", "--port", str(port), "--track", track, *extra]
    )
    try:
        wait_port(port)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc, f"http://127.0.0.1:{port}"


@pytest.fixture
def make_services() -> Iterator[Callable[..., Services]]:
    procs: list[subprocess.Popen[bytes]] = []

    def make(stable: tuple[str, ...] = (), canary: tuple[str, ...] = ()) -> Services:
        urls = {}
        for track, extra in (("stable", stable), ("canary", canary)):
            proc, url = start_service(track, *extra)
            procs.append(proc)
            urls[track] = url
        return Services(urls)

    try:
        yield make
    finally:
        for proc in procs:
            proc.kill()
            proc.wait(timeout=10)


@pytest.fixture
def services(make_services: Callable[..., Services]) -> Services:
    return make_services()
