"""kopf runs against the emulator (what the operator's tests build on): discovery, list+watch, a create
handler, and its patches of the object and of the status subresource."""

from __future__ import annotations

import time
from pathlib import Path

import kmock
from kopf.testing import KopfRunner
from kubernetes import client as k8s

from tests.support.kube import RunningKube

R = "perfgate.dev/v1alpha1/performancegates"


def test_kopf_handles_a_created_object(kube_api: RunningKube, tmp_path: Path) -> None:
    kube_api.emulator.resources[R] = kmock.ResourceInfo(
        kind="PerformanceGate",
        namespaced=True,
        singular="performancegate",
        verbs={"list", "watch", "get", "patch", "create", "update", "delete"},
        subresources={"status"},
    )
    operator = tmp_path / "op.py"
    operator.write_text(f'''
import kopf

@kopf.on.login()
def login(**_):
    return kopf.ConnectionInfo(server="{kube_api.url}", insecure=True, scheme="Bearer", token="x")

@kopf.on.startup()
def configure(settings, **_):
    settings.posting.enabled = False
    settings.watching.server_timeout = 2

@kopf.on.create("perfgate.dev", "v1alpha1", "performancegates")
def created(patch, **_):
    patch.status["phase"] = "Seen"
''')
    cfg = k8s.Configuration()
    cfg.host = kube_api.url
    api = k8s.CustomObjectsApi(k8s.ApiClient(cfg))
    with KopfRunner(["run", "-A", "--standalone", str(operator)], timeout=60) as runner:
        body = {
            "apiVersion": "perfgate.dev/v1alpha1",
            "kind": "PerformanceGate",
            "metadata": {"name": "g1"},
            "spec": {},
        }
        api.create_namespaced_custom_object("perfgate.dev", "v1alpha1", "shop", "performancegates", body)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            obj = kube_api.stored(R, "shop", "g1")
            if (obj.get("status") or {}).get("phase") == "Seen":
                break
            time.sleep(0.1)
    assert runner.exit_code == 0, runner.output[-2000:]
    assert obj["status"]["phase"] == "Seen"
    assert "kopf.zalando.org/last-handled-configuration" in obj["metadata"]["annotations"]
    assert int(obj["metadata"]["resourceVersion"]) > 0 and obj["metadata"]["generation"] == 1
