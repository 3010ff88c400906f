"""Cost of driving a run through ``Runner.advance`` (what the CLI's loop and the operator's timers call).

    python -m bench.advance [--store sqlite:///PATH | postgresql://…] [--steps 40] [--runs 3]

A whole rollout of ``--steps`` weight/pause steps (a 5 s interval, a look every tick, a scripted
analyst and a recording router: the subject is the engine and the store, not Prometheus) is driven
with a manual clock, calling ``advance`` until it returns ``None``. Reported: transitions per run,
wall time per transition (checkpoint + effects + records, fsync included for SQLite), and the time
of an ``advance`` that finds nothing due (what a timer costs between ticks).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from gate.compose import open_store
from gate.engine.clock import ManualClock
from gate.engine.machine import Plan, PolicyPlan, StepPlan
from gate.engine.runner import Runner
from tests.engine.doubles import RecordingRouter, ScriptedAnalyst


def _plan(steps: int) -> Plan:
    out: list[StepPlan] = []
    for i in range(steps // 2):
        out += [StepPlan("setWeight", weight=min(100, 2 + 2 * i)), StepPlan("pause", duration=10)]
    return Plan(steps=tuple(out), policy=PolicyPlan(interval=5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", default="")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gate-bench-advance-") as tmp:
        url = args.store or f"sqlite:///{Path(tmp) / 'runs.sqlite'}"
        per_transition: list[float] = []
        idle: list[float] = []
        transitions = 0
        with open_store(url) as store:
            for _ in range(args.runs):
                clock = ManualClock()
                runner = Runner.create(
                    store,
                    _plan(args.steps),
                    contract_name="bench",
                    clock=clock,
                    router=RecordingRouter(),
                    analyst=ScriptedAnalyst(lambda _r: ("promote", "fine")),
                )
                started = time.perf_counter()
                due = runner.advance(clock.now())
                while due is not None:
                    t0 = time.perf_counter()
                    runner.advance(clock.now())  # nothing due: what a timer firing early costs
                    idle.append(time.perf_counter() - t0)
                    clock.advance(max(0.0, due - clock.now()))
                    due = runner.advance(clock.now())
                elapsed = time.perf_counter() - started
                transitions = runner.seq
                per_transition.append(elapsed / max(1, runner.seq))
                assert runner.state.status == "promoted", runner.state
        print(f"store: {url.split('://')[0]}  steps: {args.steps}  transitions per run: {transitions}")
        print(
            f"per transition (median of {args.runs} runs): {statistics.median(per_transition) * 1000:.1f} ms"
        )
        idle.sort()
        print(
            f"advance() with nothing due: median {statistics.median(idle) * 1e6:.0f} µs, "
            f"p95 {idle[int(len(idle) * 0.95)] * 1e6:.0f} µs ({len(idle)} calls)"
        )


if __name__ == "__main__":
    main()
