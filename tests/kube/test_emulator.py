"""The test API server itself, through the official client and kubectl: what other tests rely on
(versions, preconditions, JSON-patch tests, status isolation, RBAC answers, injected faults, freeze)."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client as k8s
from kubernetes.client.exceptions import ApiException

from tests.support.kube import RunningKube

DEPLOYMENT: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "shop"},
    "spec": {
        "replicas": 2,
        "selector": {"matchLabels": {"app": "web"}},
        "template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"containers": [{"name": "web", "image": "web:1"}]},
        },
    },
}


def _api(kube_api: RunningKube) -> k8s.ApiClient:
    cfg = k8s.Configuration()
    cfg.host = kube_api.url
    return k8s.ApiClient(cfg)


def test_writes_are_stamped_and_versioned(kube_api: RunningKube) -> None:
    apps = k8s.AppsV1Api(_api(kube_api))
    created = apps.create_namespaced_deployment("shop", DEPLOYMENT)
    meta = created.metadata
    assert meta.uid and meta.resource_version and meta.creation_timestamp and meta.generation == 1
    same = apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 2}})
    assert same.metadata.resource_version == meta.resource_version  # a no-op keeps the version
    scaled = apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    assert int(scaled.metadata.resource_version) > int(meta.resource_version)
    labelled = apps.patch_namespaced_deployment("web", "shop", {"metadata": {"labels": {"a": "b"}}})
    assert labelled.metadata.generation == 2  # metadata does not bump the generation
    with pytest.raises(ApiException) as info:
        apps.create_namespaced_deployment("shop", DEPLOYMENT)
    assert info.value.status == 409


def test_stale_resource_version_is_a_conflict_and_not_applied(kube_api: RunningKube) -> None:
    apps = k8s.AppsV1Api(_api(kube_api))
    first = apps.create_namespaced_deployment("shop", DEPLOYMENT).metadata.resource_version
    apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 5}})
    with pytest.raises(ApiException) as info:
        apps.patch_namespaced_deployment(
            "web", "shop", {"metadata": {"resourceVersion": first}, "spec": {"replicas": 9}}
        )
    assert info.value.status == 409
    assert kube_api.stored("apps/v1/deployments", "shop", "web")["spec"]["replicas"] == 5
    assert kube_api.emulator.conflicts == 1


def test_json_patch_test_failure_is_422(kube_api: RunningKube) -> None:
    kube_api.seed("apps/v1/deployments", "shop", "web", DEPLOYMENT)
    api = _api(kube_api)
    version = kube_api.stored("apps/v1/deployments", "shop", "web")["metadata"]["resourceVersion"]
    apps = k8s.AppsV1Api(api)
    ok = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "replace", "path": "/spec/replicas", "value": 4},
    ]
    assert (
        apps.patch_namespaced_deployment(
            "web", "shop", ok, _content_type="application/json-patch+json"
        ).spec.replicas
        == 4
    )
    with pytest.raises(ApiException) as info:
        apps.patch_namespaced_deployment("web", "shop", ok, _content_type="application/json-patch+json")
    assert info.value.status == 422
    assert kube_api.stored("apps/v1/deployments", "shop", "web")["spec"]["replicas"] == 4


def test_status_is_a_subresource(kube_api: RunningKube) -> None:
    kube_api.seed("apps/v1/deployments", "shop", "web", DEPLOYMENT)
    apps = k8s.AppsV1Api(_api(kube_api))
    apps.patch_namespaced_deployment("web", "shop", {"status": {"replicas": 7}, "spec": {"replicas": 3}})
    stored = kube_api.stored("apps/v1/deployments", "shop", "web")
    assert "status" not in stored and stored["spec"]["replicas"] == 3
    apps.patch_namespaced_deployment_status(
        "web", "shop", {"status": {"replicas": 7}, "spec": {"replicas": 1}}
    )
    stored = kube_api.stored("apps/v1/deployments", "shop", "web")
    assert stored["status"] == {"replicas": 7} and stored["spec"]["replicas"] == 3
    done = kube_api.complete_rollout("shop", "web")
    assert done["status"]["observedGeneration"] == stored["metadata"]["generation"]
    assert done["status"]["readyReplicas"] == 3


def test_access_reviews_and_denials(kube_api: RunningKube) -> None:
    kube_api.seed("apps/v1/deployments", "shop", "web", DEPLOYMENT)
    kube_api.emulator.deny("patch", "deployments", group="apps", namespace="shop")
    api = _api(kube_api)
    auth = k8s.AuthorizationV1Api(api)

    def allowed(verb: str, namespace: str) -> bool:
        review = k8s.V1SelfSubjectAccessReview(
            spec=k8s.V1SelfSubjectAccessReviewSpec(
                resource_attributes=k8s.V1ResourceAttributes(
                    verb=verb, group="apps", resource="deployments", namespace=namespace
                )
            )
        )
        return bool(auth.create_self_subject_access_review(review).status.allowed)

    assert not allowed("patch", "shop")
    assert allowed("get", "shop")
    assert allowed("patch", "other")
    apps = k8s.AppsV1Api(api)
    with pytest.raises(ApiException) as info:
        apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 1}})
    assert info.value.status == 403 and "cannot patch" in info.value.body
    assert apps.read_namespaced_deployment("web", "shop").spec.replicas == 2


@pytest.mark.parametrize("status", [403, 404, 409, 429, 503])
def test_injected_answers(kube_api: RunningKube, status: int) -> None:
    kube_api.seed("apps/v1/deployments", "shop", "web", DEPLOYMENT)
    kube_api.emulator.fail(
        status, verb="patch", resource="deployments", retry_after=2 if status == 429 else None
    )
    apps = k8s.AppsV1Api(_api(kube_api))
    with pytest.raises(ApiException) as info:
        apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 1}})
    assert info.value.status == status
    if status == 429:
        assert info.value.headers["Retry-After"] == "2"
    assert kube_api.stored("apps/v1/deployments", "shop", "web")["spec"]["replicas"] == 2  # not applied
    assert apps.patch_namespaced_deployment("web", "shop", {"spec": {"replicas": 1}}).spec.replicas == 1


def test_freeze_hangs_requests_until_thawed(kube_api: RunningKube) -> None:
    kube_api.seed("apps/v1/deployments", "shop", "web", DEPLOYMENT)
    apps = k8s.AppsV1Api(_api(kube_api))
    kube_api.freeze()
    with pytest.raises(Exception, match=r"(?i)timed? ?out"):
        apps.read_namespaced_deployment("web", "shop", _request_timeout=0.3)
    threading.Timer(0.3, kube_api.thaw).start()
    started = time.monotonic()
    assert apps.read_namespaced_deployment("web", "shop", _request_timeout=10).spec.replicas == 2
    assert time.monotonic() - started >= 0.25


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kubectl_works_against_it(kube_api: RunningKube, tmp_path: Path) -> None:
    config = kube_api.kubeconfig(tmp_path / "config", namespace="shop")
    manifest = tmp_path / "d.yaml"
    import yaml

    manifest.write_text(yaml.safe_dump(DEPLOYMENT))

    def kubectl(*args: str) -> str:
        done = subprocess.run(
            ["kubectl", f"--kubeconfig={config}", *args],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    kubectl("apply", "--validate=false", "-f", str(manifest))
    assert kubectl("get", "deployment", "web", "-o", "jsonpath={.spec.replicas}") == "2"
    kubectl("patch", "deployment", "web", "--type=merge", "-p", '{"spec":{"replicas":4}}')
    assert kubectl("get", "deployments", "-o", "jsonpath={.items[0].spec.replicas}") == "4"
    kubectl(
        "patch",
        "deployment",
        "web",
        "--type=json",
        "-p",
        '[{"op":"replace","path":"/spec/replicas","value":5}]',
    )
    assert kube_api.stored("apps/v1/deployments", "shop", "web")["spec"]["replicas"] == 5
    kubectl("delete", "deployment", "web")
    assert not kube_api.exists("apps/v1/deployments", "shop", "web")
