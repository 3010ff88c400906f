"""The drop-in endpoints served for real (uvicorn on loopback) over real demo services and real checks.

Callers are played as Flagger and Argo Rollouts call: `flagger_call` follows pkg/controller/webhook.go
and go-retryablehttp (POST, JSON, per-attempt timeout, retries on 429/5xx except 501, only 200-202
pass, a 5xx body dropped); `argo_measure` follows metricproviders/webmetric (no retries, timeout,
non-2xx is an Error, the body read with client-go jsonpath through `kubectl label --local`).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from gate.dashboard.integrations import IntegrationsSettings, create_integrations_app
from tests.support.ports import free_port, wait_port

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "s3cret-token-for-tests-0123456789"

CONTRACT = """\
apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: {name}, namespace: {namespace}}}
spec:
  service: {name}
  target:
    stable: {{url: "{stable}"}}
    canary: {{url: "{canary}"}}
  router: {{type: gateway-api, httpRoute: {name}}}
  prometheus: {{url: "http://prometheus.monitoring:9090", scrapeInterval: 1s}}
  load:
    users: 8
    spawnRate: 50/s
    duration: 8s
    tasks:
      - {{name: catalog, get: /catalog/42}}
  objectives:
    - {{sli: http-latency, quantile: 0.95, max: 220ms, maxIncrease: 50%, critical: true,
       minEvidence: {{requests: 50, duration: 1s}}}}
    - {{sli: http-error-ratio, max: 5%, minEvidence: {{requests: 50, duration: 1s}}}}
  steps: [5%, analyze 1m, 100%]
  policy: {{inconclusiveLimit: 0, onInconclusive: {on_inconclusive}}}
"""


@pytest.fixture(scope="session")
def services() -> Iterator[dict[str, str]]:
    """Stable, a good canary and a canary 2.5 times slower: the demo service, three processes."""
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        for name, extra in (("stable", []), ("good", []), ("slow", ["--latency-factor", "2.5"])):
            port = free_port()
            track = "stable" if name == "stable" else "canary"
            cmd = [sys.executable, "-m", "gate.demo.service", "--track", track, "--port", str(port), *extra]
            procs.append(
                subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            urls[name] = f"http://127.0.0.1:{port}"
        for url in urls.values():
            wait_port(int(url.rsplit(":", 1)[1]), timeout=30)
        yield urls
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)


def write_contract(
    folder: Path, namespace: str, name: str, stable: str, canary: str, on_inconclusive: str = "hold"
) -> Path:
    path = folder / namespace / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        CONTRACT.format(
            name=name, namespace=namespace, stable=stable, canary=canary, on_inconclusive=on_inconclusive
        )
    )
    return path


@dataclass
class Served:
    url: str
    settings: IntegrationsSettings
    audit: Path
    contracts: Path


def serve(settings: IntegrationsSettings) -> Iterator[str]:
    """Serve the integrations app with uvicorn on a free loopback port in a thread; stop it after."""
    port = free_port()
    config = uvicorn.Config(
        create_integrations_app(settings), host="127.0.0.1", port=port, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="integrations", daemon=True)
    thread.start()
    try:
        wait_port(port, timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(20)


@pytest.fixture
def served(tmp_path: Path, services: dict[str, str]) -> Iterator[Served]:
    """The endpoints with a contracts folder: test/podinfo (good canary), test/slow (slow canary)."""
    contracts = tmp_path / "contracts"
    write_contract(contracts, "test", "podinfo", services["stable"], services["good"])
    write_contract(contracts, "test", "slow", services["stable"], services["slow"])
    audit = tmp_path / "audit.jsonl"
    settings = IntegrationsSettings(
        token=TOKEN,
        contracts=contracts,
        prometheus="off",
        audit_log=audit,
        namespaces="test|shop",
        workdir=tmp_path / "work",
    )
    for url in serve(settings):
        yield Served(url, settings, audit, contracts)


# ------------------------------------------------------------------------------- the callers


@dataclass
class FlaggerResult:
    """What Flagger makes of a call: ok (200-202), the status, the text it keeps (body or its error)."""

    ok: bool
    status: int
    text: str
    attempts: int


def flagger_call(
    url: str, payload: dict[str, Any], *, timeout: float = 10.0, retries: int = 0
) -> FlaggerResult:
    """One webhook call the way Flagger makes it (CallWebhook + go-retryablehttp)."""
    attempts = 0
    status = 0
    body = ""
    while True:
        attempts += 1
        try:
            r = httpx.post(
                url,
                content=json.dumps(payload),
                headers={"Content-Type": "application/json"},
                timeout=timeout,
            )
            status, body = r.status_code, r.text
            retry = status == 429 or (status >= 500 and status != 501)
        except httpx.TimeoutException as exc:
            status, body, retry = 0, f"timeout: {exc}", True
        if not retry or attempts > retries:
            break
        time.sleep(min(0.05 * 2**attempts, 0.5))  # retryablehttp backs off (1 s minimum; shortened here)
    if retry:  # retries used up on a retryable answer: retryablehttp drops the body
        return FlaggerResult(False, status, f"POST {url} giving up after {attempts} attempt(s)", attempts)
    if status > 202:
        return FlaggerResult(False, status, body, attempts)
    return FlaggerResult(True, status, body, attempts)


@dataclass
class Measurement:
    phase: str  # Successful, Failed, Inconclusive, Error
    value: str
    message: str


def jsonpath(doc: str, expr: str, tmp: Path) -> str:
    """Evaluate `expr` on the JSON `doc` with client-go's jsonpath (kubectl's, as Argo Rollouts uses)."""
    resp = tmp / "resp.json"
    resp.write_text(doc)
    done = subprocess.run(
        ["kubectl", "label", "--local", "-f", str(resp), "x=y", "-o", f"jsonpath={expr}"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    if done.returncode != 0:
        raise LookupError(done.stderr.strip())
    return done.stdout


def argo_measure(
    url: str, json_body: dict[str, Any], headers: dict[str, str], tmp: Path, *, timeout: float = 10.0
) -> Measurement:
    """One measurement of the example AnalysisTemplate's metric, as the web provider takes it.

    jsonPath `{$.verdict}`; successCondition `result == 'pass'`; failureCondition `result == 'fail'`."""
    try:
        r = httpx.post(
            url,
            content=json.dumps(json_body),
            headers={**headers, "Content-Type": "application/json"},
            timeout=timeout,
        )
    except httpx.TimeoutException as exc:
        return Measurement("Error", "", f"timeout: {exc}")
    if r.status_code < 200 or r.status_code >= 300:
        return Measurement("Error", "", f"received non 2xx response code: {r.status_code}")
    try:
        json.loads(r.text)
        value = jsonpath(r.text, "{$.verdict}", tmp)
    except (ValueError, LookupError) as exc:
        return Measurement("Error", "", f"Could not find JSONPath in body: {exc}")
    success, failure = value == "pass", value == "fail"
    if failure:
        return Measurement("Failed", value, "")
    if success:
        return Measurement("Successful", value, "")
    return Measurement("Inconclusive", value, "")
