"""What the engine needs of the world, as Protocols: the run store, the router, load, chaos, the
evidence (measure + judge), notifiers, diagnostics and the clock.

The engine imports no driver. The drivers (``gate.drivers.*``) and the composition's adapters
(``gate.compose``) fit these Protocols structurally without importing them; the composition
(``gate.compose``) is the one place that hands real drivers to a ``Runner``. Tests hand it doubles.

The records the engine hands the store (``LookWrite``) and what it reads back (``PendingEffectLike``)
are plain data here, so the store (a driver, below the engine) never imports the engine: it accepts
any object with these attributes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gate.engine.clock import Clock

__all__ = [
    "ChaosPort",
    "Clock",
    "Diagnostic",
    "DiagnosticsPort",
    "EvidencePort",
    "LoadPort",
    "LookOutcome",
    "LookRequest",
    "LookWrite",
    "NotifierPort",
    "PendingEffectLike",
    "RouterPort",
    "StorePort",
]


# ------------------------------------------------------------------------------------------- looks


@dataclass(frozen=True)
class LookRequest:
    """What a look is asked: the evidence from ``since`` to ``at``, for ``step``, under ``chaos``,
    of the ``sources`` reaching the canary; ``final`` when the step waits for a conclusion."""

    look: int
    step: int
    since: float
    at: float
    chaos: str | None
    sources: tuple[str, ...] = ()
    final: bool = False


@dataclass(frozen=True)
class LookOutcome:
    """What a look found: the judge's decision, its verdicts and a summary of the evidence."""

    action: Literal["promote", "hold", "rollback"]
    reason: str
    errors: bool = False
    basis: Literal["evidence", "inconclusive", "errors"] = "evidence"
    verdicts: Sequence[dict[str, Any]] = ()
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LookWrite:
    """What a finished look adds to the store, written with its effect's completion.

    The store accepts any object with these attributes (it sits below the engine)."""

    look: int
    step: int
    at: float
    since: float
    action: str
    reason: str
    evidence: dict[str, Any]
    verdicts: Sequence[dict[str, Any]]  # objective, sli, source, status, reason, numbers


class PendingEffectLike(Protocol):
    """An effect recorded as intended and not done (``RunStore.pending_effects`` returns these)."""

    @property
    def seq(self) -> int: ...

    @property
    def idx(self) -> int: ...

    @property
    def effect(self) -> dict[str, Any]: ...


# ------------------------------------------------------------------------------------------ store


class StorePort(Protocol):
    """Exactly the run-store methods the runner calls (``gate.drivers.store.RunStore`` fits)."""

    def create_run(
        self,
        *,
        contract_name: str,
        plan: dict[str, Any],
        state: dict[str, Any],
        at: float,
        service: str = "",
        contract_text: str = "",
        meta: dict[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Record a new run and return its id."""
        ...

    def get_plan(self, run_id: str) -> dict[str, Any]:
        """The plan recorded with the run."""
        ...

    def get_state(self, run_id: str) -> dict[str, Any]:
        """The state checkpointed last."""
        ...

    def last_seq(self, run_id: str) -> int:
        """The run's last transition number (0 before the first)."""
        ...

    def checkpoint(
        self,
        run_id: str,
        *,
        seq: int,
        at: float,
        input: dict[str, Any],
        state: dict[str, Any],
        effects: Sequence[dict[str, Any]],
        inbox_id: int | None = None,
    ) -> None:
        """Write-ahead: the transition, its state and its intended effects, in one commit."""
        ...

    def effect_done(
        self,
        run_id: str,
        seq: int,
        idx: int,
        *,
        at: float,
        ok: bool = True,
        error: str = "",
        result: dict[str, Any] | None = None,
        look: LookWrite | None = None,
    ) -> None:
        """Mark an effect carried out, with its result input and look records, in one commit."""
        ...

    def pending_effects(self, run_id: str) -> Sequence[PendingEffectLike]:
        """Effects intended and not done, in order."""
        ...

    def next_input(self, run_id: str) -> tuple[int, dict[str, Any]] | None:
        """The oldest input not yet consumed."""
        ...

    def request(self, run_id: str, input: dict[str, Any], *, origin: str = "person") -> int:
        """Queue an input (a person's abort or resume) for the run."""
        ...

    def notification_sent(self, run_id: str, key: str, channel: str) -> bool:
        """Whether a notification with this key already went out on this channel."""
        ...

    def record_notification(
        self,
        run_id: str,
        *,
        key: str,
        channel: str,
        event: str,
        ok: bool,
        at: float,
        payload: dict[str, Any] | None = None,
        error: str = "",
    ) -> None:
        """Record a notification attempt."""
        ...

    def record_diagnostic(
        self,
        run_id: str,
        *,
        name: str,
        url: str,
        at: float,
        data: bytes = b"",
        content_type: str = "",
        truncated: bool = False,
        error: str = "",
    ) -> int:
        """Keep a captured diagnostic with the run."""
        ...


# ---------------------------------------------------------------------------------------- drivers


class RouterPort(Protocol):
    """Moves traffic (``gate.drivers.routers.Router`` fits)."""

    def set_weight(self, canary_percent: int) -> Any:
        """Send ``canary_percent`` of production traffic to the canary."""
        ...

    def set_mirror(self, percent: int) -> Any:
        """Mirror ``percent`` of production requests to the canary."""
        ...


class EvidencePort(Protocol):
    """Measures and judges one look (``gate.compose.analysis.ContractAnalyst`` in real runs)."""

    def look(self, request: LookRequest) -> LookOutcome:
        """Measure the evidence of the window and judge it; may raise (the look then fails)."""
        ...


class LoadPort(Protocol):
    """Gate's synthetic load."""

    def start(self, step: int, duration: float) -> None:
        """Start (or restart) the load for ``duration`` seconds."""
        ...

    def stop(self) -> None:
        """Stop the load (no-op when none runs)."""
        ...


class ChaosPort(Protocol):
    """Chaos experiments; faults recorded before they are injected."""

    def start(self, experiment: str, duration: float) -> None:
        """Start ``experiment`` for ``duration`` seconds."""
        ...

    def stop(self, experiment: str) -> None:
        """Stop ``experiment`` and undo its faults (idempotent)."""
        ...

    def stop_all(self) -> None:
        """Undo every fault gate injected (idempotent)."""
        ...


class NotifierPort(Protocol):
    """Tells people (``gate.drivers.notify.Notifier`` fits)."""

    def channels(self) -> list[str]:
        """The channel names, for deduplication."""
        ...

    def send(self, channel: str, message: dict[str, Any]) -> tuple[bool, dict[str, Any], str]:
        """Send one message on one channel: (ok, payload sent, error). Never raises."""
        ...


class Diagnostic(Protocol):
    """One captured diagnostic (``gate.drivers.diagnostics.Captured`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def url(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def content_type(self) -> str: ...

    @property
    def truncated(self) -> bool: ...

    @property
    def error(self) -> str: ...


class DiagnosticsPort(Protocol):
    """Captures the canary's diagnostics (``gate.drivers.diagnostics.DiagnosticsCapture`` fits)."""

    def capture(self) -> Sequence[Diagnostic]:
        """Capture what the contract names; failures are reported in ``error``, never raised."""
        ...
