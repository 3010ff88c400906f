"""ingress-nginx router against kmock's KubernetesEmulator with the official client: the canary
Ingress gate creates (valid for Kubernetes, stable Ingress never written), weights, remove, no mirror."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gate.drivers import kube
from gate.drivers.routers import NotSupported, RouterMisconfigured, RouteState
from gate.drivers.routers.ingress_nginx import CANARY, CANARY_WEIGHT, IngressNginxRouter, IngressTarget
from gate.drivers.routers.kubecommon import LEDGER_ANNOTATION
from tests.drivers.routers.crds import validate_core
from tests.drivers.routers.kubeemu import RunningEmulator
from tests.support.kube import as_written

R = "networking.k8s.io/v1/ingresses"
TARGET = IngressTarget("shop", "checkout", "checkout", "checkout-canary")
STABLE: dict[str, Any] = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {
        "name": "checkout",
        "namespace": "shop",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"},
        "labels": {"app": "checkout"},
    },
    "spec": {
        "ingressClassName": "nginx",
        "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
        "rules": [
            {
                "host": "shop.example.com",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "checkout", "port": {"number": 8080}}},
                        },
                        {
                            "path": "/static",
                            "pathType": "Prefix",
                            "backend": {"service": {"name": "cdn", "port": {"name": "http"}}},
                        },
                    ]
                },
            }
        ],
    },
}


def _stored(env: RunningEmulator, name: str) -> dict[str, Any]:
    return env.emulator.stored(R, "shop", name)


def test_creates_a_canary_ingress(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(R, "shop", "checkout", STABLE)
    router = IngressNginxRouter(client, TARGET)
    assert router.read() == RouteState(0, 0)
    assert router.set_weight(20) == RouteState(20, 0)
    canary = _stored(env, "checkout-canary")
    canary = as_written(canary)
    assert canary == {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": "checkout-canary",
            "namespace": "shop",
            "labels": {"app.kubernetes.io/managed-by": "perfgate"},
            "annotations": {CANARY: "true", CANARY_WEIGHT: "20"},
        },
        "spec": {
            "ingressClassName": "nginx",
            "rules": [
                {
                    "host": "shop.example.com",
                    "http": {
                        "paths": [
                            {
                                "path": "/",
                                "pathType": "Prefix",
                                "backend": {"service": {"name": "checkout-canary", "port": {"number": 8080}}},
                            }
                        ]
                    },
                }
            ],
            "tls": [{"hosts": ["shop.example.com"], "secretName": "shop-tls"}],
        },
    }
    validate_core(canary)
    # The stable Ingress was read, never written.
    assert not [r for r in env.emulator if str(r.method).endswith(("PATCH", "PUT")) and r.name == "checkout"]
    assert env.emulator.stored(R, "shop", "checkout")["metadata"]["resourceVersion"]
    stable = _stored(env, "checkout")
    stable = as_written(stable)
    assert stable == STABLE

    assert router.set_weight(60) == RouteState(60, 0)
    (name, patch) = env.emulator.patches[-1]
    assert name == "checkout-canary"
    assert set(patch) == {"metadata"} and set(patch["metadata"]) == {"annotations", "resourceVersion"}
    assert patch["metadata"]["annotations"] == {CANARY_WEIGHT: "60"}
    assert router.read() == RouteState(60, 0)
    validate_core(_stored(env, "checkout-canary"))

    router.remove()
    assert router.read() == RouteState(0, 0)
    assert ("checkout-canary") not in [
        k[2] for k in env.emulator.objects if not env.emulator.objects[k].deleted
    ]
    router.remove()  # idempotent


def test_mirror_is_not_supported(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(R, "shop", "checkout", STABLE)
    router = IngressNginxRouter(client, TARGET)
    with pytest.raises(NotSupported, match="ingress-nginx cannot mirror"):
        router.set_mirror(10)
    assert router.set_mirror(0) == RouteState(0, 0)


def test_a_users_canary_ingress_keeps_everything_but_the_weight(
    env: RunningEmulator, client: kube.KubeClient
) -> None:
    env.emulator.seed(R, "shop", "checkout", STABLE)
    users = copy.deepcopy(STABLE)
    users["metadata"] = {
        "name": "checkout-canary",
        "namespace": "shop",
        "annotations": {CANARY: "true", "nginx.ingress.kubernetes.io/canary-by-header": "X-Beta"},
    }
    users["spec"]["rules"][0]["http"]["paths"] = users["spec"]["rules"][0]["http"]["paths"][:1]
    users["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]["name"] = "checkout-canary"
    env.emulator.seed(R, "shop", "checkout-canary", users)
    router = IngressNginxRouter(client, TARGET)
    router.set_weight(15)
    got = _stored(env, "checkout-canary")
    assert got["metadata"]["annotations"][CANARY_WEIGHT] == "15"
    assert got["metadata"]["annotations"]["nginx.ingress.kubernetes.io/canary-by-header"] == "X-Beta"
    assert LEDGER_ANNOTATION in got["metadata"]["annotations"]
    assert got["spec"] == users["spec"]
    validate_core(got)
    router.remove()
    got = _stored(env, "checkout-canary")
    got = as_written(got)
    assert got == users  # it had no weight annotation: gate's is gone, the Ingress is as it was


def test_stable_ingress_without_the_service_is_refused(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(R, "shop", "checkout", STABLE)
    router = IngressNginxRouter(client, IngressTarget("shop", "checkout", "payments", "payments-canary"))
    with pytest.raises(RouterMisconfigured, match="sends nothing to Service 'payments'"):
        router.set_weight(10)


def test_not_a_canary_ingress_is_refused(env: RunningEmulator, client: kube.KubeClient) -> None:
    env.emulator.seed(R, "shop", "checkout", STABLE)
    other = copy.deepcopy(STABLE)
    other["metadata"]["name"] = "checkout-canary"
    env.emulator.seed(R, "shop", "checkout-canary", other)
    with pytest.raises(RouterMisconfigured, match="not a canary Ingress"):
        IngressNginxRouter(client, TARGET).set_weight(10)


def test_the_seed_is_valid() -> None:
    validate_core(STABLE)
