"""Runs of the real engine (machine, runner, run store) for the action tests, stopped at an
open-ended pause so a reviewer's approve or abort is what moves them on.

The router and the analyst are the engine tests' TEST DOUBLES (``tests.engine.doubles``): the
subject here is the dashboard → inbox → engine path, not routing or statistics (the demo's run,
recorded by the real demo, is what the pages and charts are tested on).
"""

from __future__ import annotations

import time
from typing import Any

from gate.drivers.store import RunStore
from gate.engine.clock import ManualClock
from gate.engine.machine import Plan, PolicyPlan, StepPlan
from gate.engine.runner import LookRequest, Runner
from tests.engine.doubles import RecordingRouter, ScriptedAnalyst

PLAN = Plan(
    steps=(
        StepPlan("setWeight", weight=20),
        StepPlan("analyze", duration=10),
        StepPlan("pause", duration=None),  # waits for a person
        StepPlan("setWeight", weight=100),
    ),
    policy=PolicyPlan(interval=5),
)


def paused_run(
    store: RunStore, *, reason: str = "p95 within bound", service: str = "checkout", namespace: str = ""
) -> Runner:
    """A run of the real engine, at its open-ended pause (weight 20 %), looks recorded."""

    def script(_r: LookRequest) -> tuple[Any, str]:
        return ("promote", reason)

    runner = Runner.create(
        store,
        PLAN,
        contract_name="checkout-review",
        service=service,
        clock=ManualClock(time.time()),
        router=RecordingRouter(),
        analyst=ScriptedAnalyst(script),
        meta={"face": "test", **({"namespace": namespace} if namespace else {})},
    )
    runner.run(stop_when=lambda s: s.step == 2)
    assert runner.state.status == "running" and runner.state.weight == 20
    return runner
