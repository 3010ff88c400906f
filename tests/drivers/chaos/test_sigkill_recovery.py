"""A gate killed with SIGKILL in the middle of a chaos step: the fault is undone all the same.

Two ways to die: the whole process group at once (gate and its chaos worker, as when a pod or a
machine goes away) leaves the fault in place, and the next start's ``recover()`` finds it in the ledger
and undoes it; gate alone dying leaves the worker an orphan, which notices its parent is gone, sends
itself SIGTERM and runs the experiment's rollbacks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gate.drivers.chaos import ChaosDriver, FaultLedger
from tests.drivers.chaos.conftest import Topology
from tests.drivers.chaos.test_fault_injection import wait_for_fault

ROOT = Path(__file__).resolve().parents[3]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def _wait_gone(pid: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid), f"process {pid} still alive"


@pytest.fixture
def gate_step(
    tmp_path: Path, topology: Topology, ledger: FaultLedger
) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """A gate (its own process group) holding a 100 % abort fault; yields it and its worker's pid."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.drivers.chaos.gate_step",
            "--ledger",
            str(ledger.path),
            "--workdir",
            str(tmp_path / "killed-gate"),
            "--admin",
            topology.admin,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    worker = 0
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("worker "), line
        worker = int(line.split()[1])
        wait_for_fault(topology.admin, present=True)
        yield proc, worker
    finally:
        for pid in (proc.pid, worker):
            if pid and _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if worker:
            _wait_gone(worker)


def test_next_start_undoes_the_fault_of_a_killed_gate(
    tmp_path: Path, topology: Topology, ledger: FaultLedger, gate_step: tuple[subprocess.Popen[str], int]
) -> None:
    proc, worker = gate_step
    assert [e.pid for e in ledger.open_entries()] == [worker]

    os.killpg(proc.pid, signal.SIGKILL)  # gate and its chaos worker, no chance to clean up
    proc.wait(timeout=10)
    _wait_gone(worker)

    # The fault outlived gate: every request through the proxy is still aborted.
    time.sleep(0.3)
    assert wait_for_fault(topology.admin, present=True, timeout=1) is not None
    answers = [httpx.get(topology.url, timeout=5) for _ in range(5)]
    assert {(a.status_code, a.headers.get("x-gate-fault")) for a in answers} == {(503, "abort")}
    left = ledger.open_entries()
    assert len(left) == 1 and left[0].kind == "http-proxy" and left[0].injected_at is not None

    # The next start: a new driver on the same ledger finds the fault and undoes it.
    lines = ChaosDriver(FaultLedger(ledger.path), tmp_path / "next-gate").recover()
    assert len(lines) == 1 and lines[0].startswith("undone: http-proxy"), lines
    assert wait_for_fault(topology.admin, present=False, timeout=1) is None
    assert {httpx.get(topology.url, timeout=5).status_code for _ in range(5)} == {200}
    assert ledger.open_entries() == []
    assert ledger.entries()[0].cleared_by == "recovery"
    # Recovery is idempotent: nothing left to do the second time.
    assert ChaosDriver(FaultLedger(ledger.path), tmp_path / "third-gate").recover() == []


def test_orphaned_worker_rolls_back_when_gate_alone_is_killed(
    topology: Topology, ledger: FaultLedger, gate_step: tuple[subprocess.Popen[str], int]
) -> None:
    proc, worker = gate_step
    os.kill(proc.pid, signal.SIGKILL)  # only gate; its worker is orphaned
    proc.wait(timeout=10)

    assert wait_for_fault(topology.admin, present=False, timeout=20) is None
    _wait_gone(worker, timeout=20)
    entries = ledger.entries()
    assert len(entries) == 1 and not entries[0].open and entries[0].cleared_by == "rollback"
    assert httpx.get(topology.url, timeout=5).status_code == 200
