"""Notifications (webhook, Slack, PagerDuty Events v2) and diagnostics, against a real loopback server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gate.drivers.diagnostics import DiagnosticsCapture, Target, go_pprof
from gate.drivers.notify import Channel, Notifier
from gate.drivers.store import RunStore
from gate.engine.clock import ManualClock
from gate.engine.machine import Plan, PolicyPlan, StepPlan
from gate.engine.runner import Runner
from tests.engine.doubles import RecordingRouter, ScriptedAnalyst
from tests.engine.receiver import receiver, slow

MESSAGE: dict[str, Any] = {
    "run_id": "r-1",
    "event": "rolling_back",
    "key": "rolling_back:3:1",
    "summary": "rolling back: http-latency-p95 (production): canary p95 275 ms > 220 ms",
    "severity": "critical",
    "step": 3,
    "steps": 7,
    "weight": 20,
    "status": "running",
    "at": 1000.0,
}


def channels(url: str) -> list[Channel]:
    return [
        Channel("hook", "webhook", url=f"{url}/hook", headers={"Authorization": "Bearer t0ken"}),
        Channel("slack", "slack", url=f"{url}/slack"),
        Channel("pd", "pagerduty", url=f"{url}/v2/enqueue", routing_key="R0UTING", source="gate-ci"),
    ]


def test_each_channel_receives_its_exact_payload() -> None:
    with receiver() as rec:
        notifier = Notifier(channels(rec.url), defaults={"service": "checkout"})
        for name in notifier.channels():
            ok, _payload, error = notifier.send(name, MESSAGE)
            assert ok, error
        hook = rec.bodies("/hook")
        slack = rec.bodies("/slack")
        pd = rec.bodies("/v2/enqueue")
    assert hook == [
        {
            "source": "gate",
            "version": 1,
            "title": "gate: checkout rolling back",
            "service": "checkout",
            **MESSAGE,
        }
    ]
    assert next(r for r in rec.requests if r.path == "/hook").headers["Authorization"] == "Bearer t0ken"
    assert slack == [
        {
            "text": "gate: checkout rolling back: " + MESSAGE["summary"],
            "blocks": [
                {
                    "type": "header",
                    "text": {"type": "plain_text", "text": "gate: checkout rolling back", "emoji": True},
                },
                {
                    "type": "section",
                    "text": {"type": "mrkdwn", "text": ":rotating_light: " + MESSAGE["summary"]},
                },
                {
                    "type": "context",
                    "elements": [
                        {
                            "type": "mrkdwn",
                            "text": "*run* `r-1` · *step* 3/7 · *canary weight* 20% · *status* running",
                        }
                    ],
                },
            ],
        }
    ]
    assert pd == [
        {
            "routing_key": "R0UTING",
            "event_action": "trigger",
            "dedup_key": "gate/r-1",
            "payload": {
                "summary": "gate: checkout rolling back: " + MESSAGE["summary"],
                "severity": "critical",
                "source": "gate-ci",
                "component": "checkout",
                "group": "gate",
                "class": "rolling_back",
                "custom_details": {
                    "run_id": "r-1",
                    "step": 3,
                    "steps": 7,
                    "weight": 20,
                    "status": "running",
                    "key": "rolling_back:3:1",
                },
            },
        }
    ]


def test_pagerduty_resolves_on_promotion_and_skips_progress() -> None:
    with receiver() as rec:
        notifier = Notifier(channels(rec.url))
        assert notifier.send("pd", {**MESSAGE, "event": "advanced"}) == (True, {}, "")
        assert notifier.send("pd", {**MESSAGE, "event": "started"}) == (True, {}, "")
        ok, _, _ = notifier.send("pd", {**MESSAGE, "event": "promoted"})
        assert ok
        assert rec.bodies("/v2/enqueue") == [
            {"routing_key": "R0UTING", "event_action": "resolve", "dedup_key": "gate/r-1"}
        ]
        # Slack hears of starts but not of every step passed, unless asked to.
        assert notifier.send("slack", {**MESSAGE, "event": "advanced"}) == (True, {}, "")
        assert rec.bodies("/slack") == []


def test_server_errors_are_retried_honouring_retry_after_and_client_errors_are_not() -> None:
    answers = iter([(503, {}, b"busy"), (429, {"Retry-After": "2"}, b"slow down"), (200, {}, b"ok")])
    slept: list[float] = []
    with receiver() as rec:
        rec.on("/hook", lambda _r: next(answers))
        rec.on("/slack", lambda _r: (400, {}, b"invalid_blocks"))
        notifier = Notifier(channels(rec.url), retries=4, backoff=0.1, sleep=slept.append)
        ok, _, error = notifier.send("hook", MESSAGE)
        assert ok and error == ""
        assert slept == [0.1, 2.0]  # backoff, then the receiver's Retry-After
        ok, _, error = notifier.send("slack", MESSAGE)
        assert not ok and error == "HTTP 400: invalid_blocks"
        assert len([r for r in rec.requests if r.path == "/slack"]) == 1


def test_an_unreachable_or_slow_receiver_fails_softly_within_its_timeout() -> None:
    with receiver() as rec:
        rec.on("/hook", slow(2.0))
        notifier = Notifier(channels(rec.url), timeout=0.3, retries=2, backoff=0.0)
        ok, _, error = notifier.send("hook", MESSAGE)
        assert not ok and "Timeout" in error
    dead = Notifier([Channel("hook", "webhook", url=rec.url + "/hook")], retries=2, backoff=0.0)
    ok, _, error = dead.send("hook", MESSAGE)
    assert not ok and "Connect" in error


# --------------------------------------------------------------------------------- diagnostics


def test_diagnostics_are_captured_bounded_and_kept_on_the_canary() -> None:
    dump = b"goroutine 1 [running]:\nmain.main()\n" * 10
    with receiver() as rec:
        rec.on("/debug/pprof/goroutine", lambda _r: (200, {"Content-Type": "text/plain"}, dump))
        rec.on(
            "/debug/pprof/profile",
            lambda _r: (200, {"Content-Type": "application/octet-stream"}, b"x" * 5000),
        )
        rec.on("/debug/pprof/heap", slow(2.0))
        targets = [*go_pprof(1)[:2], Target("heap", "/debug/pprof/heap", timeout=0.3)]
        targets.append(Target("elsewhere", "//evil.example/x"))
        got = {c.name: c for c in DiagnosticsCapture(rec.url, targets, max_bytes=1024).capture()}
        paths = [r.path for r in rec.requests]
    assert got["goroutines"].data == dump and got["goroutines"].content_type == "text/plain"
    assert got["goroutines"].url == f"{rec.url}/debug/pprof/goroutine?debug=2"
    assert got["cpu-profile"].truncated and len(got["cpu-profile"].data) == 1024
    assert "Timeout" in got["heap"].error
    assert "must start with '/'" in got["elsewhere"].error
    assert "/debug/pprof/profile?seconds=1" in paths
    assert not any("evil" in p for p in paths)


# ------------------------------------------------------------------------------------ with the runner


def test_a_rollback_notifies_every_channel_once_and_keeps_diagnostics_with_the_run(tmp_path: Path) -> None:
    plan = Plan(
        steps=(
            StepPlan("setWeight", weight=20),
            StepPlan("analyze", duration=30),
            StepPlan("setWeight", weight=100),
        ),
        policy=PolicyPlan(interval=5, diagnostics=True),
    )
    with receiver() as rec, RunStore(tmp_path / "runs.sqlite") as store:
        rec.on("/slack", lambda _r: (500, {}, b"down"))  # a failing channel blocks nothing
        rec.on("/debug/pprof/goroutine", lambda _r: (200, {}, b"goroutine 7 [chan receive]:\n"))

        def script(r: Any) -> tuple[Any, str]:
            return ("rollback", "p95 +25% over stable") if r.look >= 2 else ("hold", "accumulating")

        notifier = Notifier(channels(rec.url), retries=2, backoff=0.0, defaults={"service": "checkout"})
        runner = Runner.create(
            store,
            plan,
            contract_name="checkout",
            clock=ManualClock(),
            router=RecordingRouter(),
            analyst=ScriptedAnalyst(script),
            notifier=notifier,
            diagnostics=DiagnosticsCapture(rec.url, [Target("goroutines", "/debug/pprof/goroutine?debug=2")]),
        )
        final = runner.run()
        assert final.status == "rolled_back"
        detail = store.run_detail(runner.run_id)
        assert detail is not None
        hooks = [b["event"] for b in rec.bodies("/hook")]
        pd = [(b["event_action"], b.get("payload", {}).get("class")) for b in rec.bodies("/v2/enqueue")]
        slack_attempts = len([r for r in rec.requests if r.path == "/slack"])
    assert hooks == ["started", "rolling_back", "rolled_back"]
    assert pd == [("trigger", "rolling_back"), ("trigger", "rolled_back")]
    assert slack_attempts == 3 * 2  # three events, two tries each, all failed
    sent = {(n.channel, n.event): n.ok for n in detail.notifications}
    assert sent[("hook", "rolled_back")] and not sent[("slack", "rolled_back")]
    assert [d.name for d in detail.diagnostics] == ["goroutines"]
    assert store.diagnostic_data(runner.run_id, detail.diagnostics[0].id) == b"goroutine 7 [chan receive]:\n"


def test_the_contract_names_its_diagnostics_in_an_annotation() -> None:
    from gate.drivers.diagnostics import targets_from_spec

    targets = targets_from_spec("pprof:3, /debug/vars")
    assert [(t.name, t.path) for t in targets] == [
        ("goroutines", "/debug/pprof/goroutine?debug=2"),
        ("cpu-profile", "/debug/pprof/profile?seconds=3"),
        ("heap", "/debug/pprof/heap"),
        ("capture-1", "/debug/vars"),
    ]
    with pytest.raises(ValueError, match="expected pprof"):
        targets_from_spec("http://elsewhere/x")
    with pytest.raises(ValueError, match="1-60"):
        targets_from_spec("pprof:999")
