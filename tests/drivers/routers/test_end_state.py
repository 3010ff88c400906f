"""What a run leaves behind, on every router (issue 10): after promotion and after rollback the mirror
is off, gate's annotation and filters are gone, and the object equals what the user wrote except for
the weights — compared field by field, written objects valid against the real schemas. A rollback
before the first weight step writes nothing at all."""

from __future__ import annotations

from typing import Any

import pytest

from gate.drivers import kube
from gate.drivers.routers import RouteState
from gate.drivers.routers.deployment import DeploymentRouter
from gate.drivers.routers.gateway_api import GatewayApiRouter
from gate.drivers.routers.ingress_nginx import IngressNginxRouter
from gate.drivers.routers.istio import IstioRouter
from tests.drivers.routers import test_deployment_router as dep
from tests.drivers.routers import test_gateway_api as gw
from tests.drivers.routers import test_ingress_nginx as ing
from tests.drivers.routers import test_istio as ist
from tests.drivers.routers.crds import validate_core, validate_crd
from tests.drivers.routers.kubeemu import RunningEmulator
from tests.support.kube import as_written, field_diff

LADDER_WITH_MIRROR = [("mirror", 100), ("weight", 20), ("weight", 50), ("weight", 100)]
LADDER = [("weight", 20), ("weight", 50), ("weight", 100)]


def _walk(router: Any, ladder: list[tuple[str, int]]) -> None:
    for kind, value in ladder:
        (router.set_mirror if kind == "mirror" else router.set_weight)(value)


# -- Gateway API ------------------------------------------------------------------------------------


def test_gateway_promoted_route_only(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(gw.R, "shop", "checkout", gw.SEED)
    router = GatewayApiRouter(client, gw.TARGET)
    _walk(router, LADDER_WITH_MIRROR)
    assert router.finish("promoted").state == RouteState(100, 0)
    after = as_written(env.emulator.stored(gw.R, "shop", "checkout"))
    validate_crd(after)
    # Exactly the weights differ: the stable backendRef at 0 and the canary's added at 100.
    assert field_diff(gw.SEED, after) == [
        (
            "spec.rules[1].backendRefs",
            [{"name": "checkout", "port": 8080}],
            [
                {"name": "checkout", "port": 8080, "weight": 0},
                {"name": "checkout-canary", "port": 8080, "weight": 100},
            ],
        )
    ]
    patches = len(env.emulator.patches)
    assert router.finish("promoted").done  # idempotent: nothing more to write
    assert len(env.emulator.patches) == patches


def test_gateway_rolled_back_is_the_route_as_written(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(gw.R, "shop", "checkout", gw.SEED)
    router = GatewayApiRouter(client, gw.TARGET)
    _walk(router, LADDER_WITH_MIRROR[:3])
    assert router.finish("rolled_back").state == RouteState(0, 0)
    assert field_diff(gw.SEED, as_written(env.emulator.stored(gw.R, "shop", "checkout"))) == []
    patches = len(env.emulator.patches)
    router.finish("rolled_back")
    assert len(env.emulator.patches) == patches


# -- Istio ------------------------------------------------------------------------------------------


def test_istio_promoted_and_rolled_back(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(ist.R, "shop", "checkout", ist.SEED)
    router = IstioRouter(client, ist.SUBSETS)
    _walk(router, LADDER_WITH_MIRROR)
    assert router.finish("promoted").state == RouteState(100, 0)
    after = as_written(env.emulator.stored(ist.R, "shop", "checkout"))
    validate_crd(after)
    assert field_diff(ist.SEED, after) == [
        (
            "spec.http[0].route",
            [{"destination": {"host": "checkout", "subset": "stable", "port": {"number": 8080}}}],
            [
                {
                    "destination": {"host": "checkout", "subset": "stable", "port": {"number": 8080}},
                    "weight": 0,
                },
                {
                    "destination": {"host": "checkout", "subset": "canary", "port": {"number": 8080}},
                    "weight": 100,
                },
            ],
        )
    ]

    env.emulator.seed(ist.R, "shop", "checkout", ist.SEED)  # a new run on a fresh route
    _walk(router, LADDER_WITH_MIRROR[:2])
    assert router.finish("rolled_back").state == RouteState(0, 0)
    assert field_diff(ist.SEED, as_written(env.emulator.stored(ist.R, "shop", "checkout"))) == []


# -- ingress-nginx ----------------------------------------------------------------------------------


def test_ingress_nginx_promoted_and_rolled_back(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(ing.R, "shop", "checkout", ing.STABLE)
    router = IngressNginxRouter(client, ing.TARGET)
    _walk(router, LADDER)
    assert router.finish("promoted").state == RouteState(100, 0)
    canary = as_written(env.emulator.stored(ing.R, "shop", "checkout-canary"))
    validate_core(canary)
    assert canary["metadata"]["annotations"] == {ing.CANARY: "true", ing.CANARY_WEIGHT: "100"}
    assert field_diff(ing.STABLE, as_written(env.emulator.stored(ing.R, "shop", "checkout"))) == []

    router.finish("rolled_back")  # gate's canary Ingress is deleted: the stable one as it was
    assert not env.exists(ing.R, "shop", "checkout-canary")
    assert field_diff(ing.STABLE, as_written(env.emulator.stored(ing.R, "shop", "checkout"))) == []


def test_a_users_canary_ingress_loses_only_gates_record(
    env: RunningEmulator, client: kube.KubeClient
) -> None:
    env.emulator.seed(ing.R, "shop", "checkout", ing.STABLE)
    mine = {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "checkout-canary",
            "namespace": "shop",
            "annotations": {ing.CANARY: "true", ing.CANARY_WEIGHT: "0", "x": "y"},
        },
        "spec": {"defaultBackend": {"service": {"name": "checkout-canary", "port": {"number": 8080}}}},
    }
    env.emulator.seed(ing.R, "shop", "checkout-canary", mine)
    router = IngressNginxRouter(client, ing.TARGET)
    _walk(router, LADDER[:2])
    router.finish("rolled_back")
    assert field_diff(mine, as_written(env.emulator.stored(ing.R, "shop", "checkout-canary"))) == []
    _walk(router, LADDER)
    router.finish("promoted")
    assert field_diff(mine, as_written(env.emulator.stored(ing.R, "shop", "checkout-canary"))) == [
        (f"metadata.annotations.{ing.CANARY_WEIGHT}", "0", "100")
    ]


# -- Deployment replica ratio -----------------------------------------------------------------------


def test_deployment_promoted_and_rolled_back(env: RunningEmulator, client: kube.KubeClient) -> None:
    dep._seed(env)
    router = DeploymentRouter(client, dep.TARGET)
    _walk(router, LADDER)
    assert router.finish("promoted").state == RouteState(100, 0)
    stable = as_written(env.emulator.stored(dep.R, "shop", "checkout"))
    canary = as_written(env.emulator.stored(dep.R, "shop", "checkout-canary"))
    validate_core(stable)
    validate_core(canary)
    assert field_diff(dep.STABLE, stable) == [("spec.replicas", 4, 0)]
    assert field_diff(dep.CANARY, canary) == [("spec.replicas", 0, 4)]

    dep._seed(env)
    _walk(router, LADDER[:2])
    router.finish("rolled_back")
    assert field_diff(dep.STABLE, as_written(env.emulator.stored(dep.R, "shop", "checkout"))) == []
    assert field_diff(dep.CANARY, as_written(env.emulator.stored(dep.R, "shop", "checkout-canary"))) == []


# -- nothing written when nothing has to change -------------------------------------------------------


@pytest.mark.parametrize("which", ["gateway-api", "istio", "ingress-nginx", "deployment"])
def test_a_rollback_in_the_first_load_step_writes_nothing(
    env: RunningEmulator, client: kube.KubeClient, which: str
) -> None:
    router: Any
    if which == "gateway-api":
        env.emulator.seed(gw.R, "shop", "checkout", gw.SEED)
        router = GatewayApiRouter(client, gw.TARGET)
    elif which == "istio":
        env.emulator.seed(ist.R, "shop", "checkout", ist.SEED)
        router = IstioRouter(client, ist.SUBSETS)
    elif which == "ingress-nginx":
        env.emulator.seed(ing.R, "shop", "checkout", ing.STABLE)
        router = IngressNginxRouter(client, ing.TARGET)
    else:
        dep._seed(env)
        router = DeploymentRouter(client, dep.TARGET)
    # What the engine's rollback does today, then the end of the run:
    assert router.set_weight(0) == RouteState(0, 0)
    assert router.set_mirror(0) == RouteState(0, 0)
    assert router.finish("rolled_back").state == RouteState(0, 0)
    router.remove()
    writes = [c for c in env.emulator.calls if c.verb in ("create", "patch", "update", "delete")]
    assert writes == []
