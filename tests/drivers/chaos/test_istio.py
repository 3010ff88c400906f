"""Istio VirtualService faults through the Kubernetes API (kmock's emulator over real HTTP), run by the
real chaos worker: injected for the step, rolled back after, and undone by recovery after a crash."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.drivers.chaos import BuiltinFault, ChaosDriver, FaultLedger, HttpFault
from tests.drivers.chaos.kube import VS, Emulator, serve
from tests.drivers.routers.crds import validate_crd

ROOT = Path(__file__).resolve().parents[3]
ROUTES = [{"destination": {"host": "checkout", "subset": "canary"}}]
VIRTUAL_SERVICE = {
    "apiVersion": "networking.istio.io/v1beta1",
    "kind": "VirtualService",
    "metadata": {"name": "checkout", "namespace": "shop", "resourceVersion": "7"},
    "spec": {
        "hosts": ["checkout"],
        "http": [
            {"match": [{"uri": {"prefix": "/admin"}}], "route": [{"destination": {"host": "admin"}}]},
            {
                "route": [
                    {"destination": {"host": "checkout", "subset": "stable"}, "weight": 80},
                    {"destination": {"host": "checkout", "subset": "canary"}, "weight": 20},
                ]
            },
        ],
    },
}
CONTEXT = {"istio": {"virtual_service": "checkout", "namespace": "shop", "routes": ROUTES}}


@pytest.fixture
def kube() -> Iterator[Emulator]:
    with serve() as emulator:
        emulator.seed(VS, "shop", "checkout", VIRTUAL_SERVICE)
        yield emulator


def faults(kube: Emulator) -> list[Any]:
    return [entry.get("fault") for entry in kube.get(VS, "shop", "checkout")["spec"]["http"]]


def test_istio_fault_for_the_step_then_rolled_back(
    tmp_path: Path, kube: Emulator, ledger: FaultLedger
) -> None:
    driver = ChaosDriver(ledger, tmp_path / "chaos", env=kube.env, rollback_timeout=30)
    fault = HttpFault("checkout", delay=0.8, delay_percent=0.5, abort=0.1, abort_status=503)
    seen: list[Any] = []
    with driver.start("mesh-slow", BuiltinFault(fault), CONTEXT, duration=1.0) as run:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not seen:
            if faults(kube)[1] is not None:
                seen = faults(kube)
                # What gate wrote is a valid VirtualService for the upstream CRD's schema.
                validate_crd(kube.get(VS, "shop", "checkout"))
            time.sleep(0.05)
        journal = run.wait()
    assert seen == [
        None,
        {
            "delay": {"fixedDelay": "0.800s", "percentage": {"value": 50.0}},
            "abort": {"httpStatus": 503, "percentage": {"value": 10.0}},
        },
    ]
    assert journal.status == "completed", journal.summary()
    assert journal.rollbacks[0].succeeded and journal.faults_undone
    assert faults(kube) == [None, None]
    # The rest of the VirtualService is untouched.
    after = kube.get(VS, "shop", "checkout")
    assert after["spec"]["http"][1]["route"] == VIRTUAL_SERVICE["spec"]["http"][1]["route"]  # type: ignore[index]


def test_istio_fault_left_by_a_crash_is_undone_in_a_worker(
    tmp_path: Path, kube: Emulator, ledger: FaultLedger
) -> None:
    # A worker injects and dies without rolling back (SIGKILL stands in for any crash).
    code = (
        "import os, signal; from gate.drivers.chaos import istio; "
        f"istio.inject_istio_fault('checkout', {ROUTES!r}, abort_status=503, abort_percent=100, ns='shop'); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    env = {**kube.env, "GATE_FAULT_LEDGER": str(ledger.path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=False, timeout=60)
    assert proc.returncode == -9
    assert faults(kube)[1] == {"abort": {"httpStatus": 503, "percentage": {"value": 100.0}}}
    assert [e.kind for e in ledger.open_entries()] == ["istio-fault"]

    # gate's own process may not use the Kubernetes client: recovery hands this kind to a worker.
    lines = ChaosDriver(ledger, tmp_path / "next", env=kube.env).recover()
    assert len(lines) == 1 and lines[0].startswith("undone: istio-fault:shop/checkout"), lines
    assert faults(kube) == [None, None]
    assert ledger.open_entries() == []
