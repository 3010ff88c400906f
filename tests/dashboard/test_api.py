"""The JSON API against its own OpenAPI (schemathesis, in-process), and its limits on bad input."""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from gate.dashboard.app import create_app
from gate.dashboard.settings import DashboardSettings
from tests.dashboard.conftest import Demo, Served


class _Target:
    """An ASGI app that forwards to the dashboard under test (set by a fixture). Schemathesis reads
    the OpenAPI when the module is collected, from an identical app over an empty store."""

    def __init__(self) -> None:
        self._empty = tempfile.TemporaryDirectory(prefix="gate-dashboard-schema-")
        self.app: Any = create_app(
            DashboardSettings(
                store=f"sqlite:///{Path(self._empty.name) / 'runs.sqlite'}", dashboard_public_read=True
            )
        )

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)


TARGET = _Target()
TIMEOUT = 30.0  # seconds: these tests assert behaviour, not speed (bench-dashboard measures that); a shared CI core can stall a first query
schema = schemathesis.openapi.from_asgi("/openapi.json", TARGET)


@pytest.fixture
def over_the_demo(demo: Demo, dashboard: Served) -> None:
    demo.wait()
    TARGET.app = dashboard.app  # the runs the real demo recorded, and the engine tests' runs


def test_the_api_never_answers_with_a_server_error(over_the_demo: None) -> None:
    # One test looping over the operations (not schemathesis' parametrize, whose items share one
    # node id, so pytest-xdist would run only one of them).
    operations = [
        r.ok()
        for r in schema.include(path_regex="^/api/").exclude(path_regex="/events$").get_all_operations()
    ]
    assert len(operations) >= 8, [o.label for o in operations]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
        def check(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        check()


def test_the_openapi_describes_every_page_s_data(dashboard: Served) -> None:
    spec = httpx.get(f"{dashboard.url}/openapi.json", timeout=TIMEOUT).json()
    paths = set(spec["paths"])
    for path in (
        "/api/v1/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/runs/{run_id}/looks",
        "/api/v1/runs/{run_id}/audit",
        "/api/v1/runs/{run_id}/events",
        "/api/v1/runs/{run_id}/diagnostics/{diagnostic_id}",
        "/api/v1/runs/{run_id}/actions/{action}",
        "/api/v1/contracts/{name}/runs",
        "/api/v1/compare",
        "/api/v1/whoami",
    ):
        assert path in paths


def test_bad_requests_get_a_4xx_that_says_what_and_where(dashboard: Served, demo: Demo) -> None:
    rid = demo.wait()
    u = dashboard.url
    auth = {"Authorization": f"Bearer {dashboard.token}"}
    with httpx.Client(timeout=10) as http:
        r = http.get(f"{u}/api/v1/runs", params={"limit": 100000})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]
        assert http.get(f"{u}/api/v1/runs", params={"status": "<script>"}).status_code == 422
        assert http.get(f"{u}/api/v1/runs/" + "a" * 5000).status_code in (404, 414, 422)
        assert http.get(f"{u}/api/v1/runs/nope").status_code == 404
        assert http.get(f"{u}/runs/nope").status_code == 404
        assert http.get(f"{u}/api/v1/runs/{rid}/diagnostics/99999").status_code == 404
        big = http.post(f"{u}/api/v1/runs/{rid}/actions/abort", content=b"x" * 200_000, headers=auth)
        assert big.status_code == 413

        def chunks() -> Any:  # no Content-Length: the bound is counted as the body arrives
            for _ in range(20):
                yield b"y" * 10_000

        chunked = http.post(f"{u}/api/v1/runs/{rid}/actions/abort", content=chunks(), headers=auth)
        # Cut off past 64 KiB; FastAPI reports the body it could not read as 400 (a 4xx either way).
        assert chunked.status_code in (400, 413)
        bad = http.post(
            f"{u}/api/v1/runs/{rid}/actions/abort",
            content=b"{not json",
            headers={**auth, "Content-Type": "application/json"},
        )
        assert bad.status_code == 422
        echoed = "Q" * 3000
        long_reason = http.post(f"{u}/api/v1/runs/{rid}/actions/abort", json={"reason": echoed}, headers=auth)
        assert long_reason.status_code == 422 and echoed not in long_reason.text  # never echoed back whole
        assert http.post(f"{u}/api/v1/runs/{rid}/actions/explode", headers=auth).status_code == 422
        # A finished run: nothing to act on (and nothing queued).
        done = http.post(f"{u}/api/v1/runs/{rid}/actions/abort", json={}, headers=auth)
        assert done.status_code == 409 and demo.final().status in done.json()["detail"]


def test_health_metrics_and_access_log(dashboard: Served, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="gate.dashboard.access"):
        assert httpx.get(f"{dashboard.url}/healthz", timeout=TIMEOUT).text == "ok"
        httpx.get(
            f"{dashboard.url}/api/v1/runs",
            timeout=TIMEOUT,
            headers={"Authorization": f"Bearer {dashboard.token}"},
        )
        # The access line is written once the response is sent, so the client can read the answer a moment
        # before the server's thread logs it: wait for it (bounded) rather than race it.
        deadline = time.monotonic() + TIMEOUT
        while True:
            lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == "gate.dashboard.access"]
            entry = next((e for e in lines if e["route"] == "/api/v1/runs"), None)
            if entry is not None or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert entry is not None, f"no access line for /api/v1/runs: {lines}"
    assert entry["status"] == 200 and entry["user"] == dashboard.reviewer and entry["ms"] >= 0
    assert all(dashboard.token not in r.getMessage() for r in caplog.records)  # tokens never logged
    metrics = httpx.get(f"{dashboard.url}/metrics", timeout=TIMEOUT).text
    assert 'gate_dashboard_requests_total{method="GET",route="/api/v1/runs",status="200"}' in metrics
    assert "gate_dashboard_request_seconds_bucket" in metrics
