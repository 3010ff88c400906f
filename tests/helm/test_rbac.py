"""The chart's RBAC equals what gate's code calls: no verb more, no verb less (tests/helm/kubecalls.py)."""

from __future__ import annotations

import ast
import json
from typing import Any

import pytest

from tests.helm import kubecalls
from tests.helm.conftest import CHART, Render, by_kind
from tests.helm.kubecalls import Triple

# What the operator itself needs (kopf and gate.operator): not in gate/drivers, so listed here. These
# are the rows of the chart's `operator` block; the operator's own tests own their exactness.
OPERATOR: set[Triple] = {
    ("perfgate.dev", "performancegates", "get"),
    ("perfgate.dev", "performancegates", "list"),
    ("perfgate.dev", "performancegates", "watch"),
    ("perfgate.dev", "performancegates", "patch"),
    ("perfgate.dev", "performancegates/status", "get"),
    ("perfgate.dev", "performancegates/status", "patch"),
    ("perfgate.dev", "performancecontracts", "get"),
    ("perfgate.dev", "performancecontracts", "list"),
    ("perfgate.dev", "performancecontracts", "watch"),
    ("", "configmaps", "get"),
    ("apps", "deployments", "get"),
    ("apps", "deployments", "list"),
    ("apps", "deployments", "watch"),
    ("", "events", "create"),
}
CLUSTER: set[Triple] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "get"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
}
CLUSTERWIDE: set[Triple] = {
    ("", "namespaces", "get"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}


def _schema_enum(key: str) -> list[str]:
    schema = json.loads((CHART / "values.schema.json").read_text())
    return list(schema["properties"]["rbac"]["properties"][key]["items"]["enum"])


def _gate_rules(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [r for d in by_kind(docs, kind) if d["metadata"]["name"].endswith("-gates") for r in d["rules"]]


def test_every_kubernetes_router_has_a_block_and_no_block_lacks_a_router() -> None:
    code = {k: v for k, v in kubecalls.router_triples().items() if v | kubecalls.preflight_triples(k)}
    assert set(code) == set(_schema_enum("routers"))
    assert kubecalls.router_triples()["nginx"] == set()  # the local router touches no API


def test_every_chaos_action_has_a_block() -> None:
    assert set(kubecalls.chaos_triples()) == set(_schema_enum("chaos"))


def _router(router: str) -> set[Triple]:
    """What a router needs: its code's calls and what preflight reads for it."""
    return kubecalls.router_triples()[router] | kubecalls.preflight_triples(router)


@pytest.mark.parametrize("router", sorted(_schema_enum("routers")))
def test_preflight_declares_every_call_of_the_router(router: str) -> None:
    assert kubecalls.router_triples()[router] <= kubecalls.preflight_triples(router)


def test_preflight_declares_the_promotion_hand_over() -> None:
    added = kubecalls.preflight_triples("gateway-api", "copy") - kubecalls.preflight_triples("gateway-api")
    assert added == kubecalls.promotion_triples()


@pytest.mark.parametrize("router", sorted(_schema_enum("routers")))
def test_role_of_one_router_is_exactly_its_calls(render: Render, router: str) -> None:
    docs = render(sets=[f"rbac.routers={{{router}}}"])
    granted = kubecalls.rules_triples(_gate_rules(docs, "ClusterRole"))
    assert granted - OPERATOR == _router(router) - OPERATOR
    # ...and it needs every one of them (none hidden by the operator's own rows).
    assert _router(router) <= granted


def test_role_of_the_promotion_hand_over_is_exactly_its_calls(render: Render) -> None:
    docs = render(sets=["rbac.routers=null", "rbac.promotion=true"])
    granted = kubecalls.rules_triples(_gate_rules(docs, "ClusterRole"))
    assert granted - OPERATOR == kubecalls.promotion_triples() - OPERATOR
    assert kubecalls.promotion_triples() <= granted


@pytest.mark.parametrize("action", sorted(kubecalls.CHAOS_ACTIONS))
def test_role_of_one_chaos_action_is_exactly_its_calls(render: Render, action: str) -> None:
    docs = render(sets=["rbac.routers=null", f"rbac.chaos={{{action}}}"])
    granted = kubecalls.rules_triples(_gate_rules(docs, "ClusterRole"))
    assert granted - OPERATOR == kubecalls.chaos_triples()[action] - OPERATOR
    assert kubecalls.chaos_triples()[action] <= granted


def test_role_of_load_at_scale_is_exactly_its_calls(render: Render) -> None:
    docs = render(sets=["rbac.routers=null", "loadJobs.enabled=true"])
    granted = kubecalls.rules_triples(_gate_rules(docs, "ClusterRole"))
    load = kubecalls.load_triples()
    assert ("batch", "jobs", "create") in load and ("", "pods/log", "get") in load
    assert granted - OPERATOR == load - OPERATOR
    assert load <= granted


def test_load_at_scale_grants_nothing_unless_enabled(render: Render) -> None:
    granted = kubecalls.rules_triples(_gate_rules(render(), "ClusterRole"))
    assert not any(resource in ("jobs", "pods/log") for _, resource, _ in granted)
    env = {
        e["name"]
        for d in by_kind(render(), "Deployment")
        for c in d["spec"]["template"]["spec"]["containers"]
        for e in c.get("env", [])
    }
    assert "GATE_LOAD_IMAGE" not in env  # without an image the operator never creates Jobs


def test_everything_chosen_is_the_union_and_nothing_more(render: Render) -> None:
    routers, actions = _schema_enum("routers"), sorted(kubecalls.CHAOS_ACTIONS)
    docs = render(
        sets=[
            f"rbac.routers={{{','.join(routers)}}}",
            f"rbac.chaos={{{','.join(actions)}}}",
            "loadJobs.enabled=true",
        ]
    )
    expected = set(OPERATOR) | kubecalls.load_triples()
    for r in routers:
        expected |= _router(r)
    for a in actions:
        expected |= kubecalls.chaos_triples()[a]
    assert kubecalls.rules_triples(_gate_rules(docs, "ClusterRole")) == expected
    cluster = [
        r
        for d in by_kind(docs, "ClusterRole")
        if d["metadata"]["name"].endswith("-cluster")
        for r in d["rules"]
    ]
    assert kubecalls.rules_triples(cluster) == CLUSTER | CLUSTERWIDE


def test_namespaced_install_grants_nothing_cluster_wide_but_discovery(render: Render) -> None:
    docs = render(sets=["watchNamespaces={shop,web}", "rbac.routers={istio}"])
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["shop", "web"]
    for role in roles:
        assert kubecalls.rules_triples(role["rules"]) == OPERATOR | _router("istio")
    assert [d["metadata"]["name"] for d in by_kind(docs, "ClusterRole")] == ["rel-gate-cluster"]
    assert kubecalls.rules_triples(by_kind(docs, "ClusterRole")[0]["rules"]) == CLUSTER
    bindings = by_kind(docs, "RoleBinding")
    assert {b["roleRef"]["name"] for b in bindings} == {"rel-gate-gates"}
    assert all(b["subjects"][0]["namespace"] == "gate" for b in bindings)


def test_peering_only_with_several_replicas(render: Render) -> None:
    one_replica = kubecalls.rules_triples(_gate_rules(render(), "ClusterRole"))
    assert not any(g == "kopf.dev" for g, _, _ in one_replica)
    several = render(sets=["operator.replicas=2", "store.type=postgres", "store.postgres.secretName=pg"])
    assert ("kopf.dev", "clusterkopfpeerings", "patch") in kubecalls.rules_triples(
        _gate_rules(several, "ClusterRole")
    )


def test_dashboard_may_review_tokens_only_when_enabled(render: Render) -> None:
    def cluster(docs: list[dict[str, Any]]) -> set[Triple]:
        return kubecalls.rules_triples(r for d in by_kind(docs, "ClusterRole") for r in d["rules"])

    review = {
        ("authentication.k8s.io", "tokenreviews", "create"),
        ("authorization.k8s.io", "subjectaccessreviews", "create"),
    }
    assert not review & cluster(render())
    assert not review & cluster(render(sets=["dashboard.enabled=true"]))
    assert review <= cluster(render(sets=["dashboard.enabled=true", "dashboard.kubeAuth=true"]))


def test_no_wildcards_and_no_secrets(render: Render) -> None:
    docs = render(
        sets=["rbac.routers={gateway-api,istio,ingress-nginx,deployment}", "dashboard.enabled=true"]
    )
    for d in by_kind(docs, "ClusterRole") + by_kind(docs, "Role"):
        for rule in d["rules"]:
            assert "*" not in rule["verbs"] + rule["resources"] + rule["apiGroups"], rule
            assert "secrets" not in rule["resources"], rule


def test_only_the_kube_driver_and_chaos_workers_reach_the_api() -> None:
    """The analysis sees every call: nothing under gate/drivers but kube.py uses the client directly,
    and only the chaos modules the analysis reads import chaosk8s."""
    chaos_modules = {where for kind, where in kubecalls.CHAOS_ACTIONS.values() if kind == "module"}
    for path in kubecalls.gate_drivers_files():
        tree = ast.parse(path.read_text())
        module = ".".join(path.with_suffix("").parts[path.parts.index("gate") :])
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                if name.startswith("kubernetes"):
                    assert module == "gate.drivers.kube", f"{module} imports {name}"
                if name.startswith("chaosk8s"):
                    assert module in chaos_modules, (
                        f"{module} calls chaosk8s: add it to kubecalls.CHAOS_ACTIONS"
                    )
