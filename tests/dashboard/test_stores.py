"""The dashboard reads a PostgreSQL store as it reads a SQLite one: the same pages, the same API,
the same actions through the inbox (runs of the real engine, recorded in each back end)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from gate.dashboard.app import create_app
from gate.dashboard.settings import DashboardSettings
from gate.drivers.store import RunStore
from tests.dashboard.engine_runs import paused_run
from tests.support.pg import pg_server, pg_url  # noqa: F401  (fixtures)


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'runs.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


def test_pages_api_and_actions_on_both_back_ends(store_url: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("a-reviewer-token-of-24chars carol\n")
    with RunStore(store_url) as store:
        held = paused_run(store, reason="<i>fine</i>", namespace="shop")
        other = paused_run(store)
        app = create_app(
            DashboardSettings(store=store_url, dashboard_tokens_file=tokens, dashboard_public_read=False),
            store=store,
        )
        http = TestClient(app)
        assert http.get("/api/v1/runs").status_code == 401  # private by default
        auth = {"Authorization": "Bearer a-reviewer-token-of-24chars"}
        runs = http.get("/api/v1/runs", headers=auth).json()
        assert runs["count"] == 2 and {r["id"] for r in runs["data"]} == {held.run_id, other.run_id}
        only = http.get("/api/v1/runs", params={"namespace": "shop"}, headers=auth).json()
        assert [r["id"] for r in only["data"]] == [held.run_id]
        page = http.get(f"/runs/{held.run_id}", headers=auth)
        assert page.status_code == 200 and "&lt;i&gt;fine&lt;/i&gt;" in page.text
        view = http.get(f"/api/v1/runs/{held.run_id}", headers=auth).json()
        assert view["looks_total"] == len(store.run_detail(held.run_id).looks) > 0
        assert view["run"]["namespace"] == "shop"
        looks = http.get(f"/api/v1/runs/{held.run_id}/looks", params={"after": 1}, headers=auth).json()
        assert [lk["look"] for lk in looks["data"]] == [
            lk.look for lk in store.run_detail(held.run_id).looks
        ][1:]
        ok = http.post(f"/api/v1/runs/{held.run_id}/actions/abort", json={"reason": "stop"}, headers=auth)
        assert ok.status_code == 202
        assert held.run().status == "rolled_back"
        audit = http.get(f"/api/v1/runs/{held.run_id}/audit", headers=auth).json()["data"]
        assert [(a["actor"], a["action"], a["reason"]) for a in audit] == [("carol", "abort", "stop")]
