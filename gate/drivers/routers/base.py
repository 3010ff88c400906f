"""The one interface every router implements, the state it reports, and its errors.

A router moves production traffic between the stable and the canary track and mirrors a share of it
to the canary. It never decides anything: the engine tells it the weight and the mirror share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class RouteState:
    """What is in effect: the canary's share of production traffic and the share mirrored to it (percent)."""

    canary_weight: int
    mirror_percent: int


class RouterError(RuntimeError):
    """A router could not do what it was asked; nothing was half-applied."""


class RouterUnavailable(RouterError):
    """Temporary: the API server or proxy did not answer, or kept conflicting; retrying later may work."""


class RouterMisconfigured(RouterError):
    """Permanent: the routing object is not what the contract says (missing, no stable backend, ...)
    or the proxy refused the configuration. Retrying will not help; the message says what to fix."""


class NotSupported(RouterError):
    """This router cannot do that at all (e.g. mirroring with plain Deployments)."""


@runtime_checkable
class Router(Protocol):
    """Set weights, set the mirror, read back what is in effect, remove what gate added.

    Calls are blocking and idempotent: repeating one after a crash leaves the same state."""

    def set_weight(self, canary_percent: int) -> RouteState:
        """Send `canary_percent` (0..100) of production traffic to the canary; the mirror is kept."""
        ...

    def set_mirror(self, percent: int) -> RouteState:
        """Mirror `percent` (0..100, 0 = off) of production requests to the canary; weights are kept."""
        ...

    def read(self) -> RouteState:
        """What is in effect now, read from the proxy's config or the API server, not from memory."""
        ...

    def remove(self) -> None:
        """Undo what gate added: all traffic to stable, no mirror, the user's own settings as before."""
        ...

    def describe(self) -> str:
        """One line naming what this router changes (for logs and the dashboard)."""
        ...
