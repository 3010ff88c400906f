"""A broken store is named, not crashed on: truncated, random, wrongly-typed or foreign SQLite files, a
PostgreSQL that refuses connections, a record that is not JSON — each a ``StoreError`` subclass saying
what is wrong, which store (its URL without secrets) and what to do, with the file left as it was.
Passwords given in a URL appear in no message, repr or record."""

from __future__ import annotations

import hashlib
import os
import random
import sqlite3
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from gate.drivers.store import (
    EXIT_STORE,
    LookWrite,
    RunStore,
    StoreCorrupt,
    StoreError,
    StoreUnavailable,
    StoreURLInvalid,
    parse_store_url,
    redact,
)
from tests.support.pg import PgServer
from tests.support.ports import free_port


def filled(path: Path, runs: int = 200) -> None:
    with RunStore(path) as store:
        for i in range(runs):
            store.create_run(
                contract_name=f"contract-{i}",
                plan={"steps": [{"kind": "setWeight"}] * 20},
                state={"phase": "pending", "status": "running", "note": "x" * 400},
                contract_text="spec: " + "y" * 3000,
                at=float(i),
            )


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def refused(url: str | Path) -> StoreError:
    """Open the store and read it as `gate runs` would; return the store error that stops it."""
    with pytest.raises(StoreError) as caught, RunStore(url) as store:
        for r in store.list_runs(limit=1000):
            store.run_detail(r.id)
    return caught.value


def assert_named(exc: StoreError, shown: str) -> None:
    message = str(exc)
    assert shown in message, message  # which store
    assert exc.hint, message  # what to do
    assert "Traceback" not in message and len(message) < 1200


@pytest.mark.parametrize("keep", [0.9, 0.5, 0.1, 0.02])
def test_a_truncated_sqlite_store(tmp_path: Path, keep: float) -> None:
    whole = tmp_path / "whole.sqlite"
    filled(whole)
    cut = tmp_path / "cut.sqlite"
    data = whole.read_bytes()
    cut.write_bytes(data[: int(len(data) * keep)])
    before = digest(cut)
    exc = refused(cut)
    assert isinstance(exc, StoreCorrupt)
    assert_named(exc, str(cut))
    assert "damaged" in str(exc) or "malformed" in str(exc)
    assert "move the file away" in exc.hint
    assert digest(cut) == before


@pytest.mark.parametrize("content", ["random", "json", "text", "empty-header"])
def test_a_file_that_is_not_an_sqlite_database(tmp_path: Path, content: str) -> None:
    path = tmp_path / "runs.sqlite"
    path.write_bytes(
        {
            "random": random.Random(7).randbytes(65536),
            "json": b'{"runs": []}',
            "text": b"these are not the runs you are looking for\n",
            "empty-header": b"SQLite format 3",  # one byte short of the header
        }[content]
    )
    before = digest(path)
    exc = refused(path)
    assert isinstance(exc, StoreCorrupt)
    assert_named(exc, str(path))
    assert "not an SQLite database" in str(exc)
    assert digest(path) == before
    assert sorted(os.listdir(tmp_path)) == ["runs.sqlite"]  # no -wal or -shm next to it either


def test_an_sqlite_database_of_another_program_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "photos.db"
    with sqlite3.connect(path) as raw:
        raw.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
        raw.execute("INSERT INTO photos (name) VALUES ('cat.jpg')")
    raw.close()
    before = digest(path)
    exc = refused(path)
    assert isinstance(exc, StoreCorrupt)
    assert_named(exc, str(path))
    assert "not one gate wrote" in str(exc) and "photos" in str(exc)
    assert digest(path) == before
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # not switched to WAL


@pytest.mark.parametrize("kind", ["directory", "fifo", "device", "dangling-symlink"])
def test_a_store_path_that_is_not_a_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "runs.sqlite"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")
    else:
        path.symlink_to(tmp_path / "gone")
    started = time.monotonic()
    exc = refused(path)
    assert time.monotonic() - started < 5  # no hang on a pipe or an endless device
    assert isinstance(exc, StoreCorrupt)
    assert_named(exc, str(path))


def test_a_record_that_is_not_json_is_named(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'runs.sqlite'}"
    with RunStore(url) as store:
        run = store.create_run(contract_name="c", plan={"steps": []}, state={"phase": "pending"}, at=1.0)
    with sqlite3.connect(tmp_path / "runs.sqlite") as raw:
        raw.execute("UPDATE runs SET state = '{not json' WHERE id = ?", (run,))
    raw.close()
    with RunStore(url) as store:
        with pytest.raises(StoreCorrupt) as caught:
            store.get_state(run)
        assert_named(caught.value, str(tmp_path / "runs.sqlite"))
        assert "not valid JSON" in str(caught.value)
        assert store.list_runs()[0].id == run  # the list does not read the state


def test_a_table_dropped_behind_gates_back_is_named(store_url: str) -> None:
    with RunStore(store_url) as store:
        run = store.create_run(contract_name="c", plan={"steps": []}, state={"phase": "pending"}, at=1.0)
        store.checkpoint(run, seq=1, at=2.0, input={"kind": "tick"}, state={}, effects=[{"kind": "measure"}])
        store.effect_done(run, 1, 0, at=2.0, look=LookWrite(1, 0, 2.0, 1.0, "hold", "", {}, []))
    engine = create_engine(parse_store_url(store_url).sqlalchemy_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE verdicts"))
    engine.dispose()
    with RunStore(store_url) as store:
        with pytest.raises(StoreCorrupt) as caught:
            store.run_detail(run)
        assert_named(caught.value, parse_store_url(store_url).display)
        assert "verdicts" in str(caught.value)


def test_a_postgresql_that_refuses_the_connection(tmp_path: Path) -> None:
    url = f"postgresql://gate:hunter2-secret@127.0.0.1:{free_port()}/gate"
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:
        RunStore(url)
    assert time.monotonic() - started < 10
    exc = caught.value
    assert_named(exc, "postgresql://***@127.0.0.1:")
    assert "refused" in str(exc).lower() or "connect" in str(exc).lower()
    assert "hunter2" not in str(exc) and "hunter2" not in repr(exc)
    assert not exc.permanent  # a retry may help: the database may come back


def test_a_postgresql_database_that_does_not_exist(pg_server: PgServer) -> None:
    url = pg_server.url("no_such_db", password="pw-0f-mine")
    with pytest.raises(StoreUnavailable) as caught:
        RunStore(url)
    assert "no_such_db" in str(caught.value) and "pw-0f-mine" not in str(caught.value)


def test_passwords_in_the_url_appear_nowhere(pg_server: PgServer, pg_url: str) -> None:
    secret = "s3cr3t-Passw0rd"
    url = pg_url.replace("postgresql://gate@", f"postgresql://gate:{secret}@") + f"?password={secret}"
    with RunStore(url) as store:
        shown = [repr(store), str(store.url), store.display, repr(store.url), redact(url)]
        run = store.create_run(contract_name="c", plan={"steps": []}, state={"phase": "pending"}, at=1.0)
        store.acquire_lease(run, "a", ttl=60, now=1.0)
        for call in (
            lambda: store.request("missing", {"kind": "abort"}),
            lambda: store.acquire_lease(run, "b", ttl=60, now=2.0),
            lambda: store.checkpoint(run, seq=5, at=1.0, input={}, state={}, effects=[]),
        ):
            with pytest.raises(StoreError) as caught:
                call()
            shown += [str(caught.value), repr(caught.value)]
    assert all(secret not in s for s in shown), shown
    assert store.display.startswith("postgresql://***@127.0.0.1:") and "password=%2A%2A%2A" in store.display
    engine = create_engine(parse_store_url(pg_url).sqlalchemy_url)
    with engine.connect() as conn:  # and no record holds it
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')).all():
                assert secret not in str(row), table
    engine.dispose()


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:pw@db/gate",
        "sqlite://",
        "sqlite:///:memory:",
        "postgresql://u:pw@host:notaport/db",
        "postgresql://u:pw@host/",
        "",
        "x" * 5000,
    ],
)
def test_a_url_gate_cannot_open_is_bad_input(url: str) -> None:
    with pytest.raises(StoreURLInvalid) as caught:
        RunStore(url)
    assert "pw" not in str(caught.value).replace("postgresql", "").replace("sqlite", "") or "***" in str(
        caught.value
    )
    assert ":pw@" not in str(caught.value) and len(str(caught.value)) < 600


def test_the_store_exit_code_is_its_own() -> None:
    assert EXIT_STORE == 5  # 0 promoted, 1 failed, 2 bad input, 3 inconclusive, 4 error: docs/ci.md
