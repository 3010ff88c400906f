"""Fixtures for the Kubernetes routers: a kmock emulator over real HTTP and the official client."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gate.drivers import kube
from tests.drivers.routers.kubeemu import RunningEmulator, serve_emulator


@pytest.fixture
def env() -> Iterator[RunningEmulator]:
    with serve_emulator() as running:
        yield running


@pytest.fixture
def client(env: RunningEmulator) -> Iterator[kube.KubeClient]:
    c = kube.connect(host=env.url, timeout=5)
    try:
        yield c
    finally:
        c.close()
