"""Opening a store: the database engine for a URL, the schema brought to the newest migration, and the
database driver's failures turned into named store errors.

The migrations run in one transaction that also serialises the processes opening the store at once:
on SQLite a ``BEGIN IMMEDIATE`` (SQLite's DDL is transactional), on PostgreSQL an advisory lock held
until the commit. A store written before migrations existed (``gate_meta.schema_version`` 1, no
``alembic_version``) is stamped with the first revision and upgraded from there.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from gate.drivers.store.errors import StoreCorrupt, StoreError, StoreTooNew, StoreUnavailable
from gate.drivers.store.models import SCHEMA_VERSION
from gate.drivers.store.url import StoreURL

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
LEGACY_REVISION = "0001"  # what a store without alembic_version but with schema_version 1 is
SQLITE_HEADER = b"SQLite format 3\x00"
_ADVISORY_KEY = 0x6761_7465_5F73  # "gate_s": one lock id for every gate store migration
WRITE = "gate_write"  # execution option: this transaction writes (SQLite: BEGIN IMMEDIATE)

_CORRUPT_HINT = (
    "move the file away (or restore it from a backup) and run again: a new store is created; "
    "the runs recorded in the broken one cannot be read by gate"
)
_CORRUPT_HINT_PG = "restore the database from a backup, or give gate a new empty database"


def _corrupt_hint(url: StoreURL) -> str:
    return _CORRUPT_HINT if url.backend == "sqlite" else _CORRUPT_HINT_PG


@cache
def _script() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


def head_revision() -> str:
    """The newest migration this gate knows."""
    head = _script().get_current_head()
    assert head is not None
    return head


def known_revisions() -> set[str]:
    """Every migration this gate knows."""
    return {rev.revision for rev in _script().walk_revisions()}


# ------------------------------------------------------------------------------------- engines


def make_engine(url: StoreURL) -> Engine:
    """A SQLAlchemy engine for the store (SQLite pragmas and transaction modes, or psycopg 3)."""
    if url.backend == "sqlite":
        assert url.path is not None
        _check_sqlite_file(url)
        url.path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url.sqlalchemy_url, connect_args={"timeout": 10.0})
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url.sqlalchemy_url,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=5,
        connect_args={"connect_timeout": 5, "application_name": "gate"},
    )


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # The driver's own transaction handling is off: SQLAlchemy's "begin" event below says BEGIN, so
    # that reads see one snapshot, writes take the lock when they start, and DDL is transactional.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # FULL fsyncs on every commit (WAL, set once per file by ensure_schema, is the file's own mode).
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=10000")
    finally:
        cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    write = bool(conn.get_execution_options().get(WRITE))
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _check_sqlite_file(url: StoreURL) -> None:
    path = url.path
    assert path is not None
    if not path.exists():
        if path.is_symlink():
            raise StoreCorrupt(
                f"run store {url.display} is a symbolic link to nothing", hint="give the path of a file"
            )
        return
    if not path.is_file():
        raise StoreCorrupt(
            f"run store {url.display} is not a regular file (a directory, a device or a pipe)",
            hint="give the path of an SQLite file gate created, or of one that does not exist yet",
        )
    try:
        with path.open("rb") as fh:
            head = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise StoreUnavailable(
            f"run store {url.display} cannot be read: {exc.strerror or exc}",
            hint="check the file's permissions",
        ) from None
    if head and head != SQLITE_HEADER:
        raise StoreCorrupt(
            f"run store {url.display} is not an SQLite database (its first bytes are not SQLite's header)",
            hint=_corrupt_hint(url),
        )


# ------------------------------------------------------------------------------------ migration


def ensure_schema(engine: Engine, url: StoreURL) -> None:
    """Bring the store's schema to the newest migration (creating it when the store is empty)."""
    head = head_revision()
    with translate(url), engine.connect() as conn:
        current = _revision(conn, url)
        conn.rollback()
    if url.backend == "sqlite":
        _wal(engine, url)  # only now: a file that is not a gate store is left as it was
    if current == head:
        return
    with translate(url), engine.execution_options(**{WRITE: True}).begin() as conn:
        if url.backend == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})
        current = _revision(conn, url)  # another process may have migrated while we waited
        if current == head:
            return
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.attributes["connection"] = conn
        if current == "legacy":
            command.stamp(cfg, LEGACY_REVISION)
        command.upgrade(cfg, "head")


def _wal(engine: Engine, url: StoreURL) -> None:
    # WAL lets the dashboard read while the engine writes. It cannot be set inside a transaction, so on
    # the driver's connection itself (which runs in autocommit: see _sqlite_connect).
    with translate(url):
        raw = engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()
        finally:
            raw.close()


def _revision(conn: Connection, url: StoreURL) -> str | None:
    """The store's migration revision; "legacy" for a pre-migration store; None for an empty one."""
    tables = set(inspect(conn).get_table_names())
    version = _schema_version(conn, url) if "gate_meta" in tables else None
    if version is not None and version > SCHEMA_VERSION:
        raise _too_new(url, f"schema version {version}")
    if "alembic_version" in tables:
        revs = [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version")).all()]
        if len(revs) != 1:
            raise StoreCorrupt(
                f"run store {url.display} records {len(revs)} schema revisions (one expected)",
                hint=_corrupt_hint(url),
            )
        if revs[0] not in known_revisions():
            raise _too_new(url, f"schema revision {str(revs[0])[:40]!r}")
        return str(revs[0])
    if not tables:
        return None
    if {"runs", "gate_meta"} <= tables and version == 1:
        return "legacy"
    listed = ", ".join(sorted(tables)[:8]) + (" …" if len(tables) > 8 else "")
    raise StoreCorrupt(
        f"run store {url.display} is a database, but not one gate wrote (it holds the tables {listed})",
        hint="give gate a store of its own: a new file, or an empty PostgreSQL database",
    )


def _schema_version(conn: Connection, url: StoreURL) -> int | None:
    row = conn.execute(text("SELECT value FROM gate_meta WHERE key = 'schema_version'")).first()
    if row is None:
        return None
    try:
        return int(str(row[0]))
    except ValueError:
        raise StoreCorrupt(
            f"run store {url.display} has an unreadable schema version", hint=_corrupt_hint(url)
        ) from None


def _too_new(url: StoreURL, what: str) -> StoreTooNew:
    return StoreTooNew(
        f"run store {url.display} has {what}, newer than this gate knows (it knows up to revision "
        f"{head_revision()}, schema version {SCHEMA_VERSION}): a newer gate wrote it",
        hint="run the newer gate on it (or upgrade this one); this gate does not read or change it",
    )


# ---------------------------------------------------------------------------------- translation


@contextmanager
def translate(url: StoreURL) -> Iterator[None]:
    """Turn the database driver's failures into ``StoreError`` subclasses naming the store."""
    try:
        yield
    except StoreError:
        raise
    except json.JSONDecodeError as exc:
        raise StoreCorrupt(
            f"run store {url.display} holds a record that is not valid JSON ({exc.msg} at {exc.pos})",
            hint=_corrupt_hint(url),
        ) from None
    except IntegrityError as exc:
        raise StoreError(
            f"run store {url.display} refused a write that conflicts with what it holds: "
            f"{url.scrub(str(exc.orig))}",
            hint="another process may be writing the same run; see `docs/store.md` (leases)",
        ) from None
    except DBAPIError as exc:
        raise classify(exc, url) from None
    except SQLAlchemyError as exc:
        raise StoreUnavailable(
            f"run store {url.display}: {url.scrub(str(exc))}", hint="check the store and run again"
        ) from None


def classify(exc: DBAPIError, url: StoreURL) -> StoreError:
    """The store error a driver error means."""
    message = url.scrub(str(exc.orig))
    low = message.lower()
    if url.backend == "sqlite":
        if any(
            s in low for s in ("not a database", "malformed", "no such table", "no such column", "corrupt")
        ):
            return StoreCorrupt(
                f"run store {url.display} is damaged or not a gate store: {message}", hint=_corrupt_hint(url)
            )
        return StoreUnavailable(
            f"run store {url.display} cannot be used now: {message}",
            hint="check the file, its directory's permissions and free space, and that no other "
            "program holds it locked; then run again",
        )
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    if sqlstate.startswith(("42", "XX", "22")):  # undefined table/column, internal/data corruption
        return StoreCorrupt(
            f"run store {url.display} does not hold gate's schema as expected: {message}",
            hint="give gate a database of its own; do not change its tables by hand",
        )
    return StoreUnavailable(
        f"cannot use the run store {url.display}: {message}",
        hint="check that PostgreSQL runs and accepts connections at that address with these "
        "credentials; then run again",
    )
