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

pytestmark = pytest.mark.slow


def _children() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_leak_scenario_is_rolled_back_on_task_growth(tmp_path: Path) -> None:
    before = _children()
    out = io.StringIO()
    code = run_demo(Console(file=out, width=200), "leak", quick=True, store_path=tmp_path / "runs.db")
    text = out.getvalue()
    assert code == 0, text
    assert "ROLLED BACK" in text
    assert "demo-tasks" in text.split("Outcome")[1]
    assert "every process the demo started is stopped" in text
    assert _children() <= before, "a process the demo started is still running"
    with RunStore(tmp_path / "runs.db") as store:
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
