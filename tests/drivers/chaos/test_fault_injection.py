"""Injected delay and aborts reach real clients at the configured percentages, and are gone after rollback.

Real nginx + Lua (the fault proxy), real Chaos Toolkit (the driver's worker), real Locust (the load
driver): the stable track hits the upstream directly, the canary track goes through the fault proxy.
"""

from __future__ import annotations

import time

import httpx
import pytest
from scipy.stats import binom

from gate.drivers.chaos import BuiltinFault, ChaosDriver, HttpFault
from gate.drivers.load import LoadDriver, LoadPlan, LoadTask
from tests.drivers.chaos.conftest import TARGET, Topology

DELAY = 0.2
DELAY_P = 0.5
ABORT_P = 0.2
# Delayed requests take at least DELAY; undelayed ones to a loopback nginx take a few ms. The margin
# below DELAY keeps a busy machine's scheduling hiccups from being counted as delays.
DELAYED_AT = 0.19
ALPHA = 1e-6  # chance of a false failure per check: the bounds are wide, the fractions real


def binomial_bounds(n: int, p: float) -> tuple[int, int]:
    """Counts outside [lo, hi] have probability below ALPHA under Binomial(n, p)."""
    return int(binom.ppf(ALPHA / 2, n, p)), int(binom.isf(ALPHA / 2, n, p))


def wait_for_fault(admin: str, present: bool, timeout: float = 30.0) -> dict[str, object] | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = httpx.get(f"{admin}/faults", timeout=5).json()["targets"][TARGET]
        if (state is not None) == present:
            return state  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"fault present={present} not seen within {timeout}s")


def test_delay_and_abort_fractions_then_gone(topology: Topology, driver: ChaosDriver) -> None:
    fault = HttpFault(TARGET, delay=DELAY, delay_percent=DELAY_P, abort=ABORT_P, abort_status=503)
    plan = LoadPlan(
        stable_url=topology.upstream_url,
        canary_url=topology.url,
        tasks=(LoadTask("score", "/score"),),
        users=24,
        spawn_rate=200.0,
        duration=2.5,
    )
    with driver.start(
        "risk-api-slow", BuiltinFault(fault), {"fault_proxy": topology.admin}, duration=60
    ) as run:
        state = wait_for_fault(topology.admin, present=True)
        assert state == {"delay_ms": 200.0, "delay_percent": 50.0, "abort_status": 503, "abort_percent": 20.0}
        with LoadDriver(plan) as load:
            result = load.result()
        # The step ends before the fault's 60 s: abort, which runs the experiment's rollbacks now.
        journal = run.abort()

    assert result.complete, result.problems
    canary, stable = result.tracks["canary"], result.tracks["stable"]
    n = canary.requests
    print(f"canary: {n} requests")
    assert n >= 150, f"too few requests for a meaningful check: {n}"
    assert len(canary.samples) == n

    delayed = sum(1 for s in canary.samples if s >= DELAYED_AT)
    lo, hi = binomial_bounds(n, DELAY_P)
    assert lo <= delayed <= hi, f"{delayed}/{n} delayed, expected {lo}..{hi}"
    assert all(s < DELAY + 5 for s in canary.samples)

    aborted = canary.failures.get("HTTP 503", 0)
    lo, hi = binomial_bounds(n, ABORT_P)
    assert lo <= aborted <= hi, f"{aborted}/{n} aborted, expected {lo}..{hi}"
    assert canary.errors == aborted, canary.failures

    # The control: the same requests without the proxy saw neither.
    assert stable.errors == 0
    assert sum(1 for s in stable.samples if s >= DELAYED_AT) <= max(3, stable.requests // 50)

    # Rolled back: the journal says so, the ledger has nothing open, the proxy holds nothing.
    assert journal.status == "interrupted" and journal.aborted
    assert [r.name for r in journal.rollbacks] == ["clear-http-fault"]
    assert all(r.succeeded for r in journal.rollbacks)
    assert journal.faults_undone and driver.ledger.open_entries() == []
    window = journal.window
    assert window.fault_start is not None and window.fault_end is not None
    assert window.fault_start <= result.started_at and window.fault_end >= result.ended_at
    assert wait_for_fault(topology.admin, present=False, timeout=1) is None

    with httpx.Client(timeout=5) as client:
        answers = [client.get(f"{topology.url}/score") for _ in range(100)]
    assert {a.status_code for a in answers} == {200}
    assert not any("x-gate-fault" in a.headers for a in answers)


def test_faulted_responses_are_marked(
    topology: Topology, driver: ChaosDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every injected abort says so in X-Gate-Fault; a 100 % abort answers every request."""
    from gate.drivers.chaos import actions

    monkeypatch.setenv("GATE_FAULT_LEDGER", str(driver.ledger.path))
    actions.inject_http_fault(topology.admin, TARGET, abort_status=418, abort_percent=100)
    try:
        with httpx.Client(timeout=5) as client:
            answers = [client.get(topology.url) for _ in range(20)]
        assert {a.status_code for a in answers} == {418}
        assert {a.headers.get("x-gate-fault") for a in answers} == {"abort"}
    finally:
        actions.clear_http_fault(topology.admin, TARGET)
    assert httpx.get(topology.url, timeout=5).status_code == 200
    assert driver.ledger.open_entries() == []

    # A delay alone is a fault too (no abort status needed).
    state = actions.inject_http_fault(topology.admin, TARGET, delay_ms=5, delay_percent=100)
    try:
        assert state["fault"] == {
            "delay_ms": 5.0,
            "delay_percent": 100.0,
            "abort_status": 0,
            "abort_percent": 0.0,
        }
        answer = httpx.get(topology.url, timeout=5)
        assert answer.status_code == 200 and answer.headers.get("x-gate-fault") == "delay"
    finally:
        actions.clear_http_fault(topology.admin, TARGET)


BAD_FAULTS = [
    ('{"delay_ms": -1}', "delay_ms must be between 0 and 300000"),
    ('{"delay_ms": 10, "colour": 1}', "unknown field colour"),
    ("not json", "body must be a JSON object"),
    ('{"delay_ms": "10"}', "each field must be"),
    ('{"abort_percent": 5}', "abort_percent needs abort_status"),
    ('{"abort_status": 200, "abort_percent": 5}', "abort_status must be 0 (no abort) or between 400"),
    ('{"abort_status": 503.5, "abort_percent": 5}', "abort_status must be an integer"),
]


def test_admin_api_refuses_bad_faults(topology: Topology) -> None:
    for body, error in BAD_FAULTS:
        answer = httpx.put(f"{topology.admin}/faults/{TARGET}", content=body, timeout=5)
        assert answer.status_code == 400 and error in answer.json()["error"], (body, answer.text)
    assert httpx.get(f"{topology.admin}/faults", timeout=5).json() == {"targets": {TARGET: None}}
    assert httpx.put(f"{topology.admin}/faults/other", json={}, timeout=5).status_code == 404
    assert httpx.put(f"{topology.admin}/faults/{TARGET}", content="x" * 5000, timeout=5).status_code in (
        400,
        413,
    )
