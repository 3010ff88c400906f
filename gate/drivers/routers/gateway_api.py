"""Gateway API router: canary weight as HTTPRoute `backendRefs` weights, shadow traffic as a
`RequestMirror` filter (gateway.networking.k8s.io/v1).

Gate edits a route the user owns. In each rule that sends traffic to the stable Service (or the one
rule the contract names) gate owns exactly: the stable backendRef's `weight`, the canary backendRef
(added next to the stable one when absent, with the stable one's group/kind/namespace/port), and one
`RequestMirror` filter whose backendRef is the canary. The original values are kept in the
`perfgate.dev/router-original` annotation; `remove()` puts them back. Other rules, matches, filters,
annotations and labels are never written (the merge patch carries only what changed).

The functions below are pure (object in, object out); `GatewayApiRouter` reads and writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gate.drivers import kube
from gate.drivers.routers import weights
from gate.drivers.routers.base import RouterMisconfigured, RouteState
from gate.drivers.routers.kubecommon import (
    JSON,
    ObjectRouter,
    drop_ledger,
    read_ledger,
    write_ledger,
)

MAX_FILTERS = 16  # the CRD's maxItems for rules[].filters
MAX_BACKENDS = 16  # the CRD's maxItems for rules[].backendRefs


@dataclass(frozen=True)
class BackendRef:
    """A Service (or other backend) an HTTPRoute sends to; `port` is required for Services."""

    name: str
    port: int | None = None
    namespace: str | None = None
    group: str = ""
    kind: str = "Service"

    def matches(self, ref: JSON, route_namespace: str) -> bool:
        return (
            ref.get("name") == self.name
            and (ref.get("group") or "") == self.group
            and (ref.get("kind") or "Service") == self.kind
            and (ref.get("namespace") or route_namespace) == (self.namespace or route_namespace)
            and (self.port is None or ref.get("port") == self.port)
        )


@dataclass(frozen=True)
class HttpRouteTarget:
    """Which HTTPRoute, which backends, and optionally which rule (by `name` or index) gate manages."""

    namespace: str
    name: str
    stable: BackendRef
    canary: BackendRef
    rule: str | int | None = None

    @property
    def ref(self) -> kube.ObjectRef:
        return kube.ObjectRef(kube.HTTPROUTE, self.namespace, self.name)


def managed_rules(route: JSON, target: HttpRouteTarget) -> list[int]:
    """Indices of the rules gate manages: those whose backendRefs include the stable backend."""
    rules = route.get("spec", {}).get("rules") or []
    found = []
    for i, rule in enumerate(rules):
        if isinstance(target.rule, int) and not isinstance(target.rule, bool) and i != target.rule:
            continue
        if isinstance(target.rule, str) and rule.get("name") != target.rule:
            continue
        if any(target.stable.matches(b, target.namespace) for b in rule.get("backendRefs") or []):
            found.append(i)
    if not found:
        which = f" rule {target.rule!r}" if target.rule is not None else " any rule"
        raise RouterMisconfigured(
            f"HTTPRoute {target.namespace}/{target.name}: no backendRef to the stable backend "
            f"{target.stable.name!r} in{which}; point the contract at the rule that serves the stable Service"
        )
    return found


def _is_gate_mirror(f: JSON, target: HttpRouteTarget) -> bool:
    mirror = f.get("requestMirror") or {}
    return f.get("type") == "RequestMirror" and target.canary.matches(
        mirror.get("backendRef") or {}, target.namespace
    )


def _ensure_ledger(route: JSON, target: HttpRouteTarget, rules: list[JSON], indices: list[int]) -> JSON:
    ledger = read_ledger(route)
    originals: dict[str, Any] = dict((ledger or {}).get("rules") or {})
    missing = [i for i in indices if str(i) not in originals]
    if ledger is not None and not missing:
        return ledger
    # First touch, or a rule that started serving the stable backend since: record its originals.
    for i in missing:
        rule = rules[i]
        stable = next(b for b in rule["backendRefs"] if target.stable.matches(b, target.namespace))
        originals[str(i)] = {
            "stableWeight": stable.get("weight"),
            "canaryAdded": not any(target.canary.matches(b, target.namespace) for b in rule["backendRefs"]),
            "filtersAbsent": "filters" not in rule,
        }
    ledger = {**(ledger or {"kind": "HTTPRoute"}), "rules": originals}
    write_ledger(route, ledger)
    return ledger


def apply(
    route: JSON, target: HttpRouteTarget, *, weight: int | None = None, mirror: int | None = None
) -> JSON:
    """Set the canary weight and/or the mirror share in every managed rule (mutates and returns `route`)."""
    if weight is not None:
        weights.check_percent(weight)
    if mirror is not None:
        weights.check_percent(mirror, "mirror percentage")
    indices = managed_rules(route, target)
    rules: list[JSON] = route["spec"]["rules"]
    ledger = _ensure_ledger(route, target, rules, indices)
    for i in indices:
        rule = rules[i]
        refs: list[JSON] = rule["backendRefs"]
        if weight is not None:
            stable_w, canary_w = weights.split(weight)
            stable_at = next(k for k, b in enumerate(refs) if target.stable.matches(b, target.namespace))
            refs[stable_at]["weight"] = stable_w
            canaries = [b for b in refs if target.canary.matches(b, target.namespace)]
            if canaries:
                for b in canaries:
                    b["weight"] = canary_w
            else:
                if len(refs) >= MAX_BACKENDS:
                    raise RouterMisconfigured(
                        f"HTTPRoute {target.name} rule {i}: no room for the canary backendRef"
                    )
                refs.insert(stable_at + 1, _canary_ref(refs[stable_at], target, canary_w))
        if mirror is not None:
            filters: list[JSON] = [f for f in rule.get("filters") or [] if not _is_gate_mirror(f, target)]
            if mirror > 0:
                if len(filters) >= MAX_FILTERS:
                    raise RouterMisconfigured(
                        f"HTTPRoute {target.name} rule {i}: no room for a mirror filter"
                    )
                stable = next(b for b in rule["backendRefs"] if target.stable.matches(b, target.namespace))
                filters.append(mirror_filter(target, mirror, stable_port=stable.get("port")))
            if filters:
                rule["filters"] = filters
            elif "filters" in rule:
                # Back to how the user wrote it: no `filters` key if there was none.
                absent = (ledger.get("rules") or {}).get(str(i), {}).get("filtersAbsent")
                if absent:
                    del rule["filters"]
                else:
                    rule["filters"] = filters
    return route


def _canary_ref(stable: JSON, target: HttpRouteTarget, weight: int) -> JSON:
    ref = {k: v for k, v in stable.items() if k in ("group", "kind", "namespace", "port")}
    ref["name"] = target.canary.name
    if target.canary.port is not None:
        ref["port"] = target.canary.port
    if target.canary.namespace is not None:
        ref["namespace"] = target.canary.namespace
    ref["weight"] = weight
    return ref


def mirror_filter(target: HttpRouteTarget, percent: int, stable_port: int | None = None) -> JSON:
    """gate's RequestMirror filter: a copy of `percent` % of the rule's requests to the canary (on the
    canary's port, else the stable backend's: a Service reference needs one)."""
    backend: JSON = {"name": target.canary.name}
    if target.canary.group:
        backend["group"] = target.canary.group
    if target.canary.kind != "Service":
        backend["kind"] = target.canary.kind
    if target.canary.namespace:
        backend["namespace"] = target.canary.namespace
    if target.canary.port is not None:
        backend["port"] = target.canary.port
    elif stable_port is not None:
        backend["port"] = stable_port
    elif target.stable.port is not None:
        backend["port"] = target.stable.port
    return {"type": "RequestMirror", "requestMirror": {"backendRef": backend, "percent": percent}}


def restore(route: JSON, target: HttpRouteTarget) -> JSON:
    """Undo gate's changes using its record: stable weight as it was, the canary backendRef gone (or
    at weight 0 when the user had declared it), gate's mirror filter gone, the record removed."""
    ledger = read_ledger(route)
    if ledger is None:
        return route
    rules: list[JSON] = route.get("spec", {}).get("rules") or []
    for key, original in (ledger.get("rules") or {}).items():
        i = int(key)
        if i >= len(rules):
            continue
        rule = rules[i]
        refs: list[JSON] = rule.get("backendRefs") or []
        for b in refs:
            if target.stable.matches(b, target.namespace):
                if original.get("stableWeight") is None:
                    b.pop("weight", None)
                else:
                    b["weight"] = original["stableWeight"]
        if original.get("canaryAdded"):
            rule["backendRefs"] = [b for b in refs if not target.canary.matches(b, target.namespace)]
        else:
            for b in refs:
                if target.canary.matches(b, target.namespace):
                    b["weight"] = 0
        if "filters" in rule:
            filters = [f for f in rule["filters"] or [] if not _is_gate_mirror(f, target)]
            if filters or not original.get("filtersAbsent"):
                rule["filters"] = filters
            else:
                del rule["filters"]
    drop_ledger(route, ledger)
    return route


def state(route: JSON, target: HttpRouteTarget) -> RouteState:
    """What the route says now. With several managed rules, the largest canary share is reported
    (the rollback question is "does any request still reach the canary?")."""
    rules: list[JSON] = route.get("spec", {}).get("rules") or []
    weight = mirror = 0
    for i in managed_rules(route, target):
        refs = rules[i].get("backendRefs") or []
        # A backendRef without `weight` weighs 1 (the API's default).
        stable_w = sum(int(b.get("weight", 1)) for b in refs if target.stable.matches(b, target.namespace))
        canary_w = sum(int(b.get("weight", 1)) for b in refs if target.canary.matches(b, target.namespace))
        weight = max(weight, weights.effective_percent(stable_w, canary_w))
        for f in rules[i].get("filters") or []:
            if _is_gate_mirror(f, target):
                mirror = max(mirror, _mirror_percent(f["requestMirror"]))
    return RouteState(canary_weight=weight, mirror_percent=mirror)


def _mirror_percent(spec: JSON) -> int:
    if "percent" in spec:
        return int(spec["percent"])
    if "fraction" in spec:
        fraction = spec["fraction"]
        return round(100 * int(fraction["numerator"]) / int(fraction.get("denominator", 100)))
    return 100  # neither field: everything is mirrored


def check_mirror_filters(route: JSON) -> list[str]:
    """The CEL rule of RequestMirror that JSON Schema cannot express: percent or fraction, not both.
    Returns the problems found (empty when none); used by tests on every object gate writes."""
    problems = []
    for i, rule in enumerate(route.get("spec", {}).get("rules") or []):
        for j, f in enumerate(rule.get("filters") or []):
            spec = f.get("requestMirror")
            if spec is not None and "percent" in spec and "fraction" in spec:
                problems.append(
                    f"spec.rules[{i}].filters[{j}]: only one of percent or fraction may be specified"
                )
    return problems


class GatewayApiRouter(ObjectRouter):
    """Moves traffic by editing the weights and mirror filter of a user's HTTPRoute."""

    def __init__(self, client: kube.KubeClient, target: HttpRouteTarget) -> None:
        self.client = client
        self.target: HttpRouteTarget = target

    def describe(self) -> str:
        t = self.target
        return f"HTTPRoute {t.namespace}/{t.name}: {t.stable.name} -> {t.canary.name}"

    def _apply(self, obj: JSON, *, weight: int | None = None, mirror: int | None = None) -> JSON:
        return apply(obj, self.target, weight=weight, mirror=mirror)

    def _restore(self, obj: JSON) -> JSON:
        return restore(obj, self.target)

    def _state(self, obj: JSON) -> RouteState:
        return state(obj, self.target)
