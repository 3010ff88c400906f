"""A rollout end to end on the driver side (issue 10, "Done when"): the contract's router against the
emulator, a stand-in gateway splitting real requests by the HTTPRoute's weights and mirroring by its
filter. After each outcome the route equals the one the user wrote apart from the intended weights,
no request is mirrored any more, and the stable Deployment runs the expected version."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from gate.drivers import kube
from gate.drivers.routers import RouterUnavailable, router_for
from gate.errors import RetryPolicy, retry_call
from tests.drivers.routers import test_gateway_api as gw
from tests.kube import test_promotion as tp
from tests.support.gateway import stand_in
from tests.support.kube import RunningKube, as_written, field_diff

NAMES = ["checkout", "checkout-canary", "admin"]
POLICY = RetryPolicy(attempts=8, total=30, initial=0.05, maximum=1.0)


@pytest.fixture
def client(kube_api: RunningKube) -> kube.KubeClient:
    kube_api.seed(gw.R, "shop", "checkout", gw.SEED)
    kube_api.seed(tp.D, "shop", "checkout", tp.STABLE)
    kube_api.seed(tp.D, "shop", "checkout-canary", tp.CANARY)
    kube_api.complete_rollout("shop", "checkout")
    return kube.connect(host=kube_api.url, timeout=2)


def _image(kube_api: RunningKube) -> str:
    return str(
        kube_api.stored(tp.D, "shop", "checkout")["spec"]["template"]["spec"]["containers"][0]["image"]
    )


def _ladder_with_traffic(router: Any, gateway: Any, backends: Any) -> None:
    router.set_mirror(100)
    answered = gateway.send(40, post=True)
    assert answered == {"checkout": 40}
    assert backends["checkout-canary"].count("shadow") == 40  # every production request copied
    for weight in (20, 50, 100):
        router.set_weight(weight)
        backends["checkout-canary"].clear()
        answered = gateway.send(100)
        assert answered.get("checkout-canary", 0) == weight  # exact shares: smooth weighted round robin


@pytest.mark.parametrize("mode", ["route-only", "copy", "external"])
def test_a_good_canary_is_promoted_and_leaves_the_route_clean(
    kube_api: RunningKube, client: kube.KubeClient, mode: str
) -> None:
    router = router_for(tp.contract(mode), kube_client=client)
    with stand_in(kube_api, "shop", "checkout", NAMES) as (gateway, backends):
        _ladder_with_traffic(router, gateway, backends)
        finish = router.finish("promoted")
        if mode == "external":  # the GitOps tool promotes the stable Deployment
            client.patch(
                kube.ObjectRef(kube.DEPLOYMENT, "shop", "checkout"),
                {
                    "spec": {
                        "template": {"spec": {"containers": [{"name": "app", "image": "shop/checkout:1.1"}]}}
                    }
                },
            )
        if mode != "route-only":
            assert not finish.done
            kube_api.complete_rollout("shop", "checkout")  # the Deployment controller
            finish = router.finish("promoted")
        assert finish.done
        for backend in backends.values():
            backend.clear()
        answered = gateway.send(50, post=True)
        assert backends["checkout-canary"].count("shadow") == 0  # no request runs twice
        route = as_written(kube_api.stored(gw.R, "shop", "checkout"))
        if mode == "route-only":
            assert answered == {"checkout-canary": 50}
            assert [d[0] for d in field_diff(gw.SEED, route)] == ["spec.rules[1].backendRefs"]
            assert _image(kube_api) == "shop/checkout:1.0"  # promoting the stable Deployment is the user's
        else:
            assert answered == {"checkout": 50}
            assert field_diff(gw.SEED, route) == []
            assert _image(kube_api) == "shop/checkout:1.1"  # the stable Deployment runs the canary's version
        assert "perfgate.dev/router-original" not in route["metadata"].get("annotations", {})


def test_a_regressed_canary_is_rolled_back_to_the_route_as_written(
    kube_api: RunningKube, client: kube.KubeClient
) -> None:
    router = router_for(tp.contract("copy"), kube_client=client)
    with stand_in(kube_api, "shop", "checkout", NAMES) as (gateway, backends):
        router.set_mirror(100)
        router.set_weight(20)
        assert gateway.send(50).get("checkout-canary") == 10
        assert router.finish("rolled_back").done
        for backend in backends.values():
            backend.clear()
        assert gateway.send(50) == {"checkout": 50}
        assert backends["checkout-canary"].count("shadow") == 0
    assert field_diff(gw.SEED, as_written(kube_api.stored(gw.R, "shop", "checkout"))) == []
    assert _image(kube_api) == "shop/checkout:1.0"
    assert kube_api.stored(tp.D, "shop", "checkout-canary")["spec"]["replicas"] == 1


def test_a_weight_during_a_frozen_api_server_lands_once_it_thaws(
    kube_api: RunningKube, client: kube.KubeClient
) -> None:
    router = router_for(tp.contract("route-only"), kube_client=client)
    with stand_in(kube_api, "shop", "checkout", NAMES) as (gateway, _):
        router.set_weight(20)
        kube_api.freeze(3)
        started = time.monotonic()
        outcome: dict[str, Any] = {}

        def move() -> None:
            outcome["state"] = retry_call(lambda: router.set_weight(50), policy=POLICY)

        mover = threading.Thread(target=move)
        mover.start()
        mover.join(30)
        assert outcome["state"].canary_weight == 50
        assert time.monotonic() - started >= 2.5  # it waited for the thaw, it did not pretend
        assert gateway.send(100).get("checkout-canary") == 50


def test_a_permanent_error_fails_in_one_attempt(kube_api: RunningKube, client: kube.KubeClient) -> None:
    router = router_for(tp.contract("route-only"), kube_client=client)
    kube_api.emulator.fail(404, verb="get", resource="httproutes", times=100)
    before = len(kube_api.emulator.calls_of("get", "httproutes"))
    with pytest.raises(Exception) as info:
        retry_call(lambda: router.set_weight(20), policy=POLICY)
    assert getattr(info.value, "permanent", False)
    assert not isinstance(info.value, RouterUnavailable)
    assert len(kube_api.emulator.calls_of("get", "httproutes")) - before == 1
