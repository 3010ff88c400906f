"""Istio router: canary weight as VirtualService `http[].route[].weight`, shadow traffic as the
route's `mirror` + `mirrorPercentage` (networking.istio.io/v1).

Gate edits a VirtualService the user owns. In each HTTP route that sends traffic to the stable
destination (or the one route the contract names) gate owns exactly: the stable destination's
`weight`, the canary destination (added after the stable one when absent), and the route's `mirror`
and `mirrorPercentage` while they point at the canary. Istio requires a route's weights to add up
to 100, so a managed route may hold only the stable and canary destinations. A route that already
mirrors elsewhere is refused rather than overwritten. Original values are kept in the
`perfgate.dev/router-original` annotation; `remove()` puts them back.

Envoy marks mirrored requests by appending `-shadow` to the Host/Authority header; that (not a
header gate could add) is how a service tells shadow requests apart behind Istio.
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


@dataclass(frozen=True)
class Destination:
    """An Istio destination: a host, optionally a subset (from a DestinationRule) and a port."""

    host: str
    subset: str | None = None
    port: int | None = None

    def matches(self, dest: JSON) -> bool:
        return (
            same_host(str(dest.get("host") or ""), self.host)
            and dest.get("subset") == self.subset
            and (self.port is None or (dest.get("port") or {}).get("number") == self.port)
        )

    def like(self, stable: Destination, written: JSON) -> JSON:
        """This destination written the way the route writes `stable` (short or qualified host, port)."""
        out = self.to_json()
        host = str(written.get("host") or "")
        if host.startswith(stable.host + ".") and not self.host.count("."):
            out["host"] = (
                self.host + host[len(stable.host) :]
            )  # checkout.shop.svc -> checkout-canary.shop.svc
        if self.port is None and "port" in written:
            out["port"] = dict(written["port"])
        return out

    def to_json(self) -> JSON:
        out: JSON = {"host": self.host}
        if self.subset is not None:
            out["subset"] = self.subset
        if self.port is not None:
            out["port"] = {"number": self.port}
        return out


@dataclass(frozen=True)
class VirtualServiceTarget:
    """Which VirtualService, which destinations, and optionally which HTTP route (`name` or index)."""

    namespace: str
    name: str
    stable: Destination
    canary: Destination
    route: str | int | None = None

    @property
    def ref(self) -> kube.ObjectRef:
        return kube.ObjectRef(kube.VIRTUALSERVICE, self.namespace, self.name)


def same_host(written: str, host: str) -> bool:
    """`checkout` names the same Service as `checkout.shop`, `checkout.shop.svc` and
    `checkout.shop.svc.cluster.local` (Istio resolves short names in the route's namespace)."""
    if written == host:
        return True
    if "." in host:
        return False
    return written.startswith(host + ".") and written.count(".") in (1, 2, 4)


def _where(target: VirtualServiceTarget) -> str:
    return f"VirtualService {target.namespace}/{target.name}"


def managed_routes(vs: JSON, target: VirtualServiceTarget) -> list[int]:
    """Indices of the HTTP routes gate manages: those with a destination equal to the stable one."""
    found = []
    for i, http in enumerate(vs.get("spec", {}).get("http") or []):
        if isinstance(target.route, int) and not isinstance(target.route, bool) and i != target.route:
            continue
        if isinstance(target.route, str) and http.get("name") != target.route:
            continue
        if any(target.stable.matches(d.get("destination") or {}) for d in http.get("route") or []):
            found.append(i)
    if not found:
        which = f" route {target.route!r}" if target.route is not None else " any HTTP route"
        raise RouterMisconfigured(
            f"{_where(target)}: no destination {target.stable.to_json()} in{which}; "
            "point the contract at the route that serves the stable version"
        )
    return found


def _check_route(http: JSON, i: int, target: VirtualServiceTarget) -> None:
    for d in http.get("route") or []:
        dest = d.get("destination") or {}
        if not (target.stable.matches(dest) or target.canary.matches(dest)):
            raise RouterMisconfigured(
                f"{_where(target)} http[{i}] also routes to {dest.get('host')!r}: Istio needs the weights "
                "of a route to add up to 100, so gate manages only routes holding the stable and canary "
                "destinations; move the other destination to its own route"
            )
    mirror = http.get("mirror")
    if mirror is not None and not target.canary.matches(mirror):
        raise RouterMisconfigured(
            f"{_where(target)} http[{i}] already mirrors to {mirror.get('host')!r}; gate will not replace it"
        )
    if http.get("mirrors"):
        raise RouterMisconfigured(
            f"{_where(target)} http[{i}] uses `mirrors`; gate will not mix it with `mirror`"
        )


def _ensure_ledger(vs: JSON, target: VirtualServiceTarget, routes: list[JSON], indices: list[int]) -> None:
    ledger = read_ledger(vs)
    originals: dict[str, Any] = dict((ledger or {}).get("routes") or {})
    missing = [i for i in indices if str(i) not in originals]
    if ledger is not None and not missing:
        return
    # First touch, or a route that started serving the stable destination since: record it.
    for i in missing:
        entries = routes[i].get("route") or []
        stable = next(d for d in entries if target.stable.matches(d.get("destination") or {}))
        originals[str(i)] = {
            "stableWeight": stable.get("weight"),
            "canaryAdded": not any(target.canary.matches(d.get("destination") or {}) for d in entries),
        }
    write_ledger(vs, {**(ledger or {"kind": "VirtualService"}), "routes": originals})


def apply(
    vs: JSON, target: VirtualServiceTarget, *, weight: int | None = None, mirror: int | None = None
) -> JSON:
    """Set the canary weight and/or the mirror share in every managed route (mutates and returns `vs`)."""
    if weight is not None:
        weights.check_percent(weight)
    if mirror is not None:
        weights.check_percent(mirror, "mirror percentage")
    indices = managed_routes(vs, target)
    routes: list[JSON] = vs["spec"]["http"]
    for i in indices:
        _check_route(routes[i], i, target)
    _ensure_ledger(vs, target, routes, indices)
    for i in indices:
        http = routes[i]
        entries: list[JSON] = http["route"]
        if weight is not None:
            stable_w, canary_w = weights.split(weight)
            at = next(k for k, d in enumerate(entries) if target.stable.matches(d.get("destination") or {}))
            entries[at]["weight"] = stable_w
            canaries = [d for d in entries if target.canary.matches(d.get("destination") or {})]
            for d in canaries:
                d["weight"] = canary_w
            if not canaries:
                written = entries[at]["destination"]
                entries.insert(
                    at + 1, {"destination": target.canary.like(target.stable, written), "weight": canary_w}
                )
        if mirror is not None:
            if mirror > 0:
                stable_dest = next(
                    d["destination"] for d in entries if target.stable.matches(d.get("destination") or {})
                )
                http["mirror"] = target.canary.like(target.stable, stable_dest)
                http["mirrorPercentage"] = {"value": float(mirror)}
            else:
                http.pop("mirror", None)
                http.pop("mirrorPercentage", None)
    return vs


def restore(vs: JSON, target: VirtualServiceTarget) -> JSON:
    """Undo gate's changes: stable weight as it was, the canary destination gone (or at weight 0 when
    the user had declared it), gate's mirror gone, the record removed."""
    ledger = read_ledger(vs)
    if ledger is None:
        return vs
    routes: list[JSON] = vs.get("spec", {}).get("http") or []
    for key, original in (ledger.get("routes") or {}).items():
        i = int(key)
        if i >= len(routes):
            continue
        http = routes[i]
        entries: list[JSON] = http.get("route") or []
        for d in entries:
            if target.stable.matches(d.get("destination") or {}):
                if original.get("stableWeight") is None:
                    d.pop("weight", None)
                else:
                    d["weight"] = original["stableWeight"]
        if original.get("canaryAdded"):
            http["route"] = [d for d in entries if not target.canary.matches(d.get("destination") or {})]
        else:
            for d in entries:
                if target.canary.matches(d.get("destination") or {}):
                    d["weight"] = 0
        if http.get("mirror") is not None and target.canary.matches(http["mirror"]):
            http.pop("mirror", None)
            http.pop("mirrorPercentage", None)
    drop_ledger(vs, ledger)
    return vs


def state(vs: JSON, target: VirtualServiceTarget) -> RouteState:
    """What the VirtualService says now (the largest canary share over the managed routes)."""
    routes: list[JSON] = vs.get("spec", {}).get("http") or []
    weight = mirror = 0
    for i in managed_routes(vs, target):
        entries = routes[i].get("route") or []
        # A lone destination without `weight` takes 100 %; otherwise a missing weight is 0.
        default = 100 if len(entries) == 1 else 0
        stable_w = sum(
            int(d.get("weight", default)) for d in entries if target.stable.matches(d["destination"])
        )
        canary_w = sum(
            int(d.get("weight", default)) for d in entries if target.canary.matches(d["destination"])
        )
        weight = max(weight, weights.effective_percent(stable_w, canary_w))
        m = routes[i].get("mirror")
        if m is not None and target.canary.matches(m):
            value = (routes[i].get("mirrorPercentage") or {}).get("value", 100.0)
            mirror = max(mirror, round(float(value)))
    return RouteState(canary_weight=weight, mirror_percent=mirror)


class IstioRouter(ObjectRouter):
    """Moves traffic by editing the weights and mirror of a user's VirtualService."""

    def __init__(self, client: kube.KubeClient, target: VirtualServiceTarget) -> None:
        self.client = client
        self.target: VirtualServiceTarget = target

    def describe(self) -> str:
        t = self.target
        stable, canary = (
            f"{t.stable.host}/{t.stable.subset or '-'}",
            f"{t.canary.host}/{t.canary.subset or '-'}",
        )
        return f"{_where(t)}: {stable} -> {canary}"

    def _apply(self, obj: JSON, *, weight: int | None = None, mirror: int | None = None) -> JSON:
        return apply(obj, self.target, weight=weight, mirror=mirror)

    def _restore(self, obj: JSON) -> JSON:
        return restore(obj, self.target)

    def _state(self, obj: JSON) -> RouteState:
        return state(obj, self.target)
