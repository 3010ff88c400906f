"""Deployment router: the canary's share as a replica ratio between the stable and the canary
Deployment behind one Service (no proxy, so no mirror and only coarse steps).

Gate owns `spec.replicas` of both Deployments while a rollout runs, and one annotation on the
canary Deployment recording the original replica counts. The total is the contract's, or the sum of
the two counts gate first found. Scaling goes up before down (the canary grows before the stable
shrinks, and the reverse on the way back), so capacity never dips. `remove()` gives the stable
Deployment its original count back and scales the canary to 0.

Do not let a HorizontalPodAutoscaler manage these Deployments during a rollout: it would fight gate.
"""

from __future__ import annotations

from dataclasses import dataclass

from gate.drivers import kube
from gate.drivers.routers import weights
from gate.drivers.routers.base import Finish, NotSupported, Outcome, RouterMisconfigured, RouteState
from gate.drivers.routers.kubecommon import JSON, api_errors, drop_ledger, read_ledger, write_ledger


@dataclass(frozen=True)
class DeploymentTarget:
    """The two Deployments and, optionally, the total replica count to share between them."""

    namespace: str
    stable: str
    canary: str
    total: int | None = None

    @property
    def stable_ref(self) -> kube.ObjectRef:
        return kube.ObjectRef(kube.DEPLOYMENT, self.namespace, self.stable)

    @property
    def canary_ref(self) -> kube.ObjectRef:
        return kube.ObjectRef(kube.DEPLOYMENT, self.namespace, self.canary)


def replicas_of(deployment: JSON) -> int:
    """spec.replicas, which defaults to 1 when absent."""
    value = deployment.get("spec", {}).get("replicas", 1)
    return int(value) if value is not None else 1


def scaled(deployment: JSON, count: int) -> JSON:
    """The Deployment with `spec.replicas` set (mutates and returns it)."""
    deployment.setdefault("spec", {})["replicas"] = count
    return deployment


def state(stable: JSON, canary: JSON) -> RouteState:
    """The canary's share of desired replicas; never a mirror."""
    return RouteState(weights.effective_percent(replicas_of(stable), replicas_of(canary)), 0)


class DeploymentRouter:
    """Moves traffic by scaling two Deployments behind one Service."""

    def __init__(self, client: kube.KubeClient, target: DeploymentTarget) -> None:
        self.client = client
        self.target = target

    def describe(self) -> str:
        t = self.target
        return f"Deployments {t.namespace}/{t.stable} and {t.canary} (replica ratio)"

    def _ledger(self) -> tuple[JSON, bool]:
        """The original replica counts: from gate's annotation, or read now (first touch)."""
        canary = self.client.read(self.target.canary_ref)
        ledger = read_ledger(canary)
        if ledger is not None:
            return ledger, False
        stable = self.client.read(self.target.stable_ref)
        return {
            "kind": "Deployment",
            "stableReplicas": replicas_of(stable),
            "canaryReplicas": replicas_of(canary),
        }, True

    def total(self, ledger: JSON) -> int:
        total = self.target.total or int(ledger["stableReplicas"]) + int(ledger["canaryReplicas"])
        if total < 1:
            raise RouterMisconfigured(
                f"{self.describe()}: both Deployments have 0 replicas; set the total in the contract"
            )
        return total

    def _scale(self, stable_count: int, canary_count: int, ledger: JSON, record: bool) -> RouteState:
        def canary_change(d: JSON) -> JSON:
            if record and read_ledger(d) is None:
                write_ledger(d, ledger)
            return scaled(d, canary_count)

        current = replicas_of(self.client.read(self.target.canary_ref))
        if canary_count >= current:  # grow the canary first, then shrink the stable
            canary = self.client.modify(self.target.canary_ref, canary_change)
            stable = self.client.modify(self.target.stable_ref, lambda d: scaled(d, stable_count))
        else:  # grow the stable first, then shrink the canary
            stable = self.client.modify(self.target.stable_ref, lambda d: scaled(d, stable_count))
            canary = self.client.modify(self.target.canary_ref, canary_change)
        return state(stable, canary)

    def set_weight(self, canary_percent: int) -> RouteState:
        weights.check_percent(canary_percent)
        with api_errors(self.describe()):
            ledger, first = self._ledger()
            if first and canary_percent == 0 and int(ledger["canaryReplicas"]) == 0:
                return self.read()  # untouched and already all on stable: nothing to write
            stable_count, canary_count = weights.replicas(self.total(ledger), canary_percent)
            return self._scale(stable_count, canary_count, ledger, record=first)

    def set_mirror(self, percent: int) -> RouteState:
        weights.check_percent(percent, "mirror percentage")
        if percent != 0:
            raise NotSupported(
                "plain Deployments cannot mirror traffic: no proxy sits in front of them to copy requests; "
                "use the nginx, gateway-api or istio router for shadow traffic, or drop the mirror step"
            )
        return self.read()

    def read(self) -> RouteState:
        with api_errors(self.describe()):
            stable = self.client.read(self.target.stable_ref)
            canary = self.client.read(self.target.canary_ref)
        return state(stable, canary)

    def finish(self, outcome: Outcome) -> Finish:
        """rolled_back: as `remove()`. promoted: every replica on the canary, gate's record gone."""
        if outcome == "rolled_back":
            self.remove()
            return Finish(True, self.read())
        with api_errors(self.describe()):
            ledger, _ = self._ledger()
            total = self.total(ledger)

            def grow(d: JSON) -> JSON:  # the canary grows first, then the stable shrinks
                found = read_ledger(d)
                if found is not None:
                    drop_ledger(d, found)
                return scaled(d, total)

            self.client.modify(self.target.canary_ref, grow)
            self.client.modify(self.target.stable_ref, lambda d: scaled(d, 0))
        return Finish(True, self.read())

    def remove(self) -> None:
        with api_errors(self.describe()):
            canary = self.client.read(self.target.canary_ref)
            ledger = read_ledger(canary)
            if ledger is None:
                if replicas_of(canary) == 0:
                    return  # nothing of gate's here and nothing routed to the canary
                stable_count = replicas_of(self.client.read(self.target.stable_ref)) + replicas_of(canary)
            else:
                stable_count = int(ledger["stableReplicas"]) or self.total(ledger)
            self.client.modify(self.target.stable_ref, lambda d: scaled(d, stable_count))

            def back(d: JSON) -> JSON:
                found = read_ledger(d)
                if found is not None:
                    drop_ledger(d, found)
                return scaled(d, 0)

            self.client.modify(self.target.canary_ref, back)
