"""The journal: Chaos Toolkit's run record read into a typed Journal, with the chaos window."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import httpx

from gate.drivers.chaos import ChaosDriver, InlineExperiment, parse_journal
from tests.drivers.chaos.conftest import TARGET, Topology


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def run_entry(name: str, kind: str, func: str, start: float, end: float, **extra: Any) -> dict[str, Any]:
    return {
        "activity": {
            "type": kind,
            "name": name,
            "provider": {"type": "python", "module": "gate.drivers.chaos.actions", "func": func},
        },
        "status": "succeeded",
        "start": iso(start),
        "end": iso(end),
        "duration": end - start,
        "output": None,
        **extra,
    }


def test_parse_a_journal_as_chaos_toolkit_writes_it() -> None:
    t = 1_700_000_000.0
    probe = {
        "activity": {"type": "probe", "name": "up", "provider": {"type": "http", "url": "http://x/"}},
        "status": "succeeded",
        "output": {"status": 200},
        "start": iso(t),
        "end": iso(t + 0.1),
        "tolerance_met": True,
    }
    raw = {
        "chaoslib-version": "1.44.0",
        "experiment": {"title": "gate chaos slow"},
        "start": iso(t),
        "end": iso(t + 12),
        "duration": 12.0,
        "status": "completed",
        "deviated": True,
        "steady_states": {
            "before": {"steady_state_met": True, "probes": [probe]},
            "after": {"steady_state_met": False, "probes": [probe]},
            "during": [],
        },
        "run": [
            run_entry("inject", "action", "inject_http_fault", t + 1, t + 1.2, output="x" * 10_000),
            run_entry("check", "probe", "http_fault_state", t + 1.2, t + 1.3),
            {
                **run_entry("broken", "action", "other", t + 1.3, t + 1.4),
                "status": "failed",
                "exception": ["Traceback ...\n", "RuntimeError: boom\n"],
            },
        ],
        "rollbacks": [run_entry("clear", "action", "clear_http_fault", t + 11, t + 11.5)],
        "gate": {"recovered": [], "error": None},
    }
    journal = parse_journal(raw, name="slow")

    assert (journal.name, journal.status, journal.deviated) == ("slow", "completed", True)
    assert journal.start == t and journal.end == t + 12 and journal.duration == 12.0
    assert [a.name for a in journal.method] == ["inject", "check", "broken"]
    inject, _, broken = journal.method
    assert inject.injects and inject.provider == "python:gate.drivers.chaos.actions.inject_http_fault"
    assert len(inject.output) <= 500  # outputs are kept short, never whole
    assert broken.status == "failed" and broken.error == "RuntimeError: boom"
    assert journal.before is not None and journal.before.met is True
    assert journal.after is not None and journal.after.met is False
    assert journal.after.probes[0].provider == "http:http://x/"
    # The fault was in place from the injection's end to the rollback's end.
    assert journal.window.fault_start == t + 1.2
    assert journal.window.fault_end == t + 11.5
    assert journal.window.rollback_start == t + 11
    assert journal.window.duration is not None and abs(journal.window.duration - 10.3) < 1e-6
    assert journal.chaoslib_version == "1.44.0"
    assert not journal.ok  # deviated, and an activity failed
    assert "steady state deviated" in journal.summary()
    data = journal.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["window"]["duration"] == journal.window.duration and data["ok"] is False


def test_parse_is_defensive() -> None:
    journal = parse_journal({"status": "weird", "run": ["nope", {"activity": "x"}], "rollbacks": "no"})
    assert journal.status == "error"
    assert len(journal.method) == 1 and journal.method[0].name == ""
    assert journal.rollbacks == [] and journal.window.fault_start is None
    assert parse_journal({}).status == "error"


def test_real_run_deviates_and_rolls_back(topology: Topology, driver: ChaosDriver) -> None:
    """A real inline experiment: the steady state (the dependency answers 200) holds before, breaks
    under a 100 % abort, and the rollback clears the fault."""
    where = {"admin_url": topology.admin, "target": TARGET}
    experiment = {
        "version": "1.0.0",
        "title": "risk-api answers while aborting",
        "description": "A 100 % abort must break the steady state.",
        "steady-state-hypothesis": {
            "title": "risk-api answers",
            "probes": [
                {
                    "type": "probe",
                    "name": "risk-api-answers",
                    "tolerance": 200,
                    "provider": {"type": "http", "url": topology.url, "timeout": 3},
                }
            ],
        },
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
                "pauses": {"after": 0.5},
            }
        ],
        "rollbacks": [
            {
                "type": "action",
                "name": "clear",
                "provider": {
                    "type": "python",
                    "module": "gate.drivers.chaos.actions",
                    "func": "clear_http_fault",
                    "arguments": where,
                },
            }
        ],
    }
    journal = driver.run("abort-all", InlineExperiment(experiment), duration=60)

    assert journal.status in ("completed", "failed") and journal.deviated, journal.summary()
    assert journal.before is not None and journal.before.met is True
    assert journal.after is not None and journal.after.met is False
    assert [a.name for a in journal.method] == ["abort-everything"] and journal.method[0].succeeded
    assert [a.name for a in journal.rollbacks] == ["clear"] and journal.rollbacks[0].succeeded
    assert journal.faults_undone and not journal.timed_out and not journal.aborted
    w = journal.window
    assert w.fault_start is not None and w.fault_end is not None and w.rollback_start is not None
    assert journal.start is not None and journal.end is not None
    assert journal.start <= w.fault_start < w.rollback_start <= w.fault_end <= journal.end
    assert w.fault_end - w.fault_start >= 0.5
    assert httpx.get(topology.url, timeout=5).status_code == 200
