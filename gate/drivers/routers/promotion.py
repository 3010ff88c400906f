"""Promotion hand-over: what "promoted" leaves behind, as the contract's `promotion.mode` says.

- `route-only` (the default): the router's own `finish("promoted")` — canary 100 %, no mirror, gate's
  bookkeeping gone. The stable Deployment still runs the old version; promoting it is yours.
- `copy` (Flagger's way): the canary Deployment's pod template is copied into the stable Deployment;
  once the stable Deployment has rolled it out (observedGeneration, updated and available replicas),
  traffic goes 100 % back to stable and the canary Deployment is scaled to zero.
- `external` (a GitOps tool promotes): gate waits until the stable Deployment runs the canary's
  images and has rolled them out, then routes 100 % back to stable. The canary Deployment is left
  as it is (the GitOps tool owns it).

`HandOver` wraps a router: the traffic calls pass through; `finish("promoted")` does one round of the
hand-over and says whether it is done (`Finish.done`). It never sleeps or waits: the caller calls it
again (the engine on its next tick). Every round is idempotent — what is already in place is not
written again — so a restart simply carries on. Waiting longer than `promotion.timeout` is a
`PromotionTimeout` (permanent): the traffic stays where it is, on the proven canary.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from gate.drivers import kube
from gate.drivers.routers.base import Finish, Outcome, Router, RouterMisconfigured, RouteState
from gate.drivers.routers.kubecommon import JSON, api_errors

Mode = Literal["route-only", "copy", "external"]
GATE_PREFIX = "perfgate.dev/"


class PromotionTimeout(RouterMisconfigured):
    """The stable Deployment did not come to run the canary's version in time."""


@dataclass(frozen=True)
class Deployments:
    """The two Deployments whose versions are handed over."""

    namespace: str
    stable: str
    canary: str

    @property
    def stable_ref(self) -> kube.ObjectRef:
        return kube.ObjectRef(kube.DEPLOYMENT, self.namespace, self.stable)

    @property
    def canary_ref(self) -> kube.ObjectRef:
        return kube.ObjectRef(kube.DEPLOYMENT, self.namespace, self.canary)


def images(deployment: JSON) -> dict[str, str]:
    """container name → image of a Deployment's pod template (init containers included)."""
    spec = (deployment.get("spec", {}).get("template") or {}).get("spec") or {}
    out: dict[str, str] = {}
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            if isinstance(c, dict) and c.get("name"):
                out[str(c["name"])] = str(c.get("image") or "")
    return out


def rolled_out(deployment: JSON) -> tuple[bool, str]:
    """Whether the Deployment's current template has rolled out (as `kubectl rollout status` judges:
    observedGeneration caught up, every replica updated and available), and in words where it is."""
    spec = deployment.get("spec") or {}
    status = deployment.get("status") or {}
    want = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
    generation = int(deployment.get("metadata", {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    available = int(status.get("availableReplicas") or 0)
    total = int(status.get("replicas") or 0)
    if observed < generation:
        return False, f"the Deployment controller has not seen generation {generation} yet (at {observed})"
    if updated < want:
        return False, f"{updated} of {want} replicas updated"
    if total > updated:
        return False, f"{total - updated} old replicas still terminating"
    if available < want:
        return False, f"{available} of {want} updated replicas available"
    return True, f"{want} replicas rolled out"


def copy_template(stable: JSON, canary: JSON) -> JSON:
    """The stable Deployment with the canary's pod spec and pod annotations (mutates and returns it).
    The stable template's labels stay: they must keep matching the stable Deployment's selector."""
    canary_template = canary.get("spec", {}).get("template") or {}
    template = stable.setdefault("spec", {}).setdefault("template", {})
    template["spec"] = canary_template.get("spec") or {}
    annotations = {
        k: v
        for k, v in ((canary_template.get("metadata") or {}).get("annotations") or {}).items()
        if not str(k).startswith(GATE_PREFIX)
    }
    meta = template.setdefault("metadata", {})
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    return stable


def scaled_to_zero(deployment: JSON) -> JSON:
    deployment.setdefault("spec", {})["replicas"] = 0
    return deployment


class HandOver:
    """A router whose `finish("promoted")` hands the canary's version over to the stable Deployment."""

    def __init__(
        self,
        router: Router,
        client: kube.KubeClient,
        deployments: Deployments,
        *,
        mode: Mode,
        timeout: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if mode not in ("copy", "external"):
            raise ValueError(f"HandOver is for modes copy and external, not {mode!r}")
        self.router = router
        self.client = client
        self.deployments = deployments
        self.mode = mode
        self.timeout = timeout
        self._clock = clock
        self._since: float | None = None

    # -- the traffic calls pass through --------------------------------------------------------------

    def set_weight(self, canary_percent: int) -> RouteState:
        return self.router.set_weight(canary_percent)

    def set_mirror(self, percent: int) -> RouteState:
        return self.router.set_mirror(percent)

    def read(self) -> RouteState:
        return self.router.read()

    def remove(self) -> None:
        self.router.remove()

    def describe(self) -> str:
        d = self.deployments
        return f"{self.router.describe()}; promotion {self.mode}: {d.canary} -> {d.stable} ({d.namespace})"

    # -- the end of a run ---------------------------------------------------------------------------

    def finish(self, outcome: Outcome) -> Finish:
        if outcome == "rolled_back":
            return self.router.finish("rolled_back")
        if self._since is None:
            self._since = self._clock()
        state = self.router.set_mirror(0)  # no request runs twice while the hand-over waits
        d = self.deployments
        with api_errors(f"promotion {self.mode} of Deployment {d.namespace}/{d.stable}"):
            canary = self.client.get(d.canary_ref)
            if self.mode == "copy":
                stable = self.client.modify(d.stable_ref, lambda s: copy_template(s, canary))
                ready, where = rolled_out(stable)
                waiting = f"Deployment {d.namespace}/{d.stable} rolling out the canary's template: {where}"
            else:
                stable = self.client.get(d.stable_ref)
                want, have = images(canary), images(stable)
                if have != want:
                    ready = False
                    waiting = (
                        f"Deployment {d.namespace}/{d.stable} to run the canary's images "
                        f"{_images(want)} (it runs {_images(have)}); promote them with your GitOps tool"
                    )
                else:
                    ready, where = rolled_out(stable)
                    waiting = f"Deployment {d.namespace}/{d.stable} rolling out the canary's images: {where}"
        if not ready:
            waited = self._clock() - self._since
            if waited > self.timeout:
                raise PromotionTimeout(
                    f"promotion {self.mode}: waited {waited:.0f}s (promotion.timeout {self.timeout:.0f}s) "
                    f"for "
                    f"{waiting}; traffic stays as it is (canary {state.canary_weight}%)",
                    hint=f"look at `kubectl rollout status deployment/{d.stable} -n {d.namespace}`; once it "
                    "runs the canary's version, run gate again or move the route back by hand",
                )
            return Finish(False, state, f"waiting for {waiting}")
        end = self.router.finish("rolled_back")  # stable (now the canary's version) takes 100 %
        if self.mode == "copy":
            with api_errors(f"promotion copy: scaling Deployment {d.namespace}/{d.canary} to zero"):
                self.client.modify(d.canary_ref, scaled_to_zero)
        self._since = None
        return Finish(True, end.state)


def _images(by_name: dict[str, str]) -> str:
    text = ", ".join(f"{k}={v}" for k, v in sorted(by_name.items())) or "none"
    return text if len(text) <= 200 else text[:199] + "…"
