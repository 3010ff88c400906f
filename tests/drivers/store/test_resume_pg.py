"""The kill-at-every-transition test of ``tests/engine/test_resume.py``, against a real PostgreSQL.

The same plan, scripts, crash points and comparisons as the SQLite original (imported from it, so the
two cannot drift apart): a run stopped dead at every point in turn and resumed by a new runner that
knows only the store and the world is the uninterrupted run — no step repeated or skipped, no record
lost, faults undone. Then a real SIGKILL of a process writing to PostgreSQL, resumed by another.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from gate.drivers.store import RunStore
from tests.engine import test_resume as base

ROOT = base.ROOT


@pytest.mark.parametrize("script", [base.good, base.regression], ids=["promoted", "rolled-back"])
def test_killed_at_every_point_the_run_resumes_exactly_on_postgresql(
    pg_url: str, script: Callable[..., Any]
) -> None:
    store = RunStore(pg_url)
    assert store.backend == "postgresql"
    ref_id, ref_world, points = base.run_with_crash_at(store, None, script)
    reference = base.history(store, ref_id)
    assert reference["all_done"]
    assert reference["final"]["status"] in {"promoted", "rolled_back"}
    assert points > 30
    for k in range(1, points + 1):
        run_id, world, _ = base.run_with_crash_at(store, k, script)
        got = base.history(store, run_id)
        assert got == reference, f"resumption after a kill at point {k} differs"
        assert (world.router.weight, world.router.mirror) == (
            ref_world.router.weight,
            ref_world.router.mirror,
        )
        for what in ("weight", "mirror"):
            assert base.dedupe(world.router.calls, what) == base.dedupe(ref_world.router.calls, what), (
                f"point {k}"
            )
        for what in ("start", "stop"):
            assert base.dedupe(world.chaos.calls, what) == base.dedupe(ref_world.chaos.calls, what), (
                f"point {k}"
            )
            assert base.dedupe(world.load.calls, what) == base.dedupe(ref_world.load.calls, what), (
                f"point {k}"
            )
        assert world.chaos.active == set()
        for table in ("transitions", "effects", "looks", "verdicts"):
            assert store.count(table, run_id) == store.count(table, ref_id), f"{table} after kill at {k}"
    store.close()


CHILD = base.CHILD.replace("Path(sys.argv[1])", "sys.argv[1]")  # a store URL instead of a file


@pytest.mark.parametrize("kill_at", [7, 29])
def test_sigkill_of_a_process_writing_to_postgresql_then_a_new_process_resumes(
    pg_url: str, tmp_path: Any, kill_at: int
) -> None:
    from gate.engine import codec
    from gate.engine.machine import State

    router_file = tmp_path / "router"
    with RunStore(pg_url) as store:
        run_id = store.create_run(
            contract_name="checkout",
            plan=codec.dump_plan(base.PLAN),
            state=codec.dump_state(State()),
            at=1_000_000.0,
        )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def child(kill: int) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CHILD, pg_url, run_id, str(kill), str(router_file)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first = child(kill_at)
    assert first.returncode == -signal.SIGKILL, first.stderr
    second = child(0)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "promoted"
    with RunStore(pg_url) as store:
        got = base.history(store, run_id)
    with RunStore(tmp_path / "ref.sqlite") as ref_store:
        ref_id, _, _ = base.run_with_crash_at(ref_store, None, base.good)
        reference = base.history(ref_store, ref_id)
    assert [t[1:] for t in got["timeline"]] == [t[1:] for t in reference["timeline"]]
    assert got["effects"] == reference["effects"] and got["looks"] == reference["looks"]
    assert got["all_done"]
    assert base.FileRouter(router_file).read() == (100, 0)
