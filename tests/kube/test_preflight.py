"""gate preflight against the emulator (cluster, RBAC) and a real Prometheus with backfilled series:
each refusal names the object and the fix (issue 10, "Done when"); a ready rollout finds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gate.contract import parse_contract
from gate.drivers import kube
from gate.drivers.preflight import Problem, permissions, preflight
from gate.drivers.prometheus.client import PrometheusClient
from tests.drivers.routers import test_gateway_api as gw
from tests.support.kube import RunningKube
from tests.support.prom import T0, OpenMetrics, backfilled_prometheus, latency_points

AT = T0 + 600
BOUNDS = [0.05, 0.1, 0.25, 0.5, 1.0]
SERVICE: dict[str, Any] = {"apiVersion": "v1", "kind": "Service", "spec": {"ports": [{"port": 8080}]}}


@pytest.fixture(scope="module")
def prom_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    om = OpenMetrics()
    # 10 production requests per second on stable, 1 per second on the canary (its readiness traffic).
    for track, source, rps in (("stable", "production", 10), ("canary", "production", 1)):
        om.histogram(
            "http_request_duration_seconds",
            {"track": track, "traffic_source": source},
            BOUNDS,
            latency_points(BOUNDS, [0.04] * rps, T0, 601),
        )
    with backfilled_prometheus(om.text(), tmp_path_factory.mktemp("prom")) as server:
        yield server.url


def contract(
    prom: str,
    *,
    route: str = "checkout",
    steps: str = "[10%, analyze 2m, 50%, analyze 1m, 100%]",
    canary_track: str = "canary",
) -> Any:
    return parse_contract(contract_text(prom, route=route, steps=steps, canary_track=canary_track))


def contract_text(
    prom: str,
    *,
    route: str = "checkout",
    steps: str = "[10%, analyze 2m, 50%, analyze 1m, 100%]",
    canary_track: str = "canary",
) -> str:
    return f"""apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: checkout, namespace: shop}}
spec:
  target:
    stable: {{service: checkout, deployment: checkout}}
    canary: {{service: checkout-canary, deployment: checkout-canary}}
  router: {{type: gateway-api, httpRoute: {route}}}
  prometheus: {{url: "{prom}"}}
  traffic: {{tracks: {{stable: {{track: stable}}, canary: {{track: {canary_track}}}}}}}
  objectives:
    - {{sli: http-latency, quantile: p95, max: 300ms, sources: [production], minEvidence: {{requests: 100, duration: 30s}}}}
  steps: {steps}
"""


@pytest.fixture
def client(kube_api: RunningKube) -> kube.KubeClient:
    kube_api.seed(gw.R, "shop", "checkout", gw.SEED)
    kube_api.seed("v1/services", "shop", "checkout", SERVICE)
    kube_api.seed("v1/services", "shop", "checkout-canary", SERVICE)
    return kube.connect(host=kube_api.url, timeout=5)


def _run(c: Any, client: kube.KubeClient, prom: str) -> list[Problem]:
    with PrometheusClient(prom, retries=0) as p:
        return preflight(c, kube_client=client, prometheus=p, at=AT)


def test_a_ready_rollout_has_no_problems(client: kube.KubeClient, prom_url: str) -> None:
    assert _run(contract(prom_url), client, prom_url) == []


def test_missing_route(client: kube.KubeClient, prom_url: str) -> None:
    [p] = [p for p in _run(contract(prom_url, route="chekout"), client, prom_url) if p.check == "route"]
    assert p.subject == "HTTPRoute shop/chekout" and p.message == "does not exist"
    assert "spec.router.httpRoute" in p.fix


def test_route_without_the_stable_backend(
    kube_api: RunningKube, client: kube.KubeClient, prom_url: str
) -> None:
    route = {**gw.SEED, "spec": {**gw.SEED["spec"], "rules": [gw.ADMIN_RULE]}}
    kube_api.seed(gw.R, "shop", "checkout", route)
    [p] = [p for p in _run(contract(prom_url), client, prom_url) if p.check == "route"]
    assert "no backendRef to the stable backend 'checkout'" in p.message
    assert "backendRef to the stable Service" in p.fix


def test_missing_canary_service(kube_api: RunningKube, client: kube.KubeClient, prom_url: str) -> None:
    kube_api.delete("v1/services", "shop", "checkout-canary")
    [p] = [p for p in _run(contract(prom_url), client, prom_url) if p.check == "route"]
    assert p.subject == "Service shop/checkout-canary" and "canary Service does not exist" in p.message


def test_forbidden_patch(kube_api: RunningKube, client: kube.KubeClient, prom_url: str) -> None:
    kube_api.emulator.deny("patch", "httproutes", group="gateway.networking.k8s.io", namespace="shop")
    [p] = [p for p in _run(contract(prom_url), client, prom_url) if p.check == "rbac"]
    assert "may not `patch` httproutes" in p.message
    assert 'grant `patch` on httproutes (apiGroups: ["gateway.networking.k8s.io"]) in namespace shop' in p.fix
    assert kube_api.emulator.calls_of("patch") == []  # preflight changes nothing


def test_prometheus_without_the_series(client: kube.KubeClient, prom_url: str) -> None:
    problems = _run(contract(prom_url, canary_track="canary-v2"), client, prom_url)
    [p] = [p for p in problems if p.check == "series"]
    assert p.subject.endswith("canary track")
    assert 'track="canary-v2"' in p.message and "traffic.tracks" in p.fix


def test_prometheus_that_does_not_answer(client: kube.KubeClient) -> None:
    from tests.support.ports import free_port

    url = f"http://127.0.0.1:{free_port()}"
    [p] = [p for p in _run(contract(url), client, url) if p.check == "prometheus"]
    assert "does not answer" in p.message and "spec.prometheus.url" in p.fix


def test_a_step_too_short(client: kube.KubeClient, prom_url: str) -> None:
    problems = _run(contract(prom_url, steps="[10%, analyze 20s, 50%, analyze 10s, 100%]"), client, prom_url)
    short = [p for p in problems if p.check == "evidence" and "minEvidence.duration" in p.message]
    assert [p.subject for p in short] == ["spec.steps[1] (analyze 20s)", "spec.steps[3] (analyze 10s)"]
    # 10 req/s × 10 % × 20 s = 20 requests, 100 needed: lengthen to 100 s.
    few = [p for p in problems if p.check == "evidence" and "needs 100" in p.message]
    assert "about 20 production requests" in few[0].message and "at least 1m40s" in few[0].fix


def test_no_cluster_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, prom_url: str) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with PrometheusClient(prom_url, retries=0) as p:
        problems = preflight(contract(prom_url), prometheus=p, at=AT)
    [c] = [x for x in problems if x.check == "cluster"]
    assert "--kubeconfig" in c.fix


def test_the_mirror_left_on_at_100_is_a_warning(client: kube.KubeClient, prom_url: str) -> None:
    problems = _run(contract(prom_url, steps="[mirror 100%, 10%, analyze 2m, 100%]"), client, prom_url)
    [w] = [p for p in problems if p.severity == "warning"]
    assert w.subject == "spec.steps[3]" and "runs twice" in w.message


def test_permissions_per_promotion_mode(prom_url: str) -> None:
    base = contract(prom_url)
    assert [(p.verb, p.resource.plural) for p in permissions(base, "shop")] == [
        ("get", "httproutes"),
        ("patch", "httproutes"),
        ("get", "services"),
    ]
    copy = base.model_copy(deep=True)
    copy.spec.promotion.mode = "copy"
    assert ("patch", "deployments") in [(p.verb, p.resource.plural) for p in permissions(copy, "shop")]
