"""router_for: the contract's spec.router becomes the right router with the right target."""

from __future__ import annotations

from pathlib import Path

import pytest

from gate.contract import parse_contract
from gate.drivers import kube
from gate.drivers.routers import RouterMisconfigured, router_for
from gate.drivers.routers.deployment import DeploymentRouter, DeploymentTarget
from gate.drivers.routers.gateway_api import BackendRef, GatewayApiRouter, HttpRouteTarget
from gate.drivers.routers.ingress_nginx import IngressNginxRouter, IngressTarget
from gate.drivers.routers.istio import Destination, IstioRouter, VirtualServiceTarget
from gate.drivers.routers.nginx import NginxRouter

HEAD = """apiVersion: perfgate.dev/v1alpha1
kind: PerformanceContract
metadata: {name: checkout, namespace: shop}
spec:
  target:
    stable: {url: http://checkout-stable.shop.svc:8080, deployment: checkout}
    canary: {url: http://checkout-canary.shop.svc:8080, deployment: checkout-canary}
"""


def _client() -> kube.KubeClient:
    return kube.connect(host="http://127.0.0.1:1")  # never called: construction only


def test_gateway_api() -> None:
    r = router_for(
        parse_contract(HEAD + "  router: {type: gateway-api, httpRoute: web}\n"), kube_client=_client()
    )
    assert isinstance(r, GatewayApiRouter)
    assert r.target == HttpRouteTarget(
        "shop", "web", BackendRef("checkout-stable"), BackendRef("checkout-canary")
    )


def test_istio_with_and_without_subsets() -> None:
    c = parse_contract(HEAD + "  router: {type: istio, virtualService: vs, namespace: mesh}\n")
    r = router_for(c, kube_client=_client())
    assert isinstance(r, IstioRouter)
    assert r.target == VirtualServiceTarget(
        "mesh", "vs", Destination("checkout-stable"), Destination("checkout-canary")
    )
    c = parse_contract(HEAD + "  router: {type: istio, virtualService: vs, destinationRule: dr}\n")
    r = router_for(c, kube_client=_client())
    assert isinstance(r, IstioRouter)
    assert r.target.stable == Destination("checkout-stable", "stable")
    assert r.target.canary == Destination("checkout-stable", "canary")


def test_ingress_nginx_and_deployment() -> None:
    r = router_for(
        parse_contract(HEAD + "  router: {type: ingress-nginx, ingress: web}\n"), kube_client=_client()
    )
    assert isinstance(r, IngressNginxRouter)
    assert r.target == IngressTarget("shop", "web", "checkout-stable", "checkout-canary")
    r = router_for(parse_contract(HEAD + "  router: {type: deployment}\n"), kube_client=_client())
    assert isinstance(r, DeploymentRouter)
    assert r.target == DeploymentTarget("shop", "checkout", "checkout-canary", total=None)
    r = router_for(
        parse_contract(HEAD + "  router: {type: deployment, replicas: 6}\n"), kube_client=_client()
    )
    assert isinstance(r, DeploymentRouter) and r.target.total == 6


def test_nginx(tmp_path: Path) -> None:
    text = HEAD.replace("checkout-stable.shop.svc:8080", "127.0.0.1:8001").replace(
        "checkout-canary.shop.svc:8080", "127.0.0.1:8002"
    )
    c = parse_contract(text + "  router: {type: nginx}\n")
    r = router_for(c, prefix=tmp_path, listen_port=8000)
    assert isinstance(r, NginxRouter)
    assert (r.config.listen_port, r.config.stable.address, r.config.canary.address) == (
        8000,
        "127.0.0.1:8001",
        "127.0.0.1:8002",
    )
    with pytest.raises(RouterMisconfigured, match="prefix directory and a listen port"):
        router_for(c)


def test_missing_service_is_named() -> None:
    text = HEAD.replace("http://checkout-stable.shop.svc:8080", "http://10.0.0.1:8080")
    with pytest.raises(RouterMisconfigured, match=r"spec\.target\.stable\.service"):
        router_for(
            parse_contract(text + "  router: {type: gateway-api, httpRoute: web}\n"), kube_client=_client()
        )
    with pytest.raises(RouterMisconfigured, match="names no router"):
        router_for(parse_contract(HEAD))


def test_namespace_rules() -> None:
    no_ns = HEAD.replace("metadata: {name: checkout, namespace: shop}", "metadata: {name: checkout}")
    c = parse_contract(no_ns + "  router: {type: gateway-api, httpRoute: web}\n")
    client = kube.connect(kube.KubeOptions(host="http://127.0.0.1:1", namespace="team-a"))
    r = router_for(c, kube_client=client)
    assert isinstance(r, GatewayApiRouter) and r.target.namespace == "team-a"  # --namespace / context
    r = router_for(
        parse_contract(no_ns + "  router: {type: gateway-api, httpRoute: web, namespace: edge}\n"),
        kube_client=client,
    )
    assert isinstance(r, GatewayApiRouter) and r.target.namespace == "edge"  # the router's own wins
    assert router_for(c, kube_client=_client()).target.namespace == "default"  # type: ignore[attr-defined]
    with pytest.raises(RouterMisconfigured, match=r"--namespace other contradicts metadata\.namespace shop"):
        router_for(
            parse_contract(HEAD + "  router: {type: gateway-api, httpRoute: web}\n"),
            kube_client=_client(),
            kube=kube.KubeOptions(namespace="other"),
        )


def test_promotion_modes_wrap_the_router() -> None:
    from gate.drivers.routers.promotion import HandOver

    c = parse_contract(HEAD + "  router: {type: gateway-api, httpRoute: web}\n  promotion: {mode: copy}\n")
    r = router_for(c, kube_client=_client())
    assert isinstance(r, HandOver) and isinstance(r.router, GatewayApiRouter)
    assert r.deployments.stable == "checkout" and r.deployments.canary == "checkout-canary"
    assert "promotion copy" in r.describe()
