"""Deployment router against kmock's KubernetesEmulator with the official client: replica ratio,
scale-up before scale-down, only spec.replicas (and gate's record) written, no mirror, remove."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from gate.drivers import kube
from gate.drivers.routers import NotSupported, RouteState
from gate.drivers.routers.deployment import DeploymentRouter, DeploymentTarget
from gate.drivers.routers.kubecommon import LEDGER_ANNOTATION
from gate.errors import RetryPolicy, retry_call
from tests.drivers.routers.crds import validate_core
from tests.drivers.routers.kubeemu import RunningEmulator
from tests.support.kube import as_written

R = "apps/v1/deployments"


def deployment(name: str, track: str, replicas: int) -> dict[str, Any]:
    labels = {"app": "checkout", "track": track}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": name,
            "namespace": "shop",
            "labels": labels,
            "annotations": {"team": "payments"},
        },
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "containers": [
                        {"name": "app", "image": f"shop/checkout:{track}", "ports": [{"containerPort": 8080}]}
                    ]
                },
            },
        },
    }


STABLE = deployment("checkout", "stable", 4)
CANARY = deployment("checkout-canary", "canary", 0)
TARGET = DeploymentTarget("shop", "checkout", "checkout-canary")


def _seed(env: RunningEmulator) -> None:
    env.emulator.seed(R, "shop", "checkout", STABLE)
    env.emulator.seed(R, "shop", "checkout-canary", CANARY)


def _replicas(env: RunningEmulator) -> tuple[int, int]:
    s = env.emulator.stored(R, "shop", "checkout")["spec"]["replicas"]
    c = env.emulator.stored(R, "shop", "checkout-canary")["spec"]["replicas"]
    return s, c


def _bare(obj: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(obj)
    out = as_written(out)
    return out


def test_replica_ratio(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = DeploymentRouter(client, TARGET)
    assert router.read() == RouteState(0, 0)
    assert router.set_weight(20) == RouteState(25, 0)  # 1 of 4 pods: the effective share
    assert _replicas(env) == (3, 1)
    assert router.set_weight(50) == RouteState(50, 0)
    assert _replicas(env) == (2, 2)
    assert router.set_weight(100) == RouteState(100, 0)
    assert _replicas(env) == (0, 4)
    for name in ("checkout", "checkout-canary"):
        validate_core(env.emulator.stored(R, "shop", name))
    # Only spec.replicas and gate's record on the canary were ever written.
    for name, patch in env.emulator.patches:
        assert set(patch) <= {"metadata", "spec"} and set(patch.get("spec", {})) <= {"replicas"}
        assert set(patch["metadata"]) <= {"resourceVersion", "annotations"}
        assert set(patch["metadata"].get("annotations", {})) <= {LEDGER_ANNOTATION}
        if name == "checkout":
            assert "annotations" not in patch["metadata"]


def test_grows_before_it_shrinks(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = DeploymentRouter(client, TARGET)
    router.set_weight(50)
    assert [name for name, _ in env.emulator.patches] == ["checkout-canary", "checkout"]
    env.emulator.patches.clear()
    router.set_weight(0)
    assert [name for name, _ in env.emulator.patches] == ["checkout", "checkout-canary"]
    assert _replicas(env) == (4, 0)


def test_remove_restores_both(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = DeploymentRouter(client, TARGET)
    router.set_weight(75)
    router.remove()
    assert _bare(env.emulator.stored(R, "shop", "checkout")) == STABLE
    assert _bare(env.emulator.stored(R, "shop", "checkout-canary")) == CANARY
    assert router.read() == RouteState(0, 0)


def test_explicit_total(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = DeploymentRouter(client, DeploymentTarget("shop", "checkout", "checkout-canary", total=10))
    assert router.set_weight(5) == RouteState(10, 0)
    assert _replicas(env) == (9, 1)
    validate_core(env.emulator.stored(R, "shop", "checkout"))


def test_no_mirror(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = DeploymentRouter(client, TARGET)
    with pytest.raises(NotSupported, match="plain Deployments cannot mirror"):
        router.set_mirror(10)
    assert router.set_mirror(0) == RouteState(0, 0)


def test_conflict_retried(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    env.emulator.interfere(R, "shop", "checkout", lambda d: d["metadata"]["labels"].update(release="42"))
    router = DeploymentRouter(client, TARGET)
    retry_call(
        lambda: router.set_weight(50), policy=RetryPolicy(attempts=4, total=10, initial=0.001, maximum=0.01)
    )
    assert env.emulator.conflicts == 1
    assert _replicas(env) == (2, 2)
    assert env.emulator.stored(R, "shop", "checkout")["metadata"]["labels"]["release"] == "42"


def test_the_seeds_are_valid() -> None:
    validate_core(STABLE)
    validate_core(CANARY)
