"""A real PostgreSQL 15 (Debian's ``postgresql`` package) for tests, on loopback in a temporary directory.

``pg_server`` (session-scoped) runs ``initdb`` and ``pg_ctl start`` once — as the ``postgres`` user when
the tests run as root, since initdb refuses root — listening on 127.0.0.1 at a free port and on a unix
socket inside its directory, and stops the server by its pid at the end. ``pg_url`` (per test) is the
URL of a fresh, empty database created from a template (fast). Tests skip only when the binaries are
absent. Durability settings are off: tests kill processes, never the machine.

Use it from a conftest: ``from tests.support.pg import pg_server, pg_url  # noqa: F401``.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.ports import free_port, wait_port

BIN = Path(os.environ.get("GATE_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "gate"
_counter = itertools.count(1)


@dataclass
class PgServer:
    """A running PostgreSQL: where it listens and how to make databases in it."""

    dir: Path
    port: int
    pid: int
    run_as: str | None

    def url(self, db: str, *, password: str | None = None) -> str:
        auth = USER if password is None else f"{USER}:{password}"
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{db}"

    def psql(self, sql: str, db: str = "postgres") -> str:
        out = subprocess.run(
            [str(BIN / "psql"), "-h", "127.0.0.1", "-p", str(self.port), "-U", USER, "-d", db, "-qAtc", sql],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return out.stdout

    def create_db(self) -> str:
        name = f"t{os.getpid()}_{next(_counter)}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE template0 STRATEGY FILE_COPY")
        return name

    def drop_db(self, name: str) -> None:
        self.psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _as_user(cmd: list[str], run_as: str | None) -> list[str]:
    return ["runuser", "-u", run_as, "--", *cmd] if run_as else cmd


def start_server() -> PgServer:
    """Start a throwaway server (the caller stops it with ``stop_server``)."""
    if not (BIN / "initdb").exists():
        pytest.skip(f"PostgreSQL binaries not found in {BIN} (Debian package postgresql)")
    run_as = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="gate-pg-"))
    data = base / "data"
    data.mkdir()
    if run_as:
        pw = pwd.getpwnam(run_as)
        for p in (base, data):
            os.chown(p, pw.pw_uid, pw.pw_gid)
    env = {**os.environ, "LC_ALL": "C.UTF-8", "TZ": "UTC"}
    subprocess.run(
        _as_user([str(BIN / "initdb"), "-D", str(data), "-A", "trust", "-U", USER, "-E", "UTF8"], run_as),
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    port = free_port()
    options = (
        f"-k {data} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=200"
    )
    subprocess.run(
        _as_user(
            [str(BIN / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(base / "log"), "-w", "start"],
            run_as,
        ),
        check=True,
        capture_output=True,
        env=env,
        timeout=120,
    )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    wait_port(port)
    return PgServer(dir=base, port=port, pid=pid, run_as=run_as)


def stop_server(server: PgServer) -> None:
    """Stop the server by its pid (fast shutdown; killed after 20 s) and remove its directory."""
    try:
        os.kill(server.pid, signal.SIGINT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            os.kill(server.pid, 0)
            time.sleep(0.05)
        os.kill(server.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(server.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    server = start_server()
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """The URL of a new empty database, dropped after the test."""
    name = pg_server.create_db()
    try:
        yield pg_server.url(name)
    finally:
        pg_server.drop_db(name)
