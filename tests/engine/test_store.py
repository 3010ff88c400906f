"""The run store (SQLite through SQLAlchemy): write-ahead records, the inbox, the dashboard's queries;
and the runner recording a Prometheus outage as error looks while it holds."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest

from gate.drivers.store import MAX_DIAGNOSTIC_BYTES, LookWrite, RunStore, StoreError
from gate.engine.clock import ManualClock
from gate.engine.machine import Plan, PolicyPlan, StepPlan
from gate.engine.runner import LookRequest, Runner
from tests.engine.doubles import RecordingRouter, ScriptedAnalyst


def new_run(store: RunStore, name: str = "checkout", at: float = 100.0) -> str:
    return store.create_run(
        contract_name=name,
        plan={"steps": [{"kind": "setWeight"}] * 3},
        state={"phase": "pending", "status": "running", "step": 0, "weight": 0},
        at=at,
    )


def test_the_file_is_sqlite_in_wal_mode_with_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with RunStore(path) as store:
        new_run(store)
        with store._engine.connect() as conn:  # the pragmas each connection of the store runs with
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in raw.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "runs",
        "transitions",
        "effects",
        "inbox",
        "looks",
        "verdicts",
        "diagnostics",
        "notifications",
    } <= tables


def test_checkpoints_must_follow_each_other(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite") as store:
        run = new_run(store)
        state = {"phase": "stepping", "status": "running", "step": 1, "weight": 5}
        store.checkpoint(
            run, seq=1, at=101.0, input={"kind": "start"}, state=state, effects=[{"kind": "set_weight"}]
        )
        with pytest.raises(StoreError, match="does not follow"):
            store.checkpoint(run, seq=1, at=102.0, input={"kind": "tick"}, state=state, effects=[])
        with pytest.raises(StoreError, match="no run"):
            store.checkpoint("nope", seq=1, at=1.0, input={}, state=state, effects=[])
        assert [p.effect["kind"] for p in store.pending_effects(run)] == ["set_weight"]
        store.effect_done(run, 1, 0, at=101.5, result={"kind": "tick", "at": 101.5})
        store.effect_done(run, 1, 0, at=101.6, result={"kind": "tick", "at": 101.6})  # a replay: ignored
        assert store.pending_effects(run) == []
        assert store.count("inbox", run) == 1
        inbox_id, data = store.next_input(run) or (0, {})
        assert data["at"] == 101.5
        store.checkpoint(run, seq=2, at=102.0, input=data, state=state, effects=[], inbox_id=inbox_id)
        assert store.next_input(run) is None


def test_looks_verdicts_diagnostics_and_notifications_are_read_back_for_the_dashboard(tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite") as store:
        older = new_run(store, "orders", at=50.0)
        run = new_run(store, at=100.0)
        state = {"phase": "stepping", "status": "running", "step": 1, "weight": 5, "reason": "started"}
        store.checkpoint(
            run, seq=1, at=101.0, input={"kind": "tick"}, state=state, effects=[{"kind": "measure"}]
        )
        verdict = {
            "objective": "http-latency-p95",
            "sli": "http-latency",
            "source": "production",
            "status": "fail",
            "reason": "p95 275 ms > 220 ms",
            "numbers": {"p95": 0.275},
        }
        look = LookWrite(1, 1, 101.0, 100.0, "rollback", "p95 275 ms > 220 ms", {"n": 400}, [verdict])
        store.effect_done(run, 1, 0, at=101.2, look=look)
        huge = b"g" * (MAX_DIAGNOSTIC_BYTES + 10)
        did = store.record_diagnostic(run, name="goroutines", url="http://canary/debug", at=102.0, data=huge)
        store.record_notification(run, key="k1", channel="slack", event="rolling_back", ok=False, at=103.0)
        assert not store.notification_sent(run, "k1", "slack")
        store.record_notification(run, key="k1", channel="slack", event="rolling_back", ok=True, at=104.0)
        assert store.notification_sent(run, "k1", "slack")

        runs = store.list_runs()
        assert [r.id for r in runs] == [run, older]
        assert runs[0].steps == 3 and runs[0].weight == 5 and runs[0].reason == "started"
        assert [r.id for r in store.list_runs(status="running", limit=1)] == [run]
        detail = store.run_detail(run)
        assert detail is not None
        assert [(t.seq, t.input_kind, [e.kind for e in t.effects]) for t in detail.timeline] == [
            (1, "tick", ["measure"])
        ]
        (lk,) = detail.looks
        assert (lk.action, lk.evidence, lk.verdicts[0].numbers) == ("rollback", {"n": 400}, {"p95": 0.275})
        (diag,) = detail.diagnostics
        assert diag.truncated and diag.size == MAX_DIAGNOSTIC_BYTES
        assert store.diagnostic_data(run, did) == b"g" * MAX_DIAGNOSTIC_BYTES
        assert store.diagnostic_data(older, did) is None  # a diagnostic belongs to its run
        assert [(n.channel, n.ok) for n in detail.notifications] == [("slack", True)]
        assert store.run_detail("missing") is None
        with pytest.raises(StoreError):
            store.request("missing", {"kind": "abort"})


def test_a_prometheus_outage_mid_rollout_holds_is_recorded_and_then_resolves(tmp_path: Path) -> None:
    plan = Plan(
        steps=(
            StepPlan("setWeight", weight=10),
            StepPlan("analyze", duration=10),
            StepPlan("setWeight", weight=100),
        ),
        policy=PolicyPlan(interval=5, blind_looks=10),
    )
    clock = ManualClock(start=0.0)
    router = RecordingRouter()

    def down(r: LookRequest) -> bool:
        return 5 <= r.at < 30  # Prometheus unreachable for 25 s

    weights_during_outage: list[int] = []

    def script(r: LookRequest) -> tuple[Any, str]:
        return ("promote", "all objectives pass")

    analyst = ScriptedAnalyst(script, raise_when=down)
    with RunStore(tmp_path / "runs.sqlite") as store:

        def observe(seq: int, event: Any, state: Any, effects: Any) -> None:
            if 5 <= event.at < 30:
                weights_during_outage.append(state.weight)

        runner = Runner.create(
            store,
            plan,
            contract_name="checkout",
            clock=clock,
            router=router,
            analyst=analyst,
            observer=observe,
        )
        final = runner.run()
        assert final.status == "promoted"
        assert set(weights_during_outage) == {10}  # held at 10 %: never promoted while blind
        detail = store.run_detail(runner.run_id)
        assert detail is not None
        actions = [(lk.at, lk.action) for lk in detail.looks]
        assert [a for t, a in actions if 5 <= t < 30] == ["error"] * 5
        assert actions[-1][1] == "promote" and actions[-1][0] >= 30


def test_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    # A runner and the dashboard (or a poller) creating the same new file at once: none may fail.
    # Threads with a store each race exactly like processes do: SQLite sees separate connections.
    path = tmp_path / "runs.sqlite"
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            RunStore(path).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with RunStore(path) as store:
        assert store.list_runs() == []
