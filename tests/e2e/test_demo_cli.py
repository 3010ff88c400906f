"""`gate demo --scenario leak --quick` end to end: the whole command (topology, contract, engine, live
view, report), a leaking canary rolled back on task growth, the run recorded, nothing left running."""

from __future__ import annotations

import io
from pathlib import Path

import psutil
import pytest
from rich.console import Console

from gate.cli.demo_cmd import run_demo
from gate.drivers.store import RunStore
from tests.support.pg import pg_server, pg_url  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_leak_scenario_is_rolled_back_on_task_growth(
    tmp_path: Path, backend: str, request: pytest.FixtureRequest
) -> None:
    # `gate demo --store postgresql://…` runs to the same outcome, its records in PostgreSQL.
    store_url = str(tmp_path / "runs.db") if backend == "sqlite" else str(request.getfixturevalue("pg_url"))
    before = _children()
    out = io.StringIO()
    code = run_demo(Console(file=out, width=200), "leak", quick=True, store_path=store_url)
    text = out.getvalue()
    assert code == 0, text
    assert "ROLLED BACK" in text
    assert "demo-tasks" in text.split("Outcome")[1]
    assert "every process the demo started is stopped" in text
    assert _children() <= before, "a process the demo started is still running"
    with RunStore(store_url) as store:
        assert store.backend == backend
        [run] = store.list_runs()
    assert run.status == "rolled_back"
    assert "demo-tasks" in run.reason


def test_unknown_scenario_is_refused(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from gate.cli.main import app

    result = CliRunner().invoke(app, ["demo", "--scenario", "nonsense", "--store", str(tmp_path / "r.db")])
    assert result.exit_code == 2
    assert "choose good, regression or leak" in result.output
    assert not (tmp_path / "r.db").exists()
