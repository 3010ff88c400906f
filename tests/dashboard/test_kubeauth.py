"""Kubernetes reviewers: TokenReview and SubjectAccessReview through the official client against
kmock's emulator over real HTTP, whose reactions answer the reviews the way an API server would."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import pytest
from fastapi.testclient import TestClient

from gate.dashboard.app import create_app
from gate.dashboard.kubeauth import KubeReviewer
from gate.dashboard.settings import DashboardSettings
from gate.drivers.store import RunStore
from tests.dashboard.engine_runs import paused_run

REVIEWS = {"tokenreviews", "subjectaccessreviews"}

USERS = {"token-of-bob": ("bob", ["release-managers"]), "token-of-eve": ("eve", ["interns"])}


def _token_review(request: Any) -> dict[str, Any]:
    token = request.data["spec"]["token"]
    user = USERS.get(token)
    status: dict[str, Any] = {"authenticated": False}
    if user is not None:
        status = {"authenticated": True, "user": {"username": user[0], "groups": user[1]}}
    # An API server answers with the review it was sent, its status filled in.
    return {**request.data, "status": status}


SEEN: list[dict[str, Any]] = []


def _access_review(request: Any) -> dict[str, Any]:
    spec = request.data["spec"]
    SEEN.append(spec)
    attrs = spec["resourceAttributes"]
    allowed = (
        "release-managers" in spec.get("groups", [])
        and attrs == {**attrs, "group": "perfgate.dev", "resource": "performancegates", "verb": "patch"}
        and attrs.get("namespace") == "shop"
    )
    return {**request.data, "status": {"allowed": allowed, **({} if allowed else {"reason": "no RBAC rule"})}}


@attrs.define(kw_only=True)
class ReviewingAPI(kmock.KubernetesEmulator):
    """kmock's emulator answering TokenReview and SubjectAccessReview as an API server does: the
    review it was sent, with its status filled in, kept nowhere."""

    async def _handle(self, request: Any) -> Any:
        res = request.resource
        if res is not None and res.plural in REVIEWS and str(request.method).upper().endswith("POST"):
            answer = _token_review(request) if res.plural == "tokenreviews" else _access_review(request)
            return aiohttp.web.json_response(answer, status=201)
        return await super()._handle(request)


@dataclass
class RunningAPI:
    url: str


@pytest.fixture
def api_server() -> Iterator[RunningAPI]:
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    async def main() -> None:
        stop = asyncio.Event()
        async with ReviewingAPI() as emulator, kmock.Server(emulator) as server:
            ready.update(url=str(server.url).rstrip("/"), stop=stop)
            started.set()
            await stop.wait()

    def run() -> None:
        asyncio.set_event_loop(loop)
        with contextlib.suppress(BaseException):
            loop.run_until_complete(main())

    thread = threading.Thread(target=run, name="kube-reviews", daemon=True)
    thread.start()
    assert started.wait(20), "the emulator did not start"
    try:
        yield RunningAPI(ready["url"])
    finally:
        loop.call_soon_threadsafe(ready["stop"].set)
        thread.join(20)
        loop.close()


def test_token_review_and_access_review_through_the_client(api_server: RunningAPI) -> None:
    reviewer = KubeReviewer.connect(api_server.url)
    bob = reviewer.authenticate("token-of-bob")
    assert bob is not None and bob.name == "bob" and bob.groups == ("release-managers",) and bob.kube
    assert reviewer.authenticate("forged") is None
    assert reviewer.may_patch(bob, "shop", "checkout")
    assert not reviewer.may_patch(bob, "other", "checkout")
    eve = reviewer.authenticate("token-of-eve")
    assert eve is not None and not reviewer.may_patch(eve, "shop", "checkout")
    assert SEEN[-1]["resourceAttributes"]["name"] == "checkout" and SEEN[-1]["user"] == "eve"


def test_an_unreachable_api_server_refuses(tmp_path: Path) -> None:
    from tests.support.ports import free_port

    reviewer = KubeReviewer.connect(f"http://127.0.0.1:{free_port()}")
    assert reviewer.authenticate("token-of-bob") is None  # fail closed, no exception


def test_the_dashboard_lets_rbac_decide_who_acts(api_server: RunningAPI, tmp_path: Path) -> None:
    with RunStore(tmp_path / "runs.sqlite") as store:
        run = paused_run(store)
        settings = DashboardSettings(
            store=f"sqlite:///{store.path}",
            dashboard_public_read=True,
            dashboard_kube_auth=True,
            dashboard_kube_host=api_server.url,
        )
        meta_run = run.run_id
        app = create_app(settings, store=store)
        http = TestClient(app)
        url = f"/api/v1/runs/{meta_run}/actions/abort"
        # Namespace: the run has none recorded, so the configured default ("default") applies: bob is denied.
        denied = http.post(url, json={"reason": "x"}, headers={"Authorization": "Bearer token-of-bob"})
        assert denied.status_code == 403 and "patch" in denied.json()["detail"]
        assert http.post(url, json={}, headers={"Authorization": "Bearer token-of-nobody"}).status_code == 401

        shop = paused_run(store, namespace="shop")  # as the operator records its gates' runs
        url = f"/api/v1/runs/{shop.run_id}/actions/abort"
        eve = http.post(url, json={"reason": "x"}, headers={"Authorization": "Bearer token-of-eve"})
        assert eve.status_code == 403
        bob = http.post(url, json={"reason": "burning"}, headers={"Authorization": "Bearer token-of-bob"})
        assert bob.status_code == 202, bob.text
        assert shop.run().status == "rolled_back"
        audit = http.get(f"/api/v1/runs/{shop.run_id}/audit").json()["data"]
        assert [(a["actor"], a["action"]) for a in audit] == [("eve", "abort refused"), ("bob", "abort")]
        assert audit[1]["details"]["via"] == "kubernetes"
        # A token that works in the browser becomes a session; RBAC is still asked at every action.
        login = http.post("/login", data={"token": "token-of-bob"}, follow_redirects=False)
        assert login.status_code == 303
        csrf = http.get("/api/v1/whoami").json()["csrf"]
        held = paused_run(store, namespace="shop")
        n = len(SEEN)
        ok = http.post(f"/api/v1/runs/{held.run_id}/actions/approve", json={}, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 202 and len(SEEN) == n + 1
