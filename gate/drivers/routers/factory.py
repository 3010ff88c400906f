"""`router_for(contract)`: the router a contract's `spec.router` names, built from the contract and
what only the running gate knows (a Kubernetes client, nginx's prefix and port).

The contract is validated before it gets here, so an unknown router type cannot occur; a router
that lacks something it needs (a Service name, a URL) is a RouterMisconfigured that says which field.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from gate.contract import models
from gate.drivers import kube as kubedriver
from gate.drivers.kube import KubeOptions
from gate.drivers.routers.base import Router, RouterMisconfigured
from gate.drivers.routers.deployment import DeploymentRouter, DeploymentTarget
from gate.drivers.routers.gateway_api import BackendRef, GatewayApiRouter, HttpRouteTarget
from gate.drivers.routers.ingress_nginx import IngressNginxRouter, IngressTarget
from gate.drivers.routers.istio import Destination, IstioRouter, VirtualServiceTarget
from gate.drivers.routers.nginx import NginxRouter
from gate.drivers.routers.promotion import Deployments, HandOver


def service_of(endpoint: models.Endpoint, track: str) -> str:
    """The Kubernetes Service of a track: `service`, else the first label of an in-cluster URL
    (`http://checkout-canary.shop.svc:8080` → `checkout-canary`)."""
    if endpoint.service:
        return endpoint.service
    host = urlsplit(endpoint.url or "").hostname or ""
    first, _, rest = host.partition(".")
    if (
        first
        and not first.isdigit()
        and (not rest or rest.endswith(("svc", "svc.cluster.local")) or rest.count(".") == 0)
    ):
        return first
    raise RouterMisconfigured(
        f"spec.target.{track}.service: the router needs the {track} track's Kubernetes Service; set it"
    )


def namespace_for(
    contract: models.Contract,
    router_ns: str | None = None,
    default: str | None = None,
    flag: str | None = None,
) -> str:
    """The namespace of the objects gate touches: the router's own `namespace`, else the contract's
    `metadata.namespace`, else `default` (`--namespace`, the kubeconfig context's, the pod's), else
    `default`. A `--namespace` (`flag`) that contradicts `metadata.namespace` is refused, as kubectl does."""
    meta = contract.metadata.namespace
    if flag and meta and flag != meta:
        raise RouterMisconfigured(
            f"--namespace {flag} contradicts metadata.namespace {meta} of contract {contract.metadata.name}",
            hint="drop --namespace, or change metadata.namespace in the contract",
        )
    return router_ns or meta or default or "default"


def router_for(
    contract: models.Contract,
    *,
    kube_client: kubedriver.KubeClient | None = None,
    kube: KubeOptions | None = None,
    prefix: Path | str | None = None,
    listen_port: int | None = None,
) -> Router:
    """Build the contract's router, wrapped in its promotion hand-over (`spec.promotion`).

    Kubernetes routers use `kube_client`, else a client connected with `kube` (KubeOptions: the
    `--kubeconfig`, `--context`, `--namespace` flags; default: the usual search, see
    `gate.drivers.kube`). The nginx router needs `prefix` (its private directory) and a port (the
    contract's or `listen_port`). Raises RouterMisconfigured / KubeConfigError (both permanent)."""
    router = _bare_router(
        contract, kube_client=kube_client, kube=kube, prefix=prefix, listen_port=listen_port
    )
    promotion = contract.spec.promotion
    if promotion.mode == "route-only":
        return router
    client = getattr(router, "client", None)
    target = contract.spec.target
    if (
        not isinstance(client, kubedriver.KubeClient)
        or not target.stable.deployment
        or not target.canary.deployment
    ):
        raise RouterMisconfigured(  # the contract's validation prevents this
            f"spec.promotion.mode: {promotion.mode} needs a Kubernetes router and both Deployments"
        )
    ns = namespace_for(contract, getattr(contract.spec.router, "namespace", None), client.namespace)
    return HandOver(
        router,
        client,
        Deployments(ns, target.stable.deployment, target.canary.deployment),
        mode=promotion.mode,
        timeout=promotion.timeout,
    )


def _bare_router(
    contract: models.Contract,
    *,
    kube_client: kubedriver.KubeClient | None,
    kube: KubeOptions | None,
    prefix: Path | str | None,
    listen_port: int | None,
) -> Router:
    spec = contract.spec.router
    target = contract.spec.target
    if spec is None:
        raise RouterMisconfigured("spec.router: this contract names no router; add one to roll out")
    if isinstance(spec, models.NginxRouter):
        port = spec.port or listen_port
        if prefix is None or port is None:
            raise RouterMisconfigured(
                "spec.router: the nginx router needs a prefix directory and a listen port"
            )
        if not target.stable.url or not target.canary.url:
            raise RouterMisconfigured(
                "spec.target.stable.url / canary.url: the nginx router proxies to both URLs"
            )
        return NginxRouter(
            prefix,
            port,
            target.stable.url,
            target.canary.url,
            shadow_header=contract.spec.traffic.header,
            listen_host=spec.host,
        )
    try:
        client = kube_client or kubedriver.connect(kube)
    except kubedriver.KubeError as exc:  # no credentials: a router error like the others (permanent)
        raise RouterMisconfigured(exc.message, hint=exc.hint) from exc

    def _namespace(router_ns: str | None, _contract: models.Contract) -> str:
        return namespace_for(contract, router_ns, client.namespace, kube.namespace if kube else None)

    if isinstance(spec, models.GatewayApiRouter):
        return GatewayApiRouter(
            client,
            HttpRouteTarget(
                namespace=_namespace(spec.namespace, contract),
                name=spec.http_route,
                stable=BackendRef(service_of(target.stable, "stable")),
                canary=BackendRef(service_of(target.canary, "canary")),
            ),
        )
    if isinstance(spec, models.IstioRouter):
        stable_host = service_of(target.stable, "stable")
        if spec.destination_rule:
            # Subsets of one host (named in the DestinationRule), as Istio's canary examples do.
            stable, canary = Destination(stable_host, "stable"), Destination(stable_host, "canary")
        else:
            stable, canary = Destination(stable_host), Destination(service_of(target.canary, "canary"))
        return IstioRouter(
            client,
            VirtualServiceTarget(_namespace(spec.namespace, contract), spec.virtual_service, stable, canary),
        )
    if isinstance(spec, models.IngressNginxRouter):
        return IngressNginxRouter(
            client,
            IngressTarget(
                namespace=_namespace(spec.namespace, contract),
                ingress=spec.ingress,
                stable_service=service_of(target.stable, "stable"),
                canary_service=service_of(target.canary, "canary"),
            ),
        )
    if isinstance(spec, models.DeploymentRouter):
        if not target.stable.deployment or not target.canary.deployment:
            raise RouterMisconfigured(
                "spec.target.stable.deployment / canary.deployment: the deployment router scales both"
            )
        return DeploymentRouter(
            client,
            DeploymentTarget(
                namespace=_namespace(spec.namespace, contract),
                stable=target.stable.deployment,
                canary=target.canary.deployment,
                # Without an explicit total, share what the two Deployments have between them.
                total=spec.replicas if "replicas" in spec.model_fields_set else None,
            ),
        )
    raise RouterMisconfigured(f"spec.router.type: unknown router {spec!r}")  # unreachable: validated
