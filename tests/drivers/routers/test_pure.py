"""Pure parts of the routers and the kube driver: merge patches, object edits, nginx configs."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gate.drivers import kube
from gate.drivers.routers import RouterMisconfigured, RouteState, gateway_api, istio
from gate.drivers.routers.kubecommon import LEDGER_ANNOTATION, read_ledger
from gate.drivers.routers.nginx import NginxRouteConfig, Upstream, parse_state, render
from tests.drivers.routers import test_gateway_api, test_istio


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386, written from the RFC's pseudo-code, independent of the code under test."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply_merge_patch(out.get(key), value)
    return out


scalars = st.one_of(st.booleans(), st.integers(-3, 3), st.text(max_size=3))
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner, max_size=3),
    max_leaves=12,
)
objects = st.dictionaries(st.text(max_size=2), values, max_size=4)


@settings(max_examples=100, deadline=None)
@given(objects, objects)
def test_merge_patch_turns_before_into_after(before: dict[str, Any], after: dict[str, Any]) -> None:
    patch = kube.merge_patch(before, after)
    assert kube.same_json(apply_merge_patch(before, patch), after)
    assert kube.merge_patch(after, after) == {}


def test_merge_patch_sends_only_changes() -> None:
    before = {
        "metadata": {"labels": {"a": "1"}, "annotations": {"x": "y"}},
        "spec": {"replicas": 1, "paused": True},
    }
    after = copy.deepcopy(before)
    after["spec"]["replicas"] = 3
    del after["metadata"]["annotations"]["x"]
    assert kube.merge_patch(before, after) == {
        "metadata": {"annotations": {"x": None}},
        "spec": {"replicas": 3},
    }
    assert kube.merge_patch({"w": 1}, {"w": True}) == {"w": True}  # JSON types, not Python equality


def test_gateway_edits_are_idempotent_and_reversible() -> None:
    seed = test_gateway_api.SEED
    target = test_gateway_api.TARGET
    once = gateway_api.apply(copy.deepcopy(seed), target, weight=30, mirror=40)
    twice = gateway_api.apply(copy.deepcopy(once), target, weight=30, mirror=40)
    assert once == twice
    assert gateway_api.state(once, target) == RouteState(30, 40)
    assert read_ledger(once) is not None
    assert gateway_api.restore(copy.deepcopy(once), target) == seed
    assert gateway_api.restore(copy.deepcopy(seed), target) == seed


def test_gateway_mirror_fraction_is_read() -> None:
    route = copy.deepcopy(test_gateway_api.SEED)
    route["spec"]["rules"][1]["filters"].append(
        {
            "type": "RequestMirror",
            "requestMirror": {
                "backendRef": {"name": "checkout-canary", "port": 8080},
                "fraction": {"numerator": 1, "denominator": 3},
            },
        }
    )
    assert gateway_api.state(route, test_gateway_api.TARGET) == RouteState(0, 33)


def test_istio_edits_are_idempotent_and_reversible() -> None:
    seed = test_istio.SEED
    target = test_istio.SUBSETS
    once = istio.apply(copy.deepcopy(seed), target, weight=100, mirror=5)
    assert istio.apply(copy.deepcopy(once), target, weight=100, mirror=5) == once
    assert istio.state(once, target) == RouteState(100, 5)
    assert istio.restore(copy.deepcopy(once), target) == seed


def test_a_foreign_ledger_annotation_is_refused() -> None:
    route = copy.deepcopy(test_gateway_api.SEED)
    route["metadata"]["annotations"][LEDGER_ANNOTATION] = "not json"
    with pytest.raises(RouterMisconfigured, match="not valid JSON"):
        gateway_api.apply(route, test_gateway_api.TARGET, weight=10)


def _cfg() -> NginxRouteConfig:
    return NginxRouteConfig(18080, Upstream("127.0.0.1", 18081), Upstream("127.0.0.1", 18082))


def test_nginx_config_for_each_weight() -> None:
    assert "server 127.0.0.1:18082" not in render(_cfg(), 0, 0).split("upstream gate_canary")[0]
    assert "server 127.0.0.1:18081" not in render(_cfg(), 100, 0).split("upstream gate_canary")[0]
    conf = render(_cfg(), 20, 0)
    assert "server 127.0.0.1:18081 weight=80" in conf and "server 127.0.0.1:18082 weight=20" in conf
    assert "mirror /_gate_mirror" not in conf and "location = /_gate_mirror" not in conf
    full = render(_cfg(), 20, 100)
    assert "mirror /_gate_mirror;" in full and "split_clients" not in full
    assert "proxy_set_header X-Traffic-Source shadow;" in full
    part = render(_cfg(), 20, 30)
    assert "split_clients" in part and "30% on;" in part
    for w, m in ((0, 0), (20, 30), (100, 100)):
        assert parse_state(render(_cfg(), w, m)) == RouteState(w, m)
    assert parse_state("events {}\n") is None
    assert parse_state('# gate-router-state: {"canary_weight": 300, "mirror_percent": 0}') is None


def test_nginx_state_line_is_json() -> None:
    first = render(_cfg(), 7, 9).splitlines()[0]
    assert json.loads(first.split(": ", 1)[1]) == {"canary_weight": 7, "mirror_percent": 9}


def test_bundled_crds_are_the_upstream_files() -> None:
    from tests.drivers.routers import crds

    for name in crds.FILES.values():
        shared, bundled = crds.SHARED / name, crds.BUNDLED / name
        assert bundled.exists(), f"{bundled} is missing: copy it from the upstream release (see NOTICE.md)"
        if shared.exists():
            assert bundled.read_bytes() == shared.read_bytes()
