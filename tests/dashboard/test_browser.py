"""The dashboard in headless Chromium over runs the real demo recorded (and records, live)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gate.drivers.store import RunStore
from tests.dashboard.conftest import Demo, Served, output_dir, until
from tests.dashboard.engine_runs import paused_run

FINAL = ("promoted", "rolled_back", "failed")


def _detail(demo: Demo, rid: str) -> Any:
    with RunStore(demo.store) as store:
        return store.run_detail(rid)


@pytest.mark.dashboard_live
def test_a_running_demo_updates_the_run_page_without_reload(demo: Demo, dashboard: Served, page: Any) -> None:
    rid = demo.run_id()
    page.goto(f"{dashboard.url}/runs/{rid}")
    page.wait_for_selector("#run[data-looks]")
    page.evaluate("() => { window.__sameDocument = true; }")
    first = int(page.get_attribute("#run", "data-looks"))
    assert page.get_attribute("#run", "data-status") == "running", "the demo finished before the page opened"
    # The demo (another process) writes the store; the page follows over server-sent events.
    # (Polled from here: Playwright's wait_for_function evaluates strings, which the page's CSP forbids.)
    until(
        lambda: int(page.get_attribute("#run", "data-looks")) >= first + 3, 90, "three more looks on the page"
    )
    until(lambda: page.get_attribute("#run", "data-status") in FINAL, 180, "the run's end on the page")
    assert page.evaluate("() => window.__sameDocument") is True  # never reloaded
    final = demo.final()
    until(lambda: page.text_content("#run-status") == final.status, 10, "the final status shown")
    assert page.text_content("#run-weight") == f"{final.weight}%"
    assert page.text_content("#run-looks") == str(len(_detail(demo, rid).looks))


def test_the_run_page_shows_charts_and_evidence_per_source(demo: Demo, dashboard: Served, page: Any) -> None:
    rid = demo.wait()
    status = demo.final().status
    page.goto(f"{dashboard.url}/runs/{rid}")
    page.wait_for_selector("#run[data-looks]")
    detail = _detail(demo, rid)
    judged = {v.source for lk in detail.looks for v in lk.verdicts if v.objective == "http-latency-p95"}
    assert "synthetic" in judged  # the demo's first step judges its synthetic load
    # Each source the p95 objective was judged on has a chart with data, side by side.
    for source in judged:
        panel = page.locator(f'figure.panel[data-objective="http-latency-p95"][data-source="{source}"]')
        assert panel.locator("canvas").count() >= 1
        assert int(panel.get_attribute("data-points")) >= 1
    box = [
        page.locator(f'figure.panel[data-objective="http-latency-p95"][data-source="{s}"]').bounding_box()
        for s in ("synthetic", "shadow", "production")
    ]
    assert box[0]["x"] < box[1]["x"] < box[2]["x"] and abs(box[0]["y"] - box[2]["y"]) < 2  # side by side
    text = page.text_content("main")
    chaos = [e for t in detail.timeline for e in t.effects if e.kind == "start_chaos"]
    assert ("risk-api-slow" in page.text_content("#h-chaos + *")) == bool(chaos)  # the chaos journal
    assert "interval" in text and "samples: canary" in text  # the judge's evidence in words
    assert "Representativeness" in text and "requests/s" in text
    out = output_dir()
    page.emulate_media(color_scheme="light")
    page.screenshot(path=str(out / "run-light.png"), full_page=True)
    page.emulate_media(color_scheme="dark")
    page.screenshot(path=str(out / "run-dark.png"))
    assert (out / "run-light.png").stat().st_size > 10_000

    page.goto(f"{dashboard.url}/")
    assert page.locator(f'a[href="/runs/{rid}"]').count() == 1
    page.screenshot(path=str(out / "runs.png"))
    page.select_option("select[name=status]", status)
    page.click("form.filters button")
    assert page.locator(f'a[href="/runs/{rid}"]').count() == 1
    page.select_option("select[name=status]", "held")
    page.click("form.filters button")
    assert page.locator(f'a[href="/runs/{rid}"]').count() == 0

    page.goto(f"{dashboard.url}/contracts/checkout-local")
    assert page.locator(f'a[href="/runs/{rid}"]').count() == 1
    page.goto(f"{dashboard.url}/compare?a={rid}&b={rid}")
    assert "http-latency-p95" in page.text_content("main")


def test_the_page_is_keyboard_navigable_and_themed(dashboard: Served, demo: Demo, page: Any) -> None:
    rid = demo.run_id()
    page.goto(f"{dashboard.url}/runs/{rid}")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("() => location.hash") == "#main"
    before = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    page.click("#theme-toggle")
    after = page.evaluate("() => getComputedStyle(document.body).backgroundColor")
    assert before != after
    page.reload()
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == after  # remembered


def _sign_in(page: Any, served: Served) -> None:
    page.goto(f"{served.url}/login")
    page.fill("#token", served.token)
    page.click("form.stack button")
    page.wait_for_url(f"{served.url}/")
    assert served.reviewer in page.text_content("header")


def test_a_reviewer_approves_and_aborts_in_the_browser(reviews: tuple[Served, RunStore], page: Any) -> None:
    dashboard, store = reviews
    approved = paused_run(store)
    aborted = paused_run(store)
    page.goto(f"{dashboard.url}/runs/{approved.run_id}")
    assert page.locator("#btn-approve").count() == 0  # not signed in: no action offered
    _sign_in(page, dashboard)

    page.goto(f"{dashboard.url}/runs/{approved.run_id}")
    page.fill("form.action input[name=reason]", "<b>latency fine</b> on production")
    page.click("#btn-approve")
    page.wait_for_selector("#audit-body tr:not(.empty)")
    row = page.text_content("#audit-body")
    assert dashboard.reviewer in row and "approve" in row and "<b>latency fine</b> on production" in row
    final = approved.run()  # the engine consumes the reviewer's request from the inbox
    assert final.status == "promoted" and final.weight == 100
    resumes = [t for t in store.run_detail(approved.run_id).timeline if t.input_kind == "resume"]
    assert [t.input["by"] for t in resumes] == [dashboard.reviewer]
    # The page follows the engine live.
    page.wait_for_selector("#run[data-status=promoted]", timeout=20_000)

    page.goto(f"{dashboard.url}/runs/{aborted.run_id}")
    page.fill("form.action input[name=reason]", "error budget burning")
    page.click("#btn-abort")
    page.wait_for_selector("#audit-body tr:not(.empty)")
    page.screenshot(path=str(output_dir() / "run-audit.png"), full_page=True)
    final = aborted.run()
    assert final.status == "rolled_back" and final.cause == "abort" and final.weight == 0
    assert "abort" in page.text_content("#audit-body")


def test_actions_are_refused_without_credentials_or_csrf(reviews: tuple[Served, RunStore]) -> None:
    dashboard, store = reviews
    run = paused_run(store)
    url = f"{dashboard.url}/api/v1/runs/{run.run_id}/actions/approve"
    inbox = store.count("inbox", run.run_id)
    with httpx.Client(follow_redirects=False, timeout=10) as http:
        assert http.post(url, json={"reason": "x"}).status_code == 401
        assert http.post(url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
        assert http.post(url, headers={"Authorization": "Basic abc"}).status_code == 401
        form = f"{dashboard.url}/runs/{run.run_id}/actions/abort"
        assert http.post(form, data={"reason": "x"}).status_code == 401
        # Signed in with a session cookie: a form without the CSRF token is refused.
        login = http.post(f"{dashboard.url}/login", data={"token": dashboard.token})
        assert login.status_code == 303 and "gate_session" in login.cookies
        assert http.post(form, data={"reason": "x"}).status_code == 403
        assert http.post(form, data={"reason": "x", "csrf": "0" * 64}).status_code == 403
        assert http.post(url, json={"reason": "x"}).status_code == 403  # the API needs X-CSRF-Token too
        assert store.count("inbox", run.run_id) == inbox  # nothing reached the engine
        csrf = http.get(f"{dashboard.url}/api/v1/whoami").json()["csrf"]
        ok = http.post(url, json={"reason": "fine"}, headers={"X-CSRF-Token": csrf})
        assert ok.status_code == 202, ok.text
        # A bearer token needs no CSRF token (a browser never sends one by itself).
        http.cookies.clear()
        again = http.post(url, headers={"Authorization": f"Bearer {dashboard.token}"}, json={})
        assert again.status_code == 202
    assert store.count("inbox", run.run_id) == inbox + 2
    audit = httpx.get(f"{dashboard.url}/api/v1/runs/{run.run_id}/audit").json()["data"]
    assert [a["action"] for a in audit] == ["approve", "approve"]
    assert {a["actor"] for a in audit} == {dashboard.reviewer}
    assert all(dashboard.token not in str(a) for a in audit)


def test_names_and_reasons_with_markup_are_shown_as_text(reviews: tuple[Served, RunStore], page: Any) -> None:
    dashboard, store = reviews
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    run = paused_run(store, reason=evil, service="<b>svc</b>")
    resp = httpx.get(f"{dashboard.url}/runs/{run.run_id}")
    assert "script-src 'self'" in resp.headers["content-security-policy"]
    assert "<script>alert(2)" not in resp.text and "&lt;script&gt;alert(2)" in resp.text
    page.goto(f"{dashboard.url}/runs/{run.run_id}")
    page.wait_for_selector("#run[data-looks]")
    assert page.locator("img[src=x]").count() == 0
    assert evil in page.text_content("#looks-body")  # drawn again by the script from the API: still text
    assert "<b>svc</b>" in page.text_content("dl.facts")
    # (the page fixture fails the test if any dialog opened or any script error happened)
