"""What each caller reads from a check's state: pure functions, one table per anchor.

Flagger (``pkg/controller/webhook.go``): only 200-202 pass; 4xx bodies reach its events, 5xx are retried
by go-retryablehttp (429 and >=500 except 501) and their bodies dropped. For ``rollback`` hooks a pass
means *roll back now*. gate answers:

| hook | pass | fail | inconclusive (hold / rollback policy) | running | error |
|---|---|---|---|---|---|
| gating (below) | 200 | 403 | 403 / 403 | 403 | 503 |
| rollout | 200 | 403 | 202 / 403 | 202 | 503 |
| rollback | 403 | 200 | 403 / 200 | 403 | 503 |
| post-rollout, event | 200 (recorded) | | | | |

Gating hooks: confirm-rollout, pre-rollout, confirm-traffic-increase, confirm-promotion.

A running check lets a ``rollout`` hook proceed (202, like flagger-loadtester's queued tasks) because
that hook only lets Flagger go on to its own metric checks; promotion waits on ``confirm-promotion``,
which passes on a pass only. Never a pass on missing evidence.

Argo Rollouts (``metricproviders/webmetric``): any non-2xx is a measurement Error (repeated up to
``consecutiveErrorLimit``, then the analysis fails); a 2xx body is read with jsonPath and the template's
conditions. gate answers 200 with the verdict for pass, fail and inconclusive (the example template
makes inconclusive an Argo Inconclusive: the rollout pauses for a person), and 503 while running or after
an infrastructure error (an Error: measured again next interval), 400 for an invalid contract.
"""

from __future__ import annotations

from typing import Any

from gate.dashboard.integrations.checks import Check

GATING = frozenset({"confirm-rollout", "pre-rollout", "confirm-traffic-increase", "confirm-promotion"})
RECORDING = frozenset({"post-rollout", "event"})
HOOKS = GATING | RECORDING | {"rollout", "rollback"}
MAX_CASES = 50


def flagger_answer(hook: str, check: Check) -> tuple[int, str]:
    """HTTP status and plain-text body for a Flagger `hook` about `check`'s revision."""
    status, reason = check.status, check.reason
    text = f"{status}: {reason}"[:4000]
    if status == "error":
        return 503, text
    if status == "invalid":
        return 400, text
    rollback_due = status == "fail" or (status == "inconclusive" and check.on_inconclusive == "rollback")
    if hook == "rollback":
        if rollback_due:
            return 200, f"roll back: {text}"
        return 403, f"no rollback: {text}"
    if hook == "rollout":
        if status == "pass":
            return 200, text
        if status == "running" or (status == "inconclusive" and not rollback_due):
            return 202, text
        return 403, text
    if hook in GATING:
        return (200, text) if status == "pass" else (403, text)
    raise ValueError(f"unknown Flagger hook type {hook!r}")


def argo_answer(check: Check) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body for Argo Rollouts' web metric about `check`'s revision."""
    status = check.status
    report = check.report
    cases = [] if report is None else report.cases
    body: dict[str, Any] = {
        "apiVersion": "perfgate.dev/v1alpha1",
        "kind": "Verdict",
        "metadata": {"name": check.key.contract, "namespace": check.key.namespace},
        "revision": check.key.revision,
        "verdict": status,
        "reason": check.reason[:4000],
        "startedAt": check.started_at,
        "failed": sorted({f"{c.objective}@{c.source}" for c in cases if c.status == "fail"})[:MAX_CASES],
        "objectives": [
            {
                "objective": c.objective,
                "source": c.source,
                "status": c.status,
                "critical": c.critical,
                "reason": c.reason[:500],
            }
            for c in cases[:MAX_CASES]
        ],
    }
    if report is not None:
        body["endedAt"] = report.ended_at
    if status in ("running", "error"):
        return 503, body
    if status == "invalid":
        return 400, body
    return 200, body
