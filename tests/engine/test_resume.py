"""Kill the engine at every transition in turn and show exact resumption.

The runner calls a hook at every point where a kill matters: after a transition is checkpointed
(before its first effect), after an effect was applied but before it was recorded, after it was
recorded (before the next effect or transition).
For every k, a run is stopped dead at the k-th point (an exception nothing catches, or SIGKILL of
a subprocess), then a new runner is started on the same store and world. The resumed run must be
the uninterrupted run: same transitions in the same order (no step repeated or skipped), the same
records (looks, verdicts, notifications), every effect done, the router in the same state.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.drivers.store import RunStore
from gate.engine.clock import ManualClock
from gate.engine.machine import Plan, PolicyPlan, StepPlan
from gate.engine.runner import Crash, LookRequest, Runner
from tests.engine.doubles import RecordingChaos, RecordingLoad, RecordingRouter, ScriptedAnalyst

ROOT = Path(__file__).resolve().parents[2]

PLAN = Plan(
    steps=(
        StepPlan("setWeight", weight=10),
        StepPlan("pause", duration=10),
        StepPlan("analyze", duration=10),
        StepPlan("load", duration=5),
        StepPlan("chaos", experiment="risk-api-slow", duration=5),
        StepPlan("setWeight", weight=50),
        StepPlan("analyze", duration=5),
        StepPlan("setWeight", weight=100),
    ),
    policy=PolicyPlan(interval=5, undecided_looks=5, diagnostics=True),
)


def good(r: LookRequest) -> tuple[Any, str]:
    # Holds while evidence accumulates in the first analyze step, then passes.
    return (
        ("hold", "not enough evidence yet")
        if r.step == 2 and r.look < 5
        else ("promote", "all objectives pass")
    )


def regression(r: LookRequest) -> tuple[Any, str]:
    return ("rollback", "p99 2.6 s under the fault") if r.step >= 4 else ("promote", "all objectives pass")


class World:
    """What outlives a crash: the router, load, chaos (the store is the file)."""

    def __init__(self, router_failures: int = 0) -> None:
        self.router = RecordingRouter(fail_next=0)
        self.load = RecordingLoad()
        self.chaos = RecordingChaos()
        self.router_failures = router_failures


def make_runner(
    store: RunStore, run_id: str, world: World, clock: ManualClock, script: Any, hook: Any
) -> Runner:
    return Runner(
        store,
        run_id,
        router=world.router,
        analyst=ScriptedAnalyst(script),
        clock=clock,
        load=world.load,
        chaos=world.chaos,
        retry_delay=0.0,
        hook=hook,
    )


def run_with_crash_at(store: RunStore, k: int | None, script: Any) -> tuple[str, World, int]:
    """Run the plan as a new run in ``store``; stop dead at hook point k (None: never).

    Returns the run's id, the world it changed and how many points the first runner passed."""
    clock = ManualClock()
    world = World()
    points = 0

    def hook(name: str) -> None:
        nonlocal points
        points += 1
        if k is not None and points == k:
            raise Crash(f"killed at point {k} ({name})")

    runner = Runner.create(
        store,
        PLAN,
        contract_name="checkout",
        clock=clock,
        router=world.router,
        analyst=ScriptedAnalyst(script),
        load=world.load,
        chaos=world.chaos,
        retry_delay=0.0,
        hook=hook,
    )
    try:
        runner.run()
    except Crash:
        assert k is not None
        # A new runner, knowing nothing but the store and the world.
        resumed = make_runner(store, runner.run_id, world, clock, script, hook=None)
        resumed.run()
    return runner.run_id, world, points


def history(store: RunStore, run_id: str) -> dict[str, Any]:
    detail = store.run_detail(run_id)
    assert detail is not None
    return {
        "timeline": [
            (t.seq, t.input_kind, t.state["step"], t.state["weight"], t.state["status"], t.state["phase"])
            for t in detail.timeline
        ],
        "effects": [[e.kind for e in t.effects] for t in detail.timeline],
        "all_done": all(e.done and e.ok for t in detail.timeline for e in t.effects),
        "looks": [(lk.look, lk.step, lk.action, len(lk.verdicts)) for lk in detail.looks],
        "final": detail.state,
        "steps_entered": [t.state["step_started_at"] for t in detail.timeline][-1],
    }


def dedupe(calls: list[Any], what: str) -> list[Any]:
    # A repeated identical call is the idempotent re-application of an effect cut short.
    out: list[Any] = []
    for c in calls:
        if c[0] == what and (not out or out[-1] != c):
            out.append(c)
    return out


@pytest.fixture
def fast_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory on tmpfs when there is one: the same fsyncs, only cheaper (this test commits ~10^4 times)."""
    shm = Path("/dev/shm")
    if not (shm.is_dir() and os.access(shm, os.W_OK)):
        yield tmp_path
        return
    d = Path(tempfile.mkdtemp(prefix="gate-resume-", dir=shm))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.mark.parametrize("script", [good, regression], ids=["promoted", "rolled-back"])
def test_killed_at_every_point_the_run_resumes_exactly(fast_dir: Path, script: Callable[..., Any]) -> None:
    store = RunStore(fast_dir / "runs.sqlite")
    ref_id, ref_world, points = run_with_crash_at(store, None, script)
    reference = history(store, ref_id)
    assert reference["all_done"]
    assert reference["final"]["status"] in {"promoted", "rolled_back"}
    assert points > 30  # the plan passes many transitions and effects
    for k in range(1, points + 1):
        run_id, world, _ = run_with_crash_at(store, k, script)
        got = history(store, run_id)
        assert got == reference, f"resumption after a kill at point {k} differs"
        assert (world.router.weight, world.router.mirror) == (
            ref_world.router.weight,
            ref_world.router.mirror,
        )
        for what in ("weight", "mirror"):
            assert dedupe(world.router.calls, what) == dedupe(ref_world.router.calls, what), f"point {k}"
        for what in ("start", "stop"):
            assert dedupe(world.chaos.calls, what) == dedupe(ref_world.chaos.calls, what), f"point {k}"
            assert dedupe(world.load.calls, what) == dedupe(ref_world.load.calls, what), f"point {k}"
        assert world.chaos.active == set()  # faults undone in every case
        for table in ("transitions", "effects", "looks", "verdicts"):
            assert store.count(table, run_id) == store.count(table, ref_id), f"{table} after kill at {k}"
    store.close()


# ------------------------------------------------------------------------- SIGKILL, for real

CHILD = """
import os, signal, sys
from pathlib import Path
from gate.drivers.store import RunStore
from gate.engine.clock import ManualClock
from gate.engine import codec
from gate.engine.runner import Runner
from tests.engine.doubles import RecordingChaos, RecordingLoad, ScriptedAnalyst
from tests.engine.test_resume import PLAN, good, FileRouter

db, run_id, kill_at, router_file = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
store = RunStore(db)
points = 0
def hook(name):
    global points
    points += 1
    if points == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
state = codec.load_state(store.get_state(run_id))
start = max([t.at for t in store.run_detail(run_id).timeline], default=1_000_000.0)
runner = Runner(store, run_id, router=FileRouter(router_file), analyst=ScriptedAnalyst(good),
                clock=ManualClock(start), load=RecordingLoad(), chaos=RecordingChaos(), retry_delay=0.0, hook=hook)
print(runner.run().status)
"""


class FileRouter:
    """TEST DOUBLE for the router that keeps its weight in a file, so it outlives a killed process."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _write(self, weight: int, mirror: int) -> None:
        self.path.write_text(f"{weight} {mirror}")

    def read(self) -> tuple[int, int]:
        if not self.path.exists():
            return (0, 0)
        w, m = self.path.read_text().split()
        return int(w), int(m)

    def set_weight(self, canary_percent: int) -> None:
        self._write(canary_percent, self.read()[1])

    def set_mirror(self, percent: int) -> None:
        self._write(self.read()[0], percent)


@pytest.mark.parametrize("kill_at", [29])
def test_sigkill_at_a_point_then_a_new_process_resumes(tmp_path: Path, kill_at: int) -> None:
    db = tmp_path / "runs.sqlite"
    router_file = tmp_path / "router"
    with RunStore(db) as store:
        from gate.engine import codec
        from gate.engine.machine import State

        run_id = store.create_run(
            contract_name="checkout",
            plan=codec.dump_plan(PLAN),
            state=codec.dump_state(State()),
            at=1_000_000.0,
        )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), run_id, str(kill_at), str(router_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert first.returncode == -signal.SIGKILL, first.stderr
    second = subprocess.run(
        [sys.executable, "-c", CHILD, str(db), run_id, "0", str(router_file)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "promoted"
    with RunStore(db) as store:
        got = history(store, run_id)
    # The same transitions as an uninterrupted run of the same plan and script.
    with RunStore(tmp_path / "ref.sqlite") as ref_store:
        ref_id, _, _ = run_with_crash_at(ref_store, None, good)
        reference = history(ref_store, ref_id)
    assert [t[1:] for t in got["timeline"]] == [t[1:] for t in reference["timeline"]]
    assert got["effects"] == reference["effects"] and got["looks"] == reference["looks"]
    assert got["all_done"]
    assert FileRouter(router_file).read() == (100, 0)
