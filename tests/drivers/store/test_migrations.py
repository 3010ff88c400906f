"""Schema migrations: a store written by gate 0.1 (before migrations) opens intact and upgraded; a new
store is created by the migrations with exactly the tables the store's models describe; a store newer
than this gate is refused, untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

from gate.drivers.store import LookWrite, RunStore, StoreTooNew, parse_store_url
from gate.drivers.store.models import Base
from gate.drivers.store.schema import head_revision
from tests.drivers.store import legacy_v1


def legacy_store(url: str) -> legacy_v1.RunStore:
    """A store as gate 0.1 created it (its own ``create_all`` and schema_version 1)."""
    parsed = parse_store_url(url)
    if parsed.backend == "sqlite":
        assert parsed.path is not None
        return legacy_v1.RunStore(parsed.path)
    old = legacy_v1.RunStore.__new__(legacy_v1.RunStore)
    old.path = Path("unused")
    old._engine = create_engine(parsed.sqlalchemy_url)
    old._create_schema()
    return old


def fill(old: legacy_v1.RunStore) -> str:
    run = old.create_run(
        contract_name="checkout",
        service="checkout-svc",
        contract_text="kind: PerformanceGate\n",
        plan={"steps": [{"kind": "setWeight", "weight": 10}, {"kind": "analyze"}, {"kind": "setWeight"}]},
        state={"phase": "pending", "status": "running", "step": 0, "weight": 0},
        meta={"face": "cli", "namespace": "shop", "contract_sha256": "ab12"},
        at=100.0,
        run_id="legacy-run",
    )
    s1 = {"phase": "stepping", "status": "running", "step": 1, "weight": 10, "reason": "set 10%"}
    old.checkpoint(run, seq=1, at=101.0, input={"kind": "start"}, state=s1, effects=[{"kind": "set_weight"}])
    old.effect_done(run, 1, 0, at=101.5, result={"kind": "tick", "at": 101.5})
    inbox_id, data = old.next_input(run) or (0, {})
    old.checkpoint(
        run,
        seq=2,
        at=102.0,
        input=data,
        state=s1,
        effects=[{"kind": "measure"}, {"kind": "notify"}],
        inbox_id=inbox_id,
    )
    verdict = {
        "objective": "p95",
        "sli": "http-latency",
        "source": "production",
        "status": "pass",
        "reason": "p95 120 ms ≤ 220 ms",
        "numbers": {"p95": 0.12},
    }
    look = legacy_v1.LookWrite(1, 1, 102.0, 100.0, "promote", "all pass", {"n": 400}, [verdict, verdict])
    old.effect_done(run, 2, 0, at=102.5, look=look)  # effect 2.1 stays pending
    old.record_diagnostic(
        run, name="heap", url="http://canary/debug/pprof/heap", at=103.0, data=b"\x00pprof" * 100
    )
    old.record_notification(
        run, key="k1", channel="slack", event="promoted", ok=True, at=104.0, payload={"a": 1}
    )
    old.request(run, {"kind": "abort", "by": "alice", "reason": "why not"})
    return run


def snapshot(store: Any, run: str) -> dict[str, Any]:
    d = store.run_detail(run)
    assert d is not None
    return {
        "summary": (
            d.summary.id,
            d.summary.contract_name,
            d.summary.service,
            d.summary.status,
            d.summary.step,
            d.summary.steps,
            d.summary.weight,
            d.summary.reason,
            d.summary.created_at,
            d.summary.updated_at,
        ),
        "plan": d.plan,
        "meta": d.meta,
        "state": d.state,
        "text": d.contract_text,
        "timeline": [
            (
                t.seq,
                t.at,
                t.input_kind,
                t.input,
                t.state,
                [(e.idx, e.kind, e.done, e.ok, e.attempts) for e in t.effects],
            )
            for t in d.timeline
        ],
        "looks": [
            (
                lk.look,
                lk.seq,
                lk.action,
                lk.evidence,
                [(v.objective, v.status, v.numbers) for v in lk.verdicts],
            )
            for lk in d.looks
        ],
        "diagnostics": [(x.id, x.name, x.size, x.truncated) for x in d.diagnostics],
        "notifications": [(n.key, n.channel, n.ok, n.payload) for n in d.notifications],
        "pending": [(p.seq, p.idx, p.effect) for p in store.pending_effects(run)],
        "next_input": store.next_input(run),
    }


def schema_diff(url: str) -> list[Any]:
    engine = create_engine(parse_store_url(url).sqlalchemy_url)
    try:
        with engine.connect() as conn:
            return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))
    finally:
        engine.dispose()


def test_a_new_store_has_exactly_the_schema_of_the_models(store_url: str) -> None:
    RunStore(store_url).close()
    assert schema_diff(store_url) == []


def test_a_store_of_gate_0_1_opens_intact_and_upgraded(store_url: str) -> None:
    old = legacy_store(store_url)
    run = fill(old)
    before = snapshot(old, run)
    blob = old.diagnostic_data(run, before["diagnostics"][0][0])
    old.close()

    with RunStore(store_url) as store:
        assert snapshot(store, run) == before
        assert store.diagnostic_data(run, before["diagnostics"][0][0]) == blob  # moved to its own table
        (summary,) = store.list_runs()
        assert (summary.face, summary.namespace, summary.steps) == (
            "cli",
            "shop",
            3,
        )  # filled from meta and plan
        assert [r.id for r in store.list_runs(namespace="shop", face="cli")] == [run]
        # …and the upgraded store takes new records and leases.
        s1 = before["state"]
        store.effect_done(run, 2, 1, at=105.0)
        inbox_id, data = store.next_input(run) or (0, {})
        store.checkpoint(run, seq=3, at=106.0, input=data, state=s1, effects=[], inbox_id=inbox_id)
        assert store.acquire_lease(run, "me", ttl=10, now=200.0).holder == "me"
        look = LookWrite(2, 1, 106.0, 100.0, "hold", "wait", {}, [])
        store.checkpoint(
            run, seq=4, at=107.0, input={"kind": "tick"}, state=s1, effects=[{"kind": "measure"}]
        )
        store.effect_done(run, 4, 0, at=107.5, look=look, holder="me")
        assert [lk.look for lk in store.looks(run)] == [1, 2]
    engine = create_engine(parse_store_url(store_url).sqlalchemy_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
        assert conn.execute(text("SELECT value FROM gate_meta WHERE key='schema_version'")).scalar() == "2"
        assert "data" not in {c["name"] for c in inspect(conn).get_columns("diagnostics")}
    engine.dispose()
    assert schema_diff(store_url) == []
    RunStore(store_url).close()  # opening an up-to-date store again changes nothing


@pytest.mark.parametrize("how", ["revision", "schema_version"])
def test_a_store_newer_than_this_gate_is_refused_untouched(store_url: str, how: str) -> None:
    with RunStore(store_url) as store:
        run = store.create_run(contract_name="c", plan={}, state={"phase": "pending"}, at=1.0)
    engine = create_engine(parse_store_url(store_url).sqlalchemy_url)
    with engine.begin() as conn:
        if how == "revision":
            conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
        else:
            conn.execute(text("UPDATE gate_meta SET value = '7' WHERE key = 'schema_version'"))
        conn.execute(text("CREATE TABLE from_the_future (x INTEGER)"))
    with pytest.raises(StoreTooNew) as caught:
        RunStore(store_url)
    message = str(caught.value)
    assert parse_store_url(store_url).display in message
    assert "newer" in message and "0099" in message if how == "revision" else "schema version 7" in message
    assert "newer gate" in message  # what to do
    with engine.connect() as conn:  # nothing was changed
        tables = set(inspect(conn).get_table_names())
        assert "from_the_future" in tables
        assert conn.execute(text("SELECT count(*) FROM runs WHERE id = :r"), {"r": run}).scalar() == 1
    engine.dispose()


def test_the_sqlite_file_keeps_wal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "runs.sqlite"
    with RunStore(f"sqlite:///{path}") as store, store._engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
