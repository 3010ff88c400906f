"""Faults are undone when the step fails: gate's code raises in the middle of the step, or the experiment
itself fails after injecting and has no rollback for it (the ledger catches what the author forgot)."""

from __future__ import annotations

import time

import httpx
import pytest

from gate.drivers.chaos import BuiltinFault, ChaosDriver, HttpFault, InlineExperiment
from tests.drivers.chaos.conftest import TARGET, Topology


class StepFailed(RuntimeError):
    pass


def _fault(topology: Topology) -> object:
    return httpx.get(f"{topology.admin}/faults", timeout=5).json()["targets"][TARGET]


def test_an_exception_in_the_step_rolls_the_fault_back(topology: Topology, driver: ChaosDriver) -> None:
    fault = HttpFault(TARGET, abort=1.0, abort_status=503)
    with (
        pytest.raises(StepFailed),
        driver.start("step-fails", BuiltinFault(fault), {"fault_proxy": topology.admin}, duration=60) as run,
    ):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _fault(topology) is None:
            time.sleep(0.05)
        assert _fault(topology) is not None
        raise StepFailed("measuring failed in the middle of the chaos step")
    assert not run.running()
    assert _fault(topology) is None
    assert driver.ledger.open_entries() == []
    assert httpx.get(topology.url, timeout=5).status_code == 200


def test_a_failing_experiment_without_rollback_is_undone_from_the_ledger(
    topology: Topology, driver: ChaosDriver
) -> None:
    where = {"admin_url": topology.admin, "target": TARGET}
    experiment = {
        "title": "injects, then fails, and forgot its rollback",
        "description": "The fault must not outlive the run all the same.",
        "method": [
            {
                "type": "action",
                "name": "abort-everything",
                "provider": {
                    "type": "python",
                    "module": "gate.drivers.chaos.actions",
                    "func": "inject_http_fault",
                    "arguments": {**where, "abort_status": 503, "abort_percent": 100},
                },
            },
            {
                "type": "action",
                "name": "then-fails",
                "provider": {
                    "type": "python",
                    "module": "gate.drivers.chaos.actions",
                    "func": "inject_http_fault",
                    # Refused by the action itself (no delay and no aborts): a failed activity.
                    "arguments": {**where, "delay_ms": 0},
                },
            },
        ],
    }
    journal = ChaosDriver(driver.ledger, driver.workdir, rollback_timeout=30).run(
        "forgot-rollback", InlineExperiment(experiment), duration=60
    )
    assert [a.name for a in journal.method] == ["abort-everything", "then-fails"], journal.summary()
    assert journal.method[0].succeeded and not journal.method[1].succeeded
    assert journal.rollbacks == []
    # Nothing in the experiment removed the fault; gate did, from the ledger, before returning.
    assert journal.recovered and all(line.startswith("undone: http-proxy") for line in journal.recovered)
    assert journal.faults_undone and journal.open_faults == []
    assert _fault(topology) is None
    assert driver.ledger.open_entries() == []
    assert driver.ledger.entries()[0].cleared_by == "recovery"
