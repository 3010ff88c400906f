"""Promotion hand-over against the emulator with the official client (issue 10, item 2): the test
plays the Deployment controller. After each mode the route equals what the user wrote (stable 100 %)
and the stable Deployment runs the canary's version; RBAC gaps are permanent errors with the fix."""

from __future__ import annotations

from typing import Any

import pytest

from gate.contract import ContractError, parse_contract
from gate.drivers import kube
from gate.drivers.routers import RouteState, router_for
from gate.drivers.routers.base import RouterMisconfigured
from gate.drivers.routers.promotion import HandOver, PromotionTimeout, rolled_out
from tests.drivers.routers import test_gateway_api as gw
from tests.drivers.routers.crds import validate_core, validate_crd
from tests.support.kube import RunningKube, as_written, field_diff

D = "apps/v1/deployments"


def contract(mode: str, timeout: str = "10m") -> Any:
    return parse_contract(f"""apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {{name: checkout, namespace: shop}}
spec:
  target:
    stable: {{service: checkout, deployment: checkout}}
    canary: {{service: checkout-canary, deployment: checkout-canary}}
  router: {{type: gateway-api, httpRoute: checkout}}
  promotion: {{mode: {mode}, timeout: {timeout}}}
""")


def deployment(name: str, image: str, replicas: int, track: str) -> dict[str, Any]:
    labels = {"app": "checkout", "track": track}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": "shop", "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels, "annotations": {"prometheus.io/scrape": "true"}},
                "spec": {
                    "containers": [{"name": "app", "image": image, "env": [{"name": "MODE", "value": track}]}]
                },
            },
        },
    }


STABLE = deployment("checkout", "shop/checkout:1.0", 3, "stable")
CANARY = deployment("checkout-canary", "shop/checkout:1.1", 1, "canary")


@pytest.fixture
def client(kube_api: RunningKube) -> kube.KubeClient:
    kube_api.seed(gw.R, "shop", "checkout", gw.SEED)
    kube_api.seed(D, "shop", "checkout", STABLE)
    kube_api.seed(D, "shop", "checkout-canary", CANARY)
    kube_api.complete_rollout("shop", "checkout")
    kube_api.complete_rollout("shop", "checkout-canary")
    return kube.connect(host=kube_api.url, timeout=5)


def _ladder(router: Any) -> None:
    router.set_mirror(100)
    for w in (20, 50, 100):
        router.set_weight(w)


def test_route_only_leaves_the_canary_at_100(kube_api: RunningKube, client: kube.KubeClient) -> None:
    router = router_for(contract("route-only"), kube_client=client)
    assert not isinstance(router, HandOver)
    _ladder(router)
    assert router.finish("promoted").state == RouteState(100, 0)
    assert field_diff(STABLE["spec"], kube_api.stored(D, "shop", "checkout")["spec"]) == []  # untouched


def test_copy_hands_the_template_over_then_routes_back(
    kube_api: RunningKube, client: kube.KubeClient
) -> None:
    router = router_for(contract("copy"), kube_client=client)
    assert isinstance(router, HandOver)
    _ladder(router)
    first = router.finish("promoted")
    assert not first.done and "rolling out the canary's template" in first.detail
    assert first.state == RouteState(100, 0)  # the mirror went off at once; the canary keeps the traffic
    stable = kube_api.stored(D, "shop", "checkout")
    validate_core(as_written({k: v for k, v in stable.items() if k != "status"}))
    assert stable["spec"]["template"]["spec"] == CANARY["spec"]["template"]["spec"]
    assert (
        stable["spec"]["template"]["metadata"]["labels"] == STABLE["spec"]["template"]["metadata"]["labels"]
    )
    assert stable["spec"]["selector"] == STABLE["spec"]["selector"]
    assert not rolled_out(stable)[0]
    patches = len(kube_api.emulator.patches)
    assert not router.finish("promoted").done  # waiting again writes nothing new but the (no-op) checks
    assert len(kube_api.emulator.patches) == patches

    kube_api.complete_rollout("shop", "checkout")  # the Deployment controller did its work
    done = router.finish("promoted")
    assert done.done and done.state == RouteState(0, 0)
    route = as_written(kube_api.stored(gw.R, "shop", "checkout"))
    validate_crd(route)
    assert field_diff(gw.SEED, route) == []  # the route as the user wrote it: stable 100 %
    assert kube_api.stored(D, "shop", "checkout-canary")["spec"]["replicas"] == 0
    again = len(kube_api.emulator.patches)
    assert router.finish("promoted").done  # idempotent
    assert len(kube_api.emulator.patches) == again


def test_external_waits_for_the_canarys_images(kube_api: RunningKube, client: kube.KubeClient) -> None:
    router = router_for(contract("external"), kube_client=client)
    _ladder(router)
    waiting = router.finish("promoted")
    assert not waiting.done and "shop/checkout:1.1" in waiting.detail and "GitOps" in waiting.detail
    assert kube_api.stored(D, "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"] == (
        "shop/checkout:1.0"
    )  # gate did not touch the stable Deployment

    # The GitOps tool promotes: the stable Deployment gets the canary's image, then rolls it out.
    kube_client_patch = {
        "spec": {"template": {"spec": {"containers": [{"name": "app", "image": "shop/checkout:1.1"}]}}}
    }
    client.patch(kube.ObjectRef(kube.DEPLOYMENT, "shop", "checkout"), kube_client_patch)
    assert "rolling out" in router.finish("promoted").detail
    kube_api.complete_rollout("shop", "checkout")
    done = router.finish("promoted")
    assert done.done and done.state == RouteState(0, 0)
    assert field_diff(gw.SEED, as_written(kube_api.stored(gw.R, "shop", "checkout"))) == []
    assert kube_api.stored(D, "shop", "checkout-canary")["spec"]["replicas"] == 1  # left to its owner


def test_a_rollout_that_never_completes_times_out_with_the_traffic_kept(
    kube_api: RunningKube, client: kube.KubeClient
) -> None:
    router = router_for(contract("copy", timeout="30s"), kube_client=client)
    assert isinstance(router, HandOver)
    now = [0.0]
    router._clock = lambda: now[0]
    _ladder(router)
    assert not router.finish("promoted").done
    now[0] = 31.0
    with pytest.raises(
        PromotionTimeout, match=r"waited 31s .*traffic stays as it is \(canary 100%\)"
    ) as info:
        router.finish("promoted")
    assert info.value.permanent and "kubectl rollout status deployment/checkout -n shop" in info.value.hint
    assert router.read() == RouteState(100, 0)


def test_rollback_never_hands_anything_over(kube_api: RunningKube, client: kube.KubeClient) -> None:
    router = router_for(contract("copy"), kube_client=client)
    _ladder(router)
    assert router.finish("rolled_back").state == RouteState(0, 0)
    assert field_diff(gw.SEED, as_written(kube_api.stored(gw.R, "shop", "checkout"))) == []
    assert field_diff(STABLE["spec"], kube_api.stored(D, "shop", "checkout")["spec"]) == []
    assert kube_api.stored(D, "shop", "checkout-canary")["spec"]["replicas"] == 1


@pytest.mark.parametrize(("mode", "verb"), [("copy", "patch"), ("external", "get")])
def test_missing_rbac_for_the_hand_over_is_permanent_with_the_fix(
    kube_api: RunningKube, client: kube.KubeClient, mode: str, verb: str
) -> None:
    router = router_for(contract(mode), kube_client=client)
    _ladder(router)
    kube_api.emulator.deny(verb, "deployments", group="apps", namespace="shop")
    with pytest.raises(RouterMisconfigured) as info:
        router.finish("promoted")
    assert info.value.permanent
    assert f"grant gate's identity `{verb}` on deployments" in str(info.value)


def test_the_contract_refuses_a_hand_over_it_cannot_do() -> None:
    with pytest.raises(ContractError, match=r"promotion\.mode copy needs target\.stable\.deployment"):
        parse_contract("""apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: checkout, namespace: shop}
spec:
  target: {stable: {service: checkout}, canary: {service: checkout-canary}}
  router: {type: gateway-api, httpRoute: checkout}
  promotion: {mode: copy}
""")
    with pytest.raises(ContractError, match="nginx router runs outside Kubernetes"):
        parse_contract("""apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: checkout}
spec:
  target: {stable: {url: "http://127.0.0.1:1", deployment: a}, canary: {url: "http://127.0.0.1:2", deployment: b}}
  router: {type: nginx}
  promotion: {mode: external}
""")
