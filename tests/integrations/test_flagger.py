"""Flagger's webhooks against the real endpoints: payloads exactly as Flagger sends them
(/work/shared/INTEGRATIONS.md), its 10 s timeout, its retries, and only 200-202 as a pass."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.integrations.conftest import TOKEN, FlaggerResult, Served, flagger_call


def _payload(name: str = "podinfo", checksum: str = "85d557f47b", **metadata: str) -> dict[str, object]:
    # confirm-promotion with no metadata in the spec: the key is left out, as Flagger does.
    body: dict[str, object] = {
        "name": name,
        "namespace": "test",
        "phase": "Progressing",
        "checksum": checksum,
    }
    if metadata:
        body["metadata"] = metadata
    return body


def _until_decided(url: str, payload: dict[str, object], limit: float = 90.0) -> list[FlaggerResult]:
    """Call a hook every second (Flagger's analysis interval, shortened) until gate's answer is final."""
    calls: list[FlaggerResult] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        result = flagger_call(url, payload)
        calls.append(result)
        if not result.text.startswith("running"):
            return calls
        time.sleep(1.0)
    raise AssertionError(f"no final answer within {limit} s: {calls[-1]}")


def test_good_canary_rollout_proceeds_and_promotion_waits_for_the_pass(served: Served) -> None:
    hook = f"{served.url}/integrations/flagger"
    meta = {"token": TOKEN, "wait": "0"}
    first = flagger_call(f"{hook}/rollout", _payload(**meta))
    assert first.ok and first.status == 202, first  # a check started: go on to Flagger's own metric checks
    promotion = flagger_call(f"{hook}/confirm-promotion", _payload(token=TOKEN, wait="0"))
    assert not promotion.ok and promotion.status == 403 and promotion.text.startswith("running"), promotion
    calls = _until_decided(f"{hook}/rollout", _payload(**meta))
    assert calls[-1].ok and calls[-1].status == 200 and calls[-1].text.startswith("pass"), calls[-1]
    promoted = flagger_call(f"{hook}/confirm-promotion", _payload(token=TOKEN))
    assert promoted.ok and promoted.status == 200, promoted
    rollback = flagger_call(f"{hook}/rollback", _payload(token=TOKEN))
    assert not rollback.ok and rollback.status == 403 and "no rollback" in rollback.text
    # Every call audited with its answer; the token never written.
    text = served.audit.read_text()
    assert TOKEN not in text
    records = [json.loads(line) for line in text.splitlines()]
    assert [r["status"] for r in records][:2] == [202, 403]
    assert records[-2]["verdict"] == "pass" and records[-2]["endpoint"] == "flagger/confirm-promotion"
    assert all(r["credential"] == "metadata" and r["namespace"] == "test" for r in records)


def test_slow_canary_fails_the_rollout_hook_and_the_rollback_hook_says_roll_back(served: Served) -> None:
    hook = f"{served.url}/integrations/flagger"
    # A pre-rollout hook with `timeout: 2m` in the Canary: gate may wait for the whole check.
    pre = flagger_call(f"{hook}/pre-rollout", _payload("slow", token=TOKEN, wait="110"), timeout=120)
    assert not pre.ok and pre.status == 403, pre
    assert pre.text.startswith("fail: ") and "latency" in pre.text  # the reason reaches Flagger's events
    assert not flagger_call(f"{hook}/rollout", _payload("slow", token=TOKEN)).ok
    assert not flagger_call(f"{hook}/confirm-promotion", _payload("slow", token=TOKEN)).ok
    back = flagger_call(f"{hook}/rollback", _payload("slow", token=TOKEN))
    assert back.ok and back.status == 200 and back.text.startswith("roll back: fail"), back
    # A new revision (another checksum) is a new check: no verdict yet, so no rollback.
    other = flagger_call(f"{hook}/rollback", _payload("slow", checksum="aa11bb22cc", token=TOKEN))
    assert not other.ok and other.status == 403


def test_bearer_token_and_recording_hooks(served: Served) -> None:
    url = f"{served.url}/integrations/flagger/post-rollout"
    body = {"name": "podinfo", "namespace": "test", "phase": "Succeeded", "checksum": "85d557f47b"}
    r = httpx.post(url, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert r.status_code == 200 and "recorded" in r.text
    event = {
        **body,
        "phase": "Progressing",
        "metadata": {
            "eventMessage": "Advance podinfo.test canary weight 10",
            "eventType": "Normal",
            "timestamp": "1733580000000",
            "token": TOKEN,
        },
    }
    assert flagger_call(f"{served.url}/integrations/flagger/event", event).ok
    assert TOKEN not in served.audit.read_text()


def test_refusals_say_what_and_reach_flagger(served: Served, tmp_path: Path) -> None:
    hook = f"{served.url}/integrations/flagger"
    no_token = flagger_call(f"{hook}/rollout", _payload())
    assert (no_token.status, no_token.ok) == (401, False) and "token" in no_token.text
    wrong = flagger_call(f"{hook}/rollout", _payload(token="nope"))
    assert wrong.status == 401
    other_ns = flagger_call(f"{hook}/rollout", {**_payload(token=TOKEN), "namespace": "kube-system"})
    assert other_ns.status == 403 and "kube-system" in other_ns.text
    missing = flagger_call(f"{hook}/rollout", _payload("orders", token=TOKEN))
    assert missing.status == 404 and "test/orders.yaml" in missing.text
    unknown = flagger_call(f"{hook}/promote-now", _payload(token=TOKEN))
    assert unknown.status == 404 and "confirm-promotion" in unknown.text
    bad = flagger_call(f"{hook}/rollout", {"namespace": "test", "phase": "Progressing"})
    assert bad.status == 400 and "name" in bad.text
    big = {**_payload(token=TOKEN), "metadata": {"cmd": "x" * 100_000, "token": TOKEN}}
    assert flagger_call(f"{hook}/rollout", big).status == 413
    r = httpx.post(f"{hook}/rollout", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "not JSON" in r.text
    deep = "[" * 5000 + "]" * 5000
    r = httpx.post(f"{hook}/rollout", content=deep.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    traversal = flagger_call(f"{hook}/rollout", _payload(token=TOKEN, contract="../../etc/passwd"))
    assert traversal.status == 400 and "Kubernetes name" in traversal.text
    text = served.audit.read_text()
    assert "x" * 1000 not in text and TOKEN not in text  # nothing echoed whole, no secret
    refused = [json.loads(line) for line in text.splitlines()]
    assert [r["status"] for r in refused] == [401, 401, 403, 404, 404, 400, 413, 400, 400, 400]
    assert all(r["refused"] and r["endpoint"].startswith("flagger/") for r in refused)


def test_an_infrastructure_error_is_retried_by_flagger_and_never_passes(served: Served) -> None:
    # The canary's URL answers nothing: gate check stops at its preflight (an infrastructure error).
    from tests.integrations.conftest import write_contract

    write_contract(served.contracts, "test", "gone", "http://127.0.0.1:9", "http://127.0.0.1:9")
    result = flagger_call(
        f"{served.url}/integrations/flagger/rollout",
        _payload("gone", token=TOKEN, wait="20"),
        timeout=30,
        retries=2,
    )
    assert not result.ok and result.status == 503
    assert result.attempts == 3 and "giving up after 3 attempt(s)" in result.text  # 5xx bodies are dropped
    records = [json.loads(line) for line in served.audit.read_text().splitlines()]
    assert [r["verdict"] for r in records] == ["error"] * 3
    assert "does not answer" in records[-1]["reason"]
