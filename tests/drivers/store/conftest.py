"""Every store test runs against both back ends: an SQLite file and a real PostgreSQL database."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.pg import pg_server, pg_url  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.sqlite'}"
    return str(request.getfixturevalue("pg_url"))
