"""Routers: what moves traffic between the stable and the canary track (one interface, several backends).

`Router` (set_weight, set_mirror, read, remove) is implemented by the nginx router (gate's own nginx,
for local runs and services outside Kubernetes) and by four Kubernetes routers (Gateway API HTTPRoute,
Istio VirtualService, ingress-nginx canary Ingress, Deployment replica ratio). Weight arithmetic lives
in `weights` (pure); routers never decide, they do what the engine says and report what is in effect.
"""

from gate.drivers.routers.base import (
    NotSupported,
    Router,
    RouterError,
    RouterMisconfigured,
    RouterUnavailable,
    RouteState,
)
from gate.drivers.routers.factory import router_for

__all__ = [
    "NotSupported",
    "RouteState",
    "Router",
    "RouterError",
    "RouterMisconfigured",
    "RouterUnavailable",
    "router_for",
]
