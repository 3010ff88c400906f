"""Istio router against kmock's KubernetesEmulator with the official client: exact objects, only
gate-owned fields changed, conflicts retried, every object valid against the VirtualService CRD."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gate.drivers import kube
from gate.drivers.routers import RouterMisconfigured, RouterUnavailable, RouteState
from gate.drivers.routers.istio import Destination, IstioRouter, VirtualServiceTarget
from gate.drivers.routers.kubecommon import LEDGER_ANNOTATION
from gate.errors import RetryPolicy, retry_call
from tests.drivers.routers.crds import validate_crd
from tests.drivers.routers.kubeemu import RunningEmulator
from tests.support.kube import as_written

FAST = RetryPolicy(attempts=4, total=10, initial=0.001, maximum=0.01)
R = "networking.istio.io/v1/virtualservices"
SUBSETS = VirtualServiceTarget(
    "shop", "checkout", Destination("checkout", "stable"), Destination("checkout", "canary")
)
HOSTS = VirtualServiceTarget("shop", "checkout", Destination("checkout"), Destination("checkout-canary"))

HEALTH = {
    "name": "health",
    "match": [{"uri": {"exact": "/healthz"}}],
    "route": [{"destination": {"host": "checkout", "subset": "stable"}}],
    "timeout": "1s",
}
SEED: dict[str, Any] = {
    "apiVersion": "networking.istio.io/v1",
    "kind": "VirtualService",
    "metadata": {
        "name": "checkout",
        "namespace": "shop",
        "labels": {"app": "checkout"},
        "annotations": {"a": "b"},
    },
    "spec": {
        "hosts": ["checkout", "shop.example.com"],
        "gateways": ["mesh", "istio-system/public"],
        "http": [
            {
                "name": "primary",
                "match": [{"uri": {"prefix": "/"}}],
                "retries": {"attempts": 3, "perTryTimeout": "2s"},
                "route": [
                    {"destination": {"host": "checkout", "subset": "stable", "port": {"number": 8080}}}
                ],
            },
        ],
    },
}


def _seed(env: RunningEmulator, obj: dict[str, Any] | None = None) -> None:
    env.emulator.seed(R, "shop", "checkout", obj or SEED)


def _stored(env: RunningEmulator) -> dict[str, Any]:
    return env.emulator.stored(R, "shop", "checkout")


def _without_version(obj: dict[str, Any]) -> dict[str, Any]:
    return as_written(obj)


def test_weights_and_mirror_exact_objects(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = IstioRouter(client, SUBSETS)
    assert router.read() == RouteState(0, 0)
    assert router.set_weight(20) == RouteState(20, 0)
    assert router.set_mirror(10) == RouteState(20, 10)
    got = _stored(env)
    expected = copy.deepcopy(SEED)
    expected["spec"]["http"][0]["route"] = [
        {"destination": {"host": "checkout", "subset": "stable", "port": {"number": 8080}}, "weight": 80},
        {"destination": {"host": "checkout", "subset": "canary", "port": {"number": 8080}}, "weight": 20},
    ]
    expected["spec"]["http"][0]["mirror"] = {"host": "checkout", "subset": "canary", "port": {"number": 8080}}
    expected["spec"]["http"][0]["mirrorPercentage"] = {"value": 10.0}
    expected["metadata"]["annotations"][LEDGER_ANNOTATION] = json.dumps(
        {"kind": "VirtualService", "routes": {"0": {"canaryAdded": True, "stableWeight": None}}},
        sort_keys=True,
        separators=(",", ":"),
    )
    assert _without_version(got) == expected
    validate_crd(got)
    assert router.read() == RouteState(20, 10)


@pytest.mark.parametrize("weight", [0, 100])
def test_extreme_weights_are_valid(env: RunningEmulator, client: kube.KubeClient, weight: int) -> None:
    _seed(env)
    router = IstioRouter(client, SUBSETS)
    router.set_weight(50)  # touched first: from an untouched route, 0 % writes nothing
    assert router.set_weight(weight) == RouteState(weight, 0)
    route = _stored(env)["spec"]["http"][0]["route"]
    assert sum(d["weight"] for d in route) == 100
    validate_crd(_stored(env))


def test_other_routes_untouched_and_remove_restores(env: RunningEmulator, client: kube.KubeClient) -> None:
    seed = copy.deepcopy(SEED)
    seed["spec"]["http"].insert(0, HEALTH)
    _seed(env, seed)
    router = IstioRouter(
        client, VirtualServiceTarget("shop", "checkout", SUBSETS.stable, SUBSETS.canary, route="primary")
    )
    router.set_weight(50)
    router.set_mirror(100)
    got = _stored(env)
    assert json.dumps(got["spec"]["http"][0]) == json.dumps(HEALTH)
    assert got["spec"]["http"][1]["retries"] == SEED["spec"]["http"][0]["retries"]
    assert got["metadata"]["labels"] == SEED["metadata"]["labels"]
    validate_crd(got)
    for _, patch in env.emulator.patches:
        assert set(patch) <= {"metadata", "spec"} and set(patch.get("spec", {})) <= {"http"}
        assert set(patch["metadata"]) <= {"resourceVersion", "annotations"}
    router.remove()
    assert _without_version(_stored(env)) == seed
    assert router.read() == RouteState(0, 0)


def test_separate_canary_service_keeps_the_host_form(env: RunningEmulator, client: kube.KubeClient) -> None:
    seed = copy.deepcopy(SEED)
    seed["spec"]["http"][0]["route"] = [
        {"destination": {"host": "checkout.shop.svc.cluster.local"}, "weight": 100}
    ]
    _seed(env, seed)
    router = IstioRouter(client, HOSTS)
    assert router.read() == RouteState(0, 0)
    router.set_weight(30)
    router.set_mirror(20)
    http = _stored(env)["spec"]["http"][0]
    assert http["route"] == [
        {"destination": {"host": "checkout.shop.svc.cluster.local"}, "weight": 70},
        {"destination": {"host": "checkout-canary.shop.svc.cluster.local"}, "weight": 30},
    ]
    assert http["mirror"] == {"host": "checkout-canary.shop.svc.cluster.local"}
    validate_crd(_stored(env))
    router.remove()
    assert _without_version(_stored(env)) == seed


def test_conflict_retried(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    env.emulator.interfere(R, "shop", "checkout", lambda o: o["spec"]["hosts"].append("new.example.com"))
    router = IstioRouter(client, SUBSETS)
    with pytest.raises(RouterUnavailable, match="409"):
        router.set_weight(5)  # one attempt per call
    assert retry_call(lambda: router.set_weight(5), policy=FAST) == RouteState(5, 0)
    assert env.emulator.conflicts == 1
    got = _stored(env)
    assert "new.example.com" in got["spec"]["hosts"]
    assert [d["weight"] for d in got["spec"]["http"][0]["route"]] == [95, 5]


def test_refuses_routes_it_cannot_manage_safely(env: RunningEmulator, client: kube.KubeClient) -> None:
    seed = copy.deepcopy(SEED)
    seed["spec"]["http"][0]["route"].append({"destination": {"host": "legacy"}, "weight": 0})
    _seed(env, seed)
    router = IstioRouter(client, SUBSETS)
    with pytest.raises(RouterMisconfigured, match="add up to 100"):
        router.set_weight(10)
    seed = copy.deepcopy(SEED)
    seed["spec"]["http"][0]["mirror"] = {"host": "recorder"}
    _seed(env, seed)
    with pytest.raises(RouterMisconfigured, match="already mirrors to 'recorder'"):
        router.set_mirror(10)
    assert _without_version(_stored(env)) == seed


def test_the_seeds_are_valid() -> None:
    validate_crd(SEED)
    with_health = copy.deepcopy(SEED)
    with_health["spec"]["http"].insert(0, HEALTH)
    validate_crd(with_health)
