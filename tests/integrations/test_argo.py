"""Argo Rollouts' web metric against the real endpoint: the example AnalysisTemplate's request as the
web provider sends it (args resolved, jsonBody, headers, timeoutSeconds, no retries), its response read
with client-go jsonpath, and the template itself validated against Argo Rollouts' own schema."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.helm import tools
from tests.integrations.conftest import TOKEN, Measurement, Served, argo_measure

TEMPLATE = tools.ROOT / "charts" / "gate" / "examples" / "integrations" / "analysistemplate.yaml"


def _resolve(value: Any, args: dict[str, str]) -> Any:
    """Argo's ResolveQuotedArgs: `{{ args.NAME }}` replaced everywhere in the metric (fasttemplate)."""
    text = json.dumps(value)

    def sub(m: re.Match[str]) -> str:
        name = m.group(1)
        if name not in args:
            raise AssertionError(f"failed to resolve {{{{args.{name}}}}}")
        return json.dumps(args[name])[1:-1]

    return json.loads(re.sub(r"\{\{\s*args\.([\w-]+)\s*\}\}", sub, text))


def _request(served: Served, **args: str) -> tuple[str, dict[str, Any], dict[str, str], float]:
    """What the web provider sends for the example template with `args` (the URL pointed at the test)."""
    metric = yaml.safe_load(TEMPLATE.read_text())["spec"]["metrics"][0]
    web = _resolve(metric["provider"]["web"], {"gate-token": TOKEN, **args})
    assert web["method"] == "POST" and "body" not in web  # jsonBody only: Content-Type application/json
    assert web["jsonPath"] == "{$.verdict}"
    headers = {h["key"]: h["value"] for h in web["headers"]}
    url = served.url + web["url"].split(".svc", 1)[1]
    return url, web["jsonBody"], headers, float(web["timeoutSeconds"])


def _analysis(served: Served, tmp: Path, limit: int, **args: str) -> list[Measurement]:
    """The metric's measurements until one is not an Error (count: 1), as Argo retries (every 10 s;
    here every 0.5 s), at most consecutiveErrorLimit + 1 of them."""
    url, body, headers, timeout = _request(served, **args)
    out: list[Measurement] = []
    for _ in range(limit + 1):
        m = argo_measure(url, body, headers, tmp, timeout=timeout)
        out.append(m)
        if m.phase != "Error":
            break
        time.sleep(0.5)
    return out


def test_good_canary_is_successful_after_errors_while_the_check_runs(served: Served, tmp_path: Path) -> None:
    measurements = _analysis(
        served, tmp_path, 200, contract="podinfo", namespace="test", revision="6d4cf56db6"
    )
    assert measurements[-1].phase == "Successful", measurements[-1]
    assert all(m.phase == "Error" and "503" in m.message for m in measurements[:-1])
    assert len(measurements) - 1 <= 30 * 20  # well inside the template's consecutiveErrorLimit × 10 s


def test_slow_canary_fails_and_the_body_says_why(served: Served, tmp_path: Path) -> None:
    measurements = _analysis(served, tmp_path, 200, contract="slow", namespace="test", revision="7f9d8c6b5a")
    assert measurements[-1].phase == "Failed", measurements[-1]
    url, body, headers, _ = _request(served, contract="slow", namespace="test", revision="7f9d8c6b5a")
    r = httpx.post(url, json=body, headers=headers, timeout=10)
    doc = r.json()
    assert r.status_code == 200 and doc["verdict"] == "fail"
    assert any(o["status"] == "fail" and "latency" in o["objective"] for o in doc["objectives"])
    assert doc["failed"] and doc["reason"]
    records = [json.loads(line) for line in served.audit.read_text().splitlines()]
    assert records[-1]["endpoint"] == "argo/verdict" and records[-1]["verdict"] == "fail"
    assert TOKEN not in served.audit.read_text()


def test_refusals_are_measurement_errors_with_a_reason(served: Served, tmp_path: Path) -> None:
    url, body, headers, _ = _request(served, contract="podinfo", namespace="test", revision="abc")
    assert httpx.post(url, json=body, timeout=10).status_code == 401
    assert httpx.post(url, json={**body, "extra": 1}, headers=headers, timeout=10).status_code == 400
    missing = httpx.post(url, json={**body, "contract": "orders"}, headers=headers, timeout=10)
    assert missing.status_code == 404 and "orders" in missing.text
    other = httpx.post(url, json={**body, "namespace": "kube-system"}, headers=headers, timeout=10)
    assert other.status_code == 403
    bad = httpx.post(url, json={**body, "revision": "a/../b"}, headers=headers, timeout=10)
    assert bad.status_code == 400
    m = argo_measure(url, {**body, "contract": "orders"}, headers, tmp_path)
    assert m.phase == "Error" and "404" in m.message


def test_the_example_template_validates_against_argo_rollouts_schema(tmp_path: Path) -> None:
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip(
            "npm/node not installed: Argo Rollouts' schema (npm @kubernetes-models/argo-rollouts) unavailable"
        )
    try:
        folder = tools.fetch_argo_schemas()
    except (OSError, subprocess.SubprocessError) as exc:
        pytest.skip(f"npm could not install @kubernetes-models/argo-rollouts@2.0.0 from the registry: {exc}")
    doc = tmp_path / "template.json"
    doc.write_text(json.dumps(yaml.safe_load(TEMPLATE.read_text())))
    done = subprocess.run(
        ["node", "validate.mjs", str(doc)],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The schema check can fail: a string where Argo wants an integer is refused.
    broken = yaml.safe_load(TEMPLATE.read_text())
    broken["spec"]["metrics"][0]["provider"]["web"]["timeoutSeconds"] = "10"
    doc.write_text(json.dumps(broken))
    done = subprocess.run(
        ["node", "validate.mjs", str(doc)],
        check=False,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1 and "timeoutSeconds" in done.stdout
