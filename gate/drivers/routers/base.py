"""The one interface every router implements, the state it reports, and its errors.

A router moves production traffic between the stable and the canary track and mirrors a share of it
to the canary. It never decides anything: the engine tells it the weight and the mirror share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol, runtime_checkable

from gate.errors import GateError, PermanentError, TemporaryError

Outcome = Literal["promoted", "rolled_back"]
OUTCOMES: tuple[Outcome, ...] = ("promoted", "rolled_back")


@dataclass(frozen=True)
class RouteState:
    """What is in effect: the canary's share of production traffic and the share mirrored to it (percent)."""

    canary_weight: int
    mirror_percent: int


@dataclass(frozen=True)
class Finish:
    """Where `finish()` stands: `done` once the end state is reached (call again until it is), what
    the route says now, and in words what is being waited for (empty when done)."""

    done: bool
    state: RouteState
    detail: str = ""


class RouterError(GateError):
    """A router could not do what it was asked; nothing was half-applied."""


class RouterUnavailable(RouterError, TemporaryError):
    """Temporary: the API server or proxy did not answer, or conflicted; retrying later may work."""


class RouterMisconfigured(RouterError, PermanentError):
    """Permanent: the routing object is not what the contract says (missing, no stable backend, ...),
    gate may not change it, or the proxy refused the configuration. Retrying will not help; the
    message says what to fix."""


class NotSupported(RouterMisconfigured):
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

    def finish(self, outcome: Outcome) -> Finish:
        """Leave the end state of a run (idempotent; call again until `done`).

        Both outcomes: the mirror off, gate's bookkeeping (annotation, filters it added) gone, the
        object as the user wrote it except for the weights. `rolled_back`: stable 100 %.
        `promoted`: what the contract's `promotion` says (route-only: canary 100 %; copy/external:
        stable 100 % once the stable Deployment runs the canary's version). Nothing is written when
        nothing has to change."""
        ...

    def describe(self) -> str:
        """One line naming what this router changes (for logs and the dashboard)."""
        ...
