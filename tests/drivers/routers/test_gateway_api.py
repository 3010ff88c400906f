"""Gateway API router against kmock's KubernetesEmulator with the official client: the exact objects
written, only gate-owned fields changed, conflicts retried, every object valid against the HTTPRoute CRD."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from gate.drivers import kube
from gate.drivers.routers import RouterMisconfigured, RouterUnavailable, RouteState
from gate.drivers.routers.gateway_api import (
    BackendRef,
    GatewayApiRouter,
    HttpRouteTarget,
    check_mirror_filters,
)
from gate.drivers.routers.kubecommon import LEDGER_ANNOTATION
from gate.errors import RetryPolicy, retry_call
from tests.drivers.routers.crds import validate_crd
from tests.drivers.routers.kubeemu import RunningEmulator
from tests.support.kube import as_written

R = "gateway.networking.k8s.io/v1/httproutes"
FAST = RetryPolicy(attempts=4, total=10, initial=0.001, maximum=0.01)
TARGET = HttpRouteTarget("shop", "checkout", BackendRef("checkout"), BackendRef("checkout-canary"))

ADMIN_RULE = {
    "matches": [{"path": {"type": "PathPrefix", "value": "/admin"}}],
    "filters": [
        {
            "type": "RequestHeaderModifier",
            "requestHeaderModifier": {"set": [{"name": "X-Admin", "value": "1"}]},
        }
    ],
    "backendRefs": [{"name": "admin", "port": 80}],
}
SEED: dict[str, Any] = {
    "apiVersion": "gateway.networking.k8s.io/v1",
    "kind": "HTTPRoute",
    "metadata": {
        "name": "checkout",
        "namespace": "shop",
        "labels": {"app": "checkout", "team": "payments"},
        "annotations": {"owner": "payments@example.com"},
    },
    "spec": {
        "parentRefs": [{"name": "public", "namespace": "gateways"}],
        "hostnames": ["shop.example.com"],
        "rules": [
            ADMIN_RULE,
            {
                "matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                "filters": [
                    {
                        "type": "ResponseHeaderModifier",
                        "responseHeaderModifier": {"add": [{"name": "X-Shop", "value": "yes"}]},
                    }
                ],
                "backendRefs": [{"name": "checkout", "port": 8080}],
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


def _ledger(obj: dict[str, Any]) -> dict[str, Any]:
    return json.loads(obj["metadata"]["annotations"][LEDGER_ANNOTATION])


def _assert_valid(obj: dict[str, Any]) -> None:
    validate_crd(obj)
    assert check_mirror_filters(obj) == []


def test_set_weight_writes_exactly_the_weights(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = GatewayApiRouter(client, TARGET)
    assert router.set_weight(20) == RouteState(20, 0)
    got = _stored(env)
    expected = copy.deepcopy(SEED)
    expected["spec"]["rules"][1]["backendRefs"] = [
        {"name": "checkout", "port": 8080, "weight": 80},
        {"name": "checkout-canary", "port": 8080, "weight": 20},
    ]
    expected["metadata"]["annotations"][LEDGER_ANNOTATION] = got["metadata"]["annotations"][LEDGER_ANNOTATION]
    assert _without_version(got) == expected
    assert _ledger(got) == {
        "kind": "HTTPRoute",
        "rules": {"1": {"stableWeight": None, "canaryAdded": True, "filtersAbsent": False}},
    }
    _assert_valid(got)
    assert router.read() == RouteState(20, 0)


def test_set_mirror_adds_one_request_mirror_filter(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = GatewayApiRouter(client, TARGET)
    router.set_weight(5)
    assert router.set_mirror(50) == RouteState(5, 50)
    rule = _stored(env)["spec"]["rules"][1]
    assert rule["filters"] == [
        SEED["spec"]["rules"][1]["filters"][0],
        {
            "type": "RequestMirror",
            "requestMirror": {"backendRef": {"name": "checkout-canary", "port": 8080}, "percent": 50},
        },
    ]
    _assert_valid(_stored(env))
    assert router.set_mirror(100) == RouteState(5, 100)
    assert len(_stored(env)["spec"]["rules"][1]["filters"]) == 2  # replaced, not added twice
    assert router.set_mirror(0) == RouteState(5, 0)
    assert _stored(env)["spec"]["rules"][1]["filters"] == SEED["spec"]["rules"][1]["filters"]
    assert router.read() == RouteState(5, 0)


@pytest.mark.parametrize("weight", [0, 1, 50, 99, 100])
def test_every_weight_gives_a_valid_route(env: RunningEmulator, client: kube.KubeClient, weight: int) -> None:
    _seed(env)
    router = GatewayApiRouter(client, TARGET)
    assert router.set_weight(weight).canary_weight == weight
    assert router.set_mirror(weight).mirror_percent == weight
    _assert_valid(_stored(env))


def test_only_gate_owned_fields_change(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = GatewayApiRouter(client, TARGET)
    router.set_weight(20)
    router.set_mirror(10)
    router.set_weight(50)
    got = _stored(env)
    # Unrelated rule, parentRefs, hostnames, labels, other annotations: byte-identical.
    assert json.dumps(got["spec"]["rules"][0]) == json.dumps(SEED["spec"]["rules"][0])
    for key in ("parentRefs", "hostnames"):
        assert json.dumps(got["spec"][key]) == json.dumps(SEED["spec"][key])
    assert got["metadata"]["labels"] == SEED["metadata"]["labels"]
    assert {k: v for k, v in got["metadata"]["annotations"].items() if k != LEDGER_ANNOTATION} == SEED[
        "metadata"
    ]["annotations"]
    # In the managed rule: matches and the user's filter unchanged.
    managed = got["spec"]["rules"][1]
    assert managed["matches"] == SEED["spec"]["rules"][1]["matches"]
    assert managed["filters"][0] == SEED["spec"]["rules"][1]["filters"][0]
    # Every patch sent was conditional on the version read, and named nothing outside spec.rules
    # and gate's own annotation.
    assert env.emulator.patches
    for _, patch in env.emulator.patches:
        assert set(patch) <= {"metadata", "spec"}
        assert set(patch["metadata"]) <= {"resourceVersion", "annotations"}
        assert patch["metadata"]["resourceVersion"]
        assert set(patch["metadata"].get("annotations", {})) <= {LEDGER_ANNOTATION}
        assert set(patch.get("spec", {})) <= {"rules"}


def test_remove_restores_the_route_as_it_was(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = GatewayApiRouter(client, TARGET)
    router.set_weight(30)
    router.set_mirror(25)
    router.remove()
    assert _without_version(_stored(env)) == SEED
    assert router.read() == RouteState(0, 0)
    router.remove()  # idempotent: nothing of gate's is left to remove
    assert _without_version(_stored(env)) == SEED


def test_remove_keeps_a_users_canary_backend_at_weight_zero(
    env: RunningEmulator, client: kube.KubeClient
) -> None:
    seed = copy.deepcopy(SEED)
    seed["spec"]["rules"][1]["backendRefs"] = [
        {"name": "checkout", "port": 8080, "weight": 90},
        {"name": "checkout-canary", "port": 8080, "weight": 10},
    ]
    del seed["metadata"]["annotations"]
    _seed(env, seed)
    router = GatewayApiRouter(client, TARGET)
    assert router.read() == RouteState(10, 0)
    router.set_weight(40)
    router.remove()
    got = _without_version(_stored(env))
    assert got["spec"]["rules"][1]["backendRefs"] == [
        {"name": "checkout", "port": 8080, "weight": 90},
        {"name": "checkout-canary", "port": 8080, "weight": 0},
    ]
    assert "annotations" not in got["metadata"]  # gate created the map for its record, and removed it
    assert router.read() == RouteState(0, 0)


def test_conflict_is_retried_on_the_new_version(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    router = GatewayApiRouter(client, TARGET)
    router.set_weight(10)

    def someone_else(obj: dict[str, Any]) -> None:
        obj["metadata"]["annotations"]["deployed-by"] = "ci"
        obj["spec"]["rules"][0]["backendRefs"][0]["port"] = 81

    env.emulator.interfere(R, "shop", "checkout", someone_else)
    # One attempt per call: the conflict is temporary and the one retry policy reads again.
    with pytest.raises(RouterUnavailable, match="409 Conflict") as info:
        router.set_weight(40)
    assert not info.value.permanent
    assert retry_call(lambda: router.set_weight(40), policy=FAST) == RouteState(40, 0)
    assert env.emulator.conflicts == 1
    got = _stored(env)
    # Both writes survive: the other writer's and gate's.
    assert got["metadata"]["annotations"]["deployed-by"] == "ci"
    assert got["spec"]["rules"][0]["backendRefs"][0]["port"] == 81
    assert [b["weight"] for b in got["spec"]["rules"][1]["backendRefs"]] == [60, 40]


def test_answers_409_twice_then_succeeds(env: RunningEmulator, client: kube.KubeClient) -> None:
    _seed(env)
    env.emulator.reject_patches(2)
    router = GatewayApiRouter(client, TARGET)
    assert retry_call(lambda: router.set_weight(20), policy=FAST) == RouteState(20, 0)
    assert env.emulator.conflicts == 2
    patches = [r for r in env.emulator if str(r.method).endswith("PATCH")]
    assert len(patches) == 3


def test_endless_conflicts_give_up_with_a_temporary_error(
    env: RunningEmulator, client: kube.KubeClient
) -> None:
    _seed(env)
    env.emulator.reject_patches(100)
    router = GatewayApiRouter(client, TARGET)
    with pytest.raises(RouterUnavailable, match="409 Conflict") as info:
        retry_call(lambda: router.set_weight(20), policy=FAST)
    assert isinstance(info.value.__cause__, kube.KubeConflictError)
    assert env.emulator.conflicts == FAST.attempts
    assert _without_version(_stored(env)) == SEED  # nothing half-applied


def test_missing_route_or_backend_is_a_clear_error(env: RunningEmulator, client: kube.KubeClient) -> None:
    router = GatewayApiRouter(client, TARGET)
    with pytest.raises(
        RouterMisconfigured, match=r"HTTPRoute shop/checkout.*404.*create HTTPRoute shop/checkout"
    ):
        router.set_weight(10)
    seed = copy.deepcopy(SEED)
    seed["spec"]["rules"] = [ADMIN_RULE]
    _seed(env, seed)
    with pytest.raises(RouterMisconfigured, match="no backendRef to the stable backend 'checkout'"):
        router.set_weight(10)
    assert _without_version(_stored(env)) == seed


def test_a_named_rule_limits_what_gate_manages(env: RunningEmulator, client: kube.KubeClient) -> None:
    seed = copy.deepcopy(SEED)
    api = {
        "name": "api",
        "matches": [{"path": {"type": "PathPrefix", "value": "/api"}}],
        "backendRefs": [{"name": "checkout", "port": 8080}],
    }
    seed["spec"]["rules"].append(api)
    _seed(env, seed)
    router = GatewayApiRouter(
        client,
        HttpRouteTarget(
            "shop", "checkout", BackendRef("checkout"), BackendRef("checkout-canary"), rule="api"
        ),
    )
    router.set_weight(25)
    got = _stored(env)
    assert got["spec"]["rules"][1] == seed["spec"]["rules"][1]
    assert [b["weight"] for b in got["spec"]["rules"][2]["backendRefs"]] == [75, 25]
    _assert_valid(got)


def test_cel_rule_percent_or_fraction_is_checked() -> None:
    route = copy.deepcopy(SEED)
    route["spec"]["rules"][1]["filters"].append(
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": "x", "port": 1},
                "percent": 5,
                "fraction": {"numerator": 1},
            },
        }
    )
    assert check_mirror_filters(route) == [
        "spec.rules[1].filters[1]: only one of percent or fraction may be specified"
    ]


def test_schema_check_catches_a_field_the_crd_does_not_have() -> None:
    route = copy.deepcopy(SEED)
    route["spec"]["rules"][1]["backendRefs"][0]["wieght"] = 5
    with pytest.raises(AssertionError, match="wieght"):
        validate_crd(route)


def test_the_seed_is_a_valid_route() -> None:
    _assert_valid(SEED)


def test_a_rule_added_mid_rollout_is_recorded_and_restored(
    env: RunningEmulator, client: kube.KubeClient
) -> None:
    _seed(env)
    router = GatewayApiRouter(client, TARGET)
    router.set_weight(20)
    late = {
        "matches": [{"path": {"type": "PathPrefix", "value": "/v2"}}],
        "backendRefs": [{"name": "checkout", "port": 8080}],
    }
    env.emulator.interfere(R, "shop", "checkout", lambda o: o["spec"]["rules"].append(copy.deepcopy(late)))
    retry_call(lambda: router.set_weight(40), policy=FAST)
    got = _stored(env)
    assert [b["weight"] for b in got["spec"]["rules"][2]["backendRefs"]] == [60, 40]
    assert set(_ledger(got)["rules"]) == {"1", "2"}
    router.remove()
    expected = copy.deepcopy(SEED)
    expected["spec"]["rules"].append(late)
    assert _without_version(_stored(env)) == expected
