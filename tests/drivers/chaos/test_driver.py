"""The driver's lifecycle: a step that overruns is aborted with its rollbacks; the demo service's own
fault switches are set and cleared through the same ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gate.drivers.chaos import BuiltinFault, ChaosDriver, ChaosRun, HttpFault, InlineExperiment
from tests.drivers.chaos.conftest import TARGET, Topology
from tests.drivers.chaos.test_fault_injection import wait_for_fault
from tests.support.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[3]


def test_overrunning_step_is_aborted_and_rolled_back(topology: Topology, driver: ChaosDriver) -> None:
    fault = HttpFault(TARGET, abort=1.0, abort_status=503)
    with driver.start("overrun", BuiltinFault(fault), {"fault_proxy": topology.admin}, duration=60) as run:
        # The step's time runs out once the fault is in place: however long a crowded machine takes
        # to start the worker, the overrun must find a fault to roll back.
        wait_for_fault(topology.admin, present=True)
        journal = run.wait(timeout=1)
    assert journal.timed_out and journal.status == "interrupted", journal.summary()
    assert [r.name for r in journal.rollbacks] == ["clear-http-fault"] and journal.rollbacks[0].succeeded
    assert journal.faults_undone and not run.running()
    assert httpx.get(topology.url, timeout=5).status_code == 200
    assert any(e.event == "rollbacks-started" for e in run.events)
    assert run.window() == journal.window


@pytest.fixture
def demo_service() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "gate.demo.service", "--track", "canary", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, timeout=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_demo_switch_set_for_the_step_then_cleared(demo_service: str, driver: ChaosDriver) -> None:
    switches = {"latency_ms": 40, "error_rate": 0.25}
    provider = {"type": "python", "module": "gate.drivers.chaos.actions"}
    experiment = {
        "title": "canary slow and failing",
        "description": "The demo service's own switches, for one step.",
        "method": [
            {
                "type": "action",
                "name": "switch-on",
                "provider": {
                    **provider,
                    "func": "set_demo_switch",
                    "arguments": {"url": demo_service, "switches": switches},
                },
                "pauses": {"after": 30},
            }
        ],
        "rollbacks": [
            {
                "type": "action",
                "name": "switch-off",
                "provider": {**provider, "func": "clear_demo_switch", "arguments": {"url": demo_service}},
            }
        ],
    }
    seen = None
    with driver.start("demo-switch", InlineExperiment(experiment)) as run:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            state = httpx.get(f"{demo_service}/__switch", timeout=5).json()["switch"]
            if state["error_rate"] > 0:
                seen = state
                break
            time.sleep(0.1)
        assert [e.key for e in driver.ledger.open_entries()] == [f"demo-switch:{demo_service}/__switch"]
        journal = run.abort()  # the step ends
    assert seen is not None and seen["latency_ms"] == 40 and seen["error_rate"] == 0.25
    assert journal.rollbacks[0].succeeded and journal.faults_undone
    after = httpx.get(f"{demo_service}/__switch", timeout=5).json()["switch"]
    assert after["latency_ms"] == 0 and after["error_rate"] == 0


def test_ctrl_c_reaching_the_worker_rolls_back_at_once(topology: Topology, driver: ChaosDriver) -> None:
    """SIGINT (a Ctrl-C in gate's terminal reaches its process group) ends the step with rollbacks."""
    fault = HttpFault(TARGET, delay=0.01)
    with driver.start("ctrl-c", BuiltinFault(fault), {"fault_proxy": topology.admin}, duration=60) as run:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not driver.ledger.open_entries():
            time.sleep(0.02)
        os.kill(run.pid, signal.SIGINT)
        journal = run.wait(timeout=20)
    assert journal.status == "interrupted" and not journal.timed_out, journal.summary()
    assert journal.rollbacks[0].succeeded and journal.faults_undone
    assert httpx.get(f"{topology.admin}/faults", timeout=5).json()["targets"][TARGET] is None


def test_a_step_started_from_a_short_lived_thread_keeps_running(
    topology: Topology, driver: ChaosDriver
) -> None:
    """The worker follows gate's process, not the thread that started it (kopf runs calls in threads)."""
    runs: list[ChaosRun] = []
    fault = HttpFault(TARGET, delay=0.01)
    starter = threading.Thread(
        target=lambda: runs.append(
            driver.start("threaded", BuiltinFault(fault), {"fault_proxy": topology.admin}, duration=1)
        )
    )
    starter.start()
    starter.join()
    with runs[0] as run:
        journal = run.wait(timeout=60)
    assert journal.status == "completed" and not journal.timed_out, journal.summary()
    assert journal.method[0].succeeded and journal.window.duration is not None
    assert journal.window.duration >= 1
    assert journal.faults_undone
