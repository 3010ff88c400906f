"""The answer tables (gate/dashboard/integrations/answers.py), every hook × every state: never a pass
without a passing check, and a `rollback` hook's pass only on evidence against the canary."""

from __future__ import annotations

import time

import pytest

from gate.compose.check import Case, CheckReport
from gate.dashboard.integrations import answers
from gate.dashboard.integrations.checks import Check, CheckKey

STATES = ["running", "pass", "fail", "inconclusive", "invalid", "error"]


def _check(state: str, on_inconclusive: str = "hold") -> Check:
    check = Check(
        CheckKey("test", "podinfo", "85d557f47b"), started_at=time.time(), on_inconclusive=on_inconclusive
    )
    if state == "running":
        return check
    if state == "error":
        check.failure = "RuntimeError: boom"
    else:
        report = CheckReport("podinfo", "podinfo", "http://s", "http://c", None, started_at=time.time())
        report.status = state  # type: ignore[assignment]
        report.reason = f"because {state}"
        report.cases = [
            Case("http-latency-p95", "http-latency", "synthetic", "baseline", "fail", "p95 312 ms > 220 ms")
        ]
        check.report = report
    check.done.set()
    return check


EXPECTED = {
    # hook: {state: status} with onInconclusive: hold
    "confirm-rollout": {
        "running": 403,
        "pass": 200,
        "fail": 403,
        "inconclusive": 403,
        "invalid": 400,
        "error": 503,
    },
    "pre-rollout": {
        "running": 403,
        "pass": 200,
        "fail": 403,
        "inconclusive": 403,
        "invalid": 400,
        "error": 503,
    },
    "confirm-traffic-increase": {
        "running": 403,
        "pass": 200,
        "fail": 403,
        "inconclusive": 403,
        "invalid": 400,
        "error": 503,
    },
    "confirm-promotion": {
        "running": 403,
        "pass": 200,
        "fail": 403,
        "inconclusive": 403,
        "invalid": 400,
        "error": 503,
    },
    "rollout": {"running": 202, "pass": 200, "fail": 403, "inconclusive": 202, "invalid": 400, "error": 503},
    "rollback": {"running": 403, "pass": 403, "fail": 200, "inconclusive": 403, "invalid": 400, "error": 503},
}


@pytest.mark.parametrize("hook", sorted(EXPECTED))
@pytest.mark.parametrize("state", STATES)
def test_flagger_table(hook: str, state: str) -> None:
    status, text = answers.flagger_answer(hook, _check(state))
    assert status == EXPECTED[hook][state]
    assert state in text  # the verdict word reaches Flagger's events
    passes = status <= 202
    if hook == "rollback":
        assert passes == (state == "fail")
    elif hook in answers.GATING:
        assert passes == (state == "pass")  # only a pass proceeds


def test_inconclusive_with_a_rollback_policy_rolls_back() -> None:
    check = _check("inconclusive", on_inconclusive="rollback")
    assert answers.flagger_answer("rollback", check)[0] == 200
    assert answers.flagger_answer("rollout", check)[0] == 403
    assert answers.flagger_answer("confirm-promotion", check)[0] == 403


def test_unknown_hook_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Flagger hook"):
        answers.flagger_answer("promote", _check("pass"))


@pytest.mark.parametrize(
    ("state", "status"),
    [("running", 503), ("error", 503), ("invalid", 400), ("pass", 200), ("fail", 200), ("inconclusive", 200)],
)
def test_argo_answer(state: str, status: int) -> None:
    code, body = answers.argo_answer(_check(state))
    assert code == status and body["verdict"] == state
    assert {"apiVersion", "kind", "metadata"} <= set(body)  # reads as an object for client-go jsonpath
    if state not in ("running", "error"):
        assert body["objectives"][0]["reason"] == "p95 312 ms > 220 ms"
