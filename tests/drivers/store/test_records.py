"""The records of a run on both back ends: write-ahead checkpoints, effects, the inbox, looks and their
verdicts, diagnostics (whose bytes no list or detail query reads), notifications, the audit log, and the
paged, filtered queries of the dashboard and `gate runs`."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import event

from gate.drivers.store import (
    MAX_DIAGNOSTIC_BYTES,
    LookWrite,
    RunFinished,
    RunStore,
    StoreError,
)

RUNNING = {"phase": "stepping", "status": "running", "step": 1, "weight": 5, "reason": "started"}


def new_run(store: RunStore, name: str = "checkout", at: float = 100.0, **kw: Any) -> str:
    return store.create_run(
        contract_name=name,
        plan={"steps": [{"kind": "setWeight"}] * 3},
        state={"phase": "pending", "status": "running", "step": 0, "weight": 0},
        at=at,
        **kw,
    )


def verdict(status: str = "pass", objective: str = "p95") -> dict[str, Any]:
    return {
        "objective": objective,
        "sli": "http-latency",
        "source": "production",
        "status": status,
        "reason": "p95 275 ms > 220 ms",
        "numbers": {"p95": 0.275},
    }


def test_checkpoints_must_follow_each_other(store_url: str) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
        store.checkpoint(
            run, seq=1, at=101.0, input={"kind": "start"}, state=RUNNING, effects=[{"kind": "set_weight"}]
        )
        with pytest.raises(StoreError, match="does not follow"):
            store.checkpoint(run, seq=1, at=102.0, input={"kind": "tick"}, state=RUNNING, effects=[])
        with pytest.raises(StoreError, match="does not follow"):
            store.checkpoint(run, seq=3, at=102.0, input={"kind": "tick"}, state=RUNNING, effects=[])
        with pytest.raises(StoreError, match="no run"):
            store.checkpoint("nope", seq=1, at=1.0, input={}, state=RUNNING, effects=[])
        assert [p.effect["kind"] for p in store.pending_effects(run)] == ["set_weight"]
        store.effect_done(run, 1, 0, at=101.5, result={"kind": "tick", "at": 101.5})
        store.effect_done(run, 1, 0, at=101.6, result={"kind": "tick", "at": 101.6})  # a replay: ignored
        with pytest.raises(StoreError, match=r"no effect 1\.7"):
            store.effect_done(run, 1, 7, at=101.6)
        assert store.pending_effects(run) == []
        assert store.count("inbox", run) == 1
        inbox_id, data = store.next_input(run) or (0, {})
        assert data["at"] == 101.5
        store.checkpoint(run, seq=2, at=102.0, input=data, state=RUNNING, effects=[], inbox_id=inbox_id)
        assert store.next_input(run) is None
        assert store.last_seq(run) == 2 and store.get_state(run) == RUNNING
        (summary,) = store.list_runs()
        assert (summary.step, summary.weight, summary.reason, summary.updated_at) == (1, 5, "started", 102.0)


def test_concurrent_checkpoints_of_one_seq_leave_one_and_a_clean_refusal(store_url: str) -> None:
    # Two writers (threads with a store each: separate connections, like processes) race for seq 1.
    with RunStore(store_url) as setup:
        run = new_run(setup)
    stores = [RunStore(store_url) for _ in range(4)]
    start = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def write(store: RunStore, n: int) -> None:
        start.wait()
        try:
            store.checkpoint(run, seq=1, at=101.0, input={"kind": "start", "n": n}, state=RUNNING, effects=[])
            outcomes.append("written")
        except StoreError as exc:
            outcomes.append(type(exc).__name__ + ": " + str(exc))

    threads = [threading.Thread(target=write, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for s in stores:
        s.close()
    assert sorted(outcomes)[-1] == "written" and outcomes.count("written") == 1, outcomes
    assert all("does not follow" in o for o in outcomes if o != "written")
    with RunStore(store_url) as store:
        assert store.count("transitions", run) == 1


def test_looks_verdicts_diagnostics_and_notifications_are_read_back(store_url: str) -> None:
    with RunStore(store_url) as store:
        older = new_run(store, "orders", at=50.0)
        run = new_run(store, at=100.0)
        store.checkpoint(
            run, seq=1, at=101.0, input={"kind": "tick"}, state=RUNNING, effects=[{"kind": "measure"}]
        )
        look = LookWrite(1, 1, 101.0, 100.0, "rollback", "p95 275 ms > 220 ms", {"n": 400}, [verdict("fail")])
        store.effect_done(run, 1, 0, at=101.2, look=look)
        huge = b"g" * (MAX_DIAGNOSTIC_BYTES + 10)
        did = store.record_diagnostic(run, name="goroutines", url="http://canary/debug", at=102.0, data=huge)
        store.record_notification(run, key="k1", channel="slack", event="rolling_back", ok=False, at=103.0)
        assert not store.notification_sent(run, "k1", "slack")
        store.record_notification(run, key="k1", channel="slack", event="rolling_back", ok=True, at=104.0)
        assert store.notification_sent(run, "k1", "slack")

        assert [r.id for r in store.list_runs()] == [run, older]
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


def test_no_list_or_detail_query_reads_the_diagnostic_bytes(store_url: str) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
        store.record_diagnostic(run, name="heap", url="http://canary/heap", at=1.0, data=b"x" * 4_000_000)
        statements: list[str] = []

        def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
            statements.append(statement)

        event.listen(store._engine, "before_cursor_execute", seen)
        try:
            detail = store.run_detail(run)
            store.list_runs()
            store.run_summary(run)
            store.looks(run)
        finally:
            event.remove(store._engine, "before_cursor_execute", seen)
        assert detail is not None and detail.diagnostics[0].size == 4_000_000
        assert statements and not [s for s in statements if "diagnostic_blobs" in s]


def test_a_look_is_any_object_with_the_attributes(store_url: str) -> None:
    class EngineLook:  # what the engine hands over, not the store's own LookWrite
        def __init__(self) -> None:
            self.look, self.step, self.at, self.since = 1, 2, 10.0, 5.0
            self.action, self.reason, self.evidence = "hold", "more evidence needed", {"n": 3}
            self.verdicts = [verdict("inconclusive")]

    with RunStore(store_url) as store:
        run = new_run(store)
        store.checkpoint(
            run, seq=1, at=10.0, input={"kind": "tick"}, state=RUNNING, effects=[{"kind": "measure"}]
        )
        store.effect_done(run, 1, 0, at=10.0, look=EngineLook())
        (lk,) = store.looks(run)
        assert (lk.step, lk.action, lk.verdicts[0].status) == (2, "hold", "inconclusive")


def test_a_request_to_a_finished_run_says_it_has_finished(store_url: str) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
        store.request(run, {"kind": "abort", "by": "alice"})
        done = {"phase": "finished", "status": "promoted", "step": 3, "weight": 100, "reason": "all pass"}
        store.checkpoint(run, seq=1, at=200.0, input={"kind": "tick"}, state=done, effects=[])
        with pytest.raises(RunFinished, match=f"run {run} has already finished: promoted") as caught:
            store.request(run, {"kind": "abort", "by": "bob"})
        assert caught.value.status == "promoted"
        with pytest.raises(StoreError, match="no run"):
            store.request("missing", {"kind": "abort"})
        (summary,) = store.list_runs()
        assert summary.finished_at == 200.0


def test_the_runs_list_is_paged_filtered_and_counted(store_url: str) -> None:
    with RunStore(store_url) as store:
        ids = []
        for i in range(30):
            ids.append(
                new_run(
                    store,
                    name=f"contract-{i % 3}",
                    at=1000.0 + i,
                    meta={"face": "operator" if i % 2 else "cli", "namespace": f"ns-{i % 5}"},
                    run_id=f"run-{i:02d}",
                )
            )
        done = {"phase": "finished", "status": "rolled_back", "step": 1, "weight": 0}
        for rid in ids[::4]:
            store.checkpoint(
                rid, seq=1, at=5000.0 - int(rid[-2:]), input={"kind": "tick"}, state=done, effects=[]
            )
        newest = list(reversed(ids))
        assert [r.id for r in store.list_runs(limit=10)] == newest[:10]
        assert [r.id for r in store.list_runs(limit=10, offset=10)] == newest[10:20]
        assert [r.id for r in store.list_runs(limit=10, offset=25)] == newest[25:]
        assert [r.id for r in store.list_runs(limit=3, order="oldest")] == ids[:3]
        assert [r.id for r in store.list_runs(limit=2, order="updated")] == ["run-00", "run-04"]
        got = store.list_runs(contract="contract-1", face="operator", namespace="ns-1")
        expected = [
            r for r in newest if int(r[-2:]) % 3 == 1 and int(r[-2:]) % 2 == 1 and int(r[-2:]) % 5 == 1
        ]
        assert [r.id for r in got] == expected
        assert store.count_runs(contract="contract-1", face="operator", namespace="ns-1") == len(expected)
        assert store.count_runs() == 30
        assert store.count_runs(status="rolled_back") == len(ids[::4])
        assert {r.status for r in store.list_runs(status="rolled_back", limit=100)} == {"rolled_back"}
        assert store.count_runs(namespace="nowhere") == 0 and store.list_runs(namespace="nowhere") == []
        with pytest.raises(StoreError, match="unknown order"):
            store.list_runs(order="random()")
        summary = store.run_summary("run-07")
        assert summary is not None and (summary.face, summary.namespace, summary.steps) == (
            "operator",
            "ns-2",
            3,
        )


def test_looks_and_transitions_are_read_incrementally(store_url: str) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
        for n in range(1, 8):
            store.checkpoint(
                run, seq=n, at=float(n), input={"kind": "tick"}, state=RUNNING, effects=[{"kind": "measure"}]
            )
            look = LookWrite(
                n, 1, float(n), 0.0, "hold", f"look {n}", {}, [verdict(objective="a"), verdict(objective="b")]
            )
            store.effect_done(run, n, 0, at=float(n), look=look)
        assert [lk.look for lk in store.looks(run)] == list(range(1, 8))
        page = store.looks(run, after_look=2, limit=3)
        assert [lk.look for lk in page] == [3, 4, 5]
        assert all([v.objective for v in lk.verdicts] == ["a", "b"] for lk in page)
        assert [lk.look for lk in store.looks(run, after_look=page[-1].look)] == [6, 7]
        assert store.looks(run, after_look=7) == []
        bare = store.looks(run, with_verdicts=False)
        assert [(lk.look, lk.reason, lk.verdicts) for lk in bare] == [
            (n, f"look {n}", []) for n in range(1, 8)
        ]
        assert [t.seq for t in store.transitions(run, after_seq=5)] == [6, 7]
        assert [len(t.effects) for t in store.transitions(run, after_seq=5)] == [1, 1]
        assert [t.seq for t in store.transitions(run, after_seq=1, limit=2)] == [2, 3]


def test_the_audit_log_keeps_who_did_what_and_why(store_url: str) -> None:
    with RunStore(store_url) as store:
        run = new_run(store)
        other = new_run(store, "orders")
        store.record_audit(
            run,
            actor="alice",
            action="approve",
            reason="looks fine",
            at=10.0,
            origin="dashboard",
            details={"step": 2},
        )
        store.record_audit(
            run, actor="bob", action="abort", reason="<script>x</script>", at=11.0, origin="cli"
        )
        store.record_audit(other, actor="carol", action="retry", at=12.0)
        entries = store.audit(run)
        assert [(a.actor, a.action, a.reason, a.origin, a.details, a.at) for a in entries] == [
            ("alice", "approve", "looks fine", "dashboard", {"step": 2}, 10.0),
            ("bob", "abort", "<script>x</script>", "cli", {}, 11.0),
        ]
        with pytest.raises(StoreError, match="no run"):
            store.record_audit("missing", actor="x", action="abort")


def test_processes_opening_a_new_store_at_once_all_succeed(store_url: str) -> None:
    # A runner and the dashboard creating (migrating) the same new store at once: none may fail.
    start = threading.Barrier(6)
    errors: list[BaseException] = []

    def open_store() -> None:
        start.wait()
        try:
            RunStore(store_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with RunStore(store_url) as store:
        assert store.list_runs() == []
