"""ingress-nginx router: canary weight through a canary Ingress with the controller's canary
annotations (`nginx.ingress.kubernetes.io/canary: "true"`, `canary-weight: "N"`).

The canary Ingress (default name `<stable ingress>-canary`) is gate's own when gate created it
(label `app.kubernetes.io/managed-by: perfgate`): it copies the host/path rules of the stable Ingress
that lead to the stable Service, pointed at the canary Service, plus the two canary annotations; the
stable Ingress is never written. `remove()` deletes it. When the user keeps a canary Ingress of their
own, gate owns only its `canary-weight` annotation (original kept in `perfgate.dev/router-original`).

Mirroring is not supported: ingress-nginx's `mirror-target` annotation belongs on the stable
Ingress (which gate does not write), copies every request (no percentage), and cannot mark the
copies, so the canary could not tell shadow from production traffic. `set_mirror(0)` is accepted as
"no mirror"; any other share raises NotSupported.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

from gate.drivers import kube
from gate.drivers.routers import weights
from gate.drivers.routers.base import Finish, NotSupported, Outcome, RouterMisconfigured, RouteState
from gate.drivers.routers.kubecommon import (
    JSON,
    MANAGED_BY_GATE,
    MANAGED_BY_LABEL,
    api_errors,
    drop_ledger,
    read_ledger,
    untouched_and_already,
    write_ledger,
)

CANARY = "nginx.ingress.kubernetes.io/canary"
CANARY_WEIGHT = "nginx.ingress.kubernetes.io/canary-weight"
CANARY_WEIGHT_TOTAL = "nginx.ingress.kubernetes.io/canary-weight-total"


@dataclass(frozen=True)
class IngressTarget:
    """The stable Ingress and Services; the canary Ingress gate creates or finds."""

    namespace: str
    ingress: str
    stable_service: str
    canary_service: str
    canary_port: int | None = None
    canary_ingress: str | None = None

    @property
    def canary_name(self) -> str:
        return self.canary_ingress or f"{self.ingress}-canary"

    @property
    def stable_ref(self) -> kube.ObjectRef:
        return kube.ObjectRef(kube.INGRESS, self.namespace, self.ingress)

    @property
    def canary_ref(self) -> kube.ObjectRef:
        return kube.ObjectRef(kube.INGRESS, self.namespace, self.canary_name)


def _backend_to_canary(backend: JSON, target: IngressTarget) -> JSON | None:
    service = backend.get("service") or {}
    if service.get("name") != target.stable_service:
        return None
    out = copy.deepcopy(backend)
    out["service"]["name"] = target.canary_service
    if target.canary_port is not None:
        out["service"]["port"] = {"number": target.canary_port}
    return out


def canary_ingress(stable: JSON, target: IngressTarget, weight: int) -> JSON:
    """The canary Ingress gate creates: the stable Ingress's rules for the stable Service, sent to the
    canary Service, with the canary annotations. Pure."""
    weights.check_percent(weight)
    spec = stable.get("spec") or {}
    rules = []
    for rule in spec.get("rules") or []:
        paths = []
        for path in (rule.get("http") or {}).get("paths") or []:
            backend = _backend_to_canary(path.get("backend") or {}, target)
            if backend is not None:
                paths.append({**copy.deepcopy(path), "backend": backend})
        if paths:
            rules.append({**{k: v for k, v in rule.items() if k != "http"}, "http": {"paths": paths}})
    out_spec: JSON = {}
    if "ingressClassName" in spec:
        out_spec["ingressClassName"] = spec["ingressClassName"]
    default = _backend_to_canary(spec.get("defaultBackend") or {}, target)
    if default is not None:
        out_spec["defaultBackend"] = default
    if rules:
        out_spec["rules"] = rules
    if "tls" in spec:
        out_spec["tls"] = copy.deepcopy(spec["tls"])
    if not rules and default is None:
        raise RouterMisconfigured(
            f"Ingress {target.namespace}/{target.ingress} sends nothing to Service "
            f"{target.stable_service!r}; name the Ingress and Service that serve the stable version "
            "in the contract"
        )
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "Ingress",
        "metadata": {
            "name": target.canary_name,
            "namespace": target.namespace,
            "labels": {MANAGED_BY_LABEL: MANAGED_BY_GATE},
            "annotations": {CANARY: "true", CANARY_WEIGHT: str(weight)},
        },
        "spec": out_spec,
    }


def is_gates(ingress: JSON) -> bool:
    return (ingress.get("metadata", {}).get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY_GATE


def with_weight(ingress: JSON, target: IngressTarget, weight: int) -> JSON:
    """Set the canary-weight annotation (mutates and returns `ingress`); records the user's original."""
    weights.check_percent(weight)
    annotations = ingress.get("metadata", {}).get("annotations") or {}
    if annotations.get(CANARY) != "true":
        raise RouterMisconfigured(
            f"Ingress {target.namespace}/{target.canary_name} exists but is not a canary Ingress "
            f'({CANARY} is not "true"); rename it or set canaryIngress in the contract'
        )
    if not is_gates(ingress) and read_ledger(ingress) is None:
        write_ledger(ingress, {"kind": "Ingress", "canaryWeight": annotations.get(CANARY_WEIGHT)})
    ingress["metadata"]["annotations"][CANARY_WEIGHT] = str(weight)
    return ingress


def restore(ingress: JSON) -> JSON:
    """On a user's canary Ingress: back to weight 0 (or no weight annotation, if it had none)."""
    ledger = read_ledger(ingress)
    if ledger is None:
        return ingress
    annotations = ingress["metadata"]["annotations"]
    if ledger.get("canaryWeight") is None:
        annotations.pop(CANARY_WEIGHT, None)
    else:
        annotations[CANARY_WEIGHT] = "0"
    drop_ledger(ingress, ledger)
    return ingress


def state(ingress: JSON | None) -> RouteState:
    """The canary Ingress's share (0 when it is absent or not a canary); mirroring is never on."""
    if ingress is None:
        return RouteState(0, 0)
    annotations = ingress.get("metadata", {}).get("annotations") or {}
    if annotations.get(CANARY) != "true":
        return RouteState(0, 0)
    try:
        weight = int(annotations.get(CANARY_WEIGHT) or 0)
        total = int(annotations.get(CANARY_WEIGHT_TOTAL) or 100)
    except ValueError as exc:
        raise RouterMisconfigured(f"canary Ingress has a non-numeric weight annotation: {exc}") from exc
    if total <= 0:
        return RouteState(0, 0)
    return RouteState(weights.effective_percent(max(total - weight, 0), min(weight, total)), 0)


class IngressNginxRouter:
    """Moves traffic with an ingress-nginx canary Ingress (weights only, no mirror)."""

    def __init__(self, client: kube.KubeClient, target: IngressTarget) -> None:
        self.client = client
        self.target = target

    def describe(self) -> str:
        t = self.target
        return (
            f"Ingress {t.namespace}/{t.canary_name} (canary of {t.ingress}): "
            f"{t.stable_service} -> {t.canary_service}"
        )

    def _canary(self) -> JSON | None:
        try:
            return self.client.read(self.target.canary_ref)
        except kube.KubeNotFoundError:
            return None

    def set_weight(self, canary_percent: int) -> RouteState:
        weights.check_percent(canary_percent)
        with api_errors(self.describe()):
            current = self._canary()
            if current is None and canary_percent == 0:
                return RouteState(0, 0)  # no canary Ingress is 0 %: nothing to create
            if current is None:
                stable = self.client.read(self.target.stable_ref)
                body = canary_ingress(stable, self.target, canary_percent)
                try:
                    created = self.client.create(self.target.canary_ref, body)
                    return state(created)
                except kube.KubeAlreadyExistsError:
                    pass  # created meanwhile (another gate replica, a retry): set its weight below
            obj = self.client.modify(self.target.canary_ref, lambda i: self._weighted(i, canary_percent))
        return state(obj)

    def _weighted(self, ingress: JSON, weight: int) -> JSON | None:
        if not is_gates(ingress) and untouched_and_already(
            ingress, state(ingress), weight=weight, mirror=None
        ):
            return None
        return with_weight(ingress, self.target, weight)

    def set_mirror(self, percent: int) -> RouteState:
        weights.check_percent(percent, "mirror percentage")
        if percent != 0:
            raise NotSupported(
                "ingress-nginx cannot mirror a share of requests marked as shadow (its mirror-target "
                "annotation copies all requests, unmarked, from the stable Ingress); use the nginx, "
                "gateway-api or istio router for shadow traffic, or drop the mirror step"
            )
        return self.read()

    def read(self) -> RouteState:
        with api_errors(self.describe()):
            return state(self._canary())

    def finish(self, outcome: Outcome) -> Finish:
        """rolled_back: as `remove()`. promoted: the canary Ingress at 100 % (kept: deleting it would
        send traffic back to stable), gate's record gone from a user's canary Ingress."""
        if outcome == "rolled_back":
            self.remove()
            return Finish(True, self.read())

        def promote(ingress: JSON) -> JSON | None:
            out = self._weighted(ingress, 100)
            if out is None:
                return None
            ledger = read_ledger(out)
            if ledger is not None:
                drop_ledger(out, ledger)
            return out

        with api_errors(self.describe()):
            if self._canary() is None:
                self.set_weight(100)
            obj = self.client.modify(self.target.canary_ref, promote)
        return Finish(True, state(obj))

    def remove(self) -> None:
        with api_errors(self.describe()):
            current = self._canary()
            if current is None:
                return
            if is_gates(current):
                with contextlib.suppress(kube.KubeNotFoundError):  # already gone: the goal of remove()
                    self.client.delete(self.target.canary_ref)
            else:
                self.client.modify(self.target.canary_ref, restore)
