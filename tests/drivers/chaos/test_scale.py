"""Deployment scale as a recorded fault (kmock's emulator over real HTTP, the real chaos worker): scaled
for the step and scaled back by the rollback with the count from the ledger; after a crash, scaled back
by the next start's recovery to the count from before gate's first scale."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gate.drivers.chaos import ChaosDriver, FaultLedger, InlineExperiment
from tests.drivers.chaos.kube import Emulator, serve

ROOT = Path(__file__).resolve().parents[3]
DEPLOYMENTS = "apps/v1/deployments"
DEPLOYMENT = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "checkout-canary", "namespace": "shop"},
    "spec": {
        "replicas": 3,
        "selector": {"matchLabels": {"app": "checkout"}},
        "template": {
            "metadata": {"labels": {"app": "checkout"}},
            "spec": {"containers": [{"name": "app", "image": "checkout:2"}]},
        },
    },
}


def _action(name: str, func: str, arguments: dict[str, object], pause: float = 0) -> dict[str, object]:
    activity: dict[str, object] = {
        "type": "action",
        "name": name,
        "provider": {
            "type": "python",
            "module": "gate.drivers.chaos.scale",
            "func": func,
            "arguments": arguments,
        },
    }
    if pause:
        activity["pauses"] = {"after": pause}
    return activity


EXPERIMENT = {
    "title": "one canary replica for the step",
    "description": "checkout-canary scaled 3 -> 1 -> 0, then back.",
    "method": [
        _action(
            "scale-to-one", "scale_deployment", {"name": "checkout-canary", "replicas": 1, "ns": "shop"}, 1
        ),
        # A second scale of the same Deployment: the restore must still go back to 3, not to 1.
        _action(
            "scale-to-zero", "scale_deployment", {"name": "checkout-canary", "replicas": 0, "ns": "shop"}, 1
        ),
    ],
    "rollbacks": [
        _action("scale-back", "restore_deployment_scale", {"name": "checkout-canary", "ns": "shop"})
    ],
}


@pytest.fixture
def kube() -> Iterator[Emulator]:
    with serve() as emulator:
        emulator.seed(DEPLOYMENTS, "shop", "checkout-canary", DEPLOYMENT)
        yield emulator


def replicas(kube: Emulator) -> int:
    return int(kube.get(DEPLOYMENTS, "shop", "checkout-canary")["spec"]["replicas"])


def test_scale_for_the_step_then_back_to_the_recorded_count(
    tmp_path: Path, kube: Emulator, ledger: FaultLedger
) -> None:
    driver = ChaosDriver(ledger, tmp_path / "chaos", env=kube.env, rollback_timeout=30)
    seen: set[int] = set()
    with driver.start("canary-shrinks", InlineExperiment(EXPERIMENT), duration=60) as run:
        deadline = time.monotonic() + 60
        while run.running() and time.monotonic() < deadline:
            seen.add(replicas(kube))
            time.sleep(0.05)
        journal = run.wait()
    assert journal.status == "completed", journal.summary()
    assert {1, 0} <= seen  # both scales took effect during the step
    assert [r.name for r in journal.rollbacks] == ["scale-back"] and journal.rollbacks[0].succeeded
    assert replicas(kube) == 3
    assert ledger.open_entries() == []
    assert [e.detail["replicas_before"] for e in ledger.entries()] == [3, 3]


def test_scale_left_by_a_crash_is_undone_at_the_next_start(
    tmp_path: Path, kube: Emulator, ledger: FaultLedger
) -> None:
    # A worker scales twice and dies without rolling back (SIGKILL stands in for any crash).
    code = (
        "import os, signal; from gate.drivers.chaos import scale; "
        "scale.scale_deployment('checkout-canary', 1, ns='shop'); "
        "scale.scale_deployment('checkout-canary', 0, ns='shop'); "
        "os.kill(os.getpid(), signal.SIGKILL)"
    )
    env = {**kube.env, "GATE_FAULT_LEDGER": str(ledger.path), "PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=False, timeout=60)
    assert proc.returncode == -9
    assert replicas(kube) == 0
    assert [e.kind for e in ledger.open_entries()] == ["deployment-scale"] * 2

    # gate's own process may not use the Kubernetes client: recovery hands this kind to a worker.
    lines = ChaosDriver(ledger, tmp_path / "next", env=kube.env).recover()
    assert len(lines) == 2 and all(
        line.startswith("undone: deployment-scale:shop/checkout-canary") for line in lines
    )
    assert replicas(kube) == 3
    assert ledger.open_entries() == []


def test_scale_refuses_bad_arguments_before_recording(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gate.drivers.chaos import scale

    ledger = FaultLedger(tmp_path / "faults.jsonl")
    monkeypatch.setenv("GATE_FAULT_LEDGER", str(ledger.path))
    for kwargs, error in [
        ({"name": "Checkout", "replicas": 1}, "not a Kubernetes name"),
        ({"name": "checkout", "replicas": -1}, "whole number"),
        ({"name": "checkout", "replicas": True}, "whole number"),
        ({"name": "checkout", "replicas": 1, "ns": "a/b"}, "not a Kubernetes name"),
    ]:
        with pytest.raises(ValueError, match=error):
            scale.scale_deployment(**kwargs)  # type: ignore[arg-type]
    assert ledger.entries() == []
    # A rollback with nothing recorded restores nothing (and calls no API).
    assert "nothing to restore" in scale.restore_deployment_scale("checkout", ns="shop")["note"]
