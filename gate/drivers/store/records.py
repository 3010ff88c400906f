"""What the run store hands back (read models) and what it is handed (look records).

Plain frozen dataclasses: the engine's types stay in the engine, the store knows only these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class RunSummary:
    """One row of the runs list."""

    id: str
    contract_name: str
    service: str
    status: str
    phase: str
    step: int
    steps: int
    weight: int
    reason: str
    created_at: float
    updated_at: float
    finished_at: float | None
    namespace: str = ""
    face: str = ""


@dataclass(frozen=True)
class EffectRecord:
    """An effect the engine intended at a transition, and whether it was carried out."""

    seq: int
    idx: int
    kind: str
    effect: dict[str, Any]
    done: bool
    ok: bool | None
    error: str
    attempts: int
    done_at: float | None


@dataclass(frozen=True)
class TransitionRecord:
    """One transition: the input, the state it led to, the effects it intended."""

    seq: int
    at: float
    input_kind: str
    input: dict[str, Any]
    state: dict[str, Any]
    effects: list[EffectRecord]


@dataclass(frozen=True)
class VerdictRecord:
    """One verdict (objective × source) of a look."""

    look: int
    objective: str
    sli: str
    source: str
    status: str
    reason: str
    numbers: dict[str, Any]


@dataclass(frozen=True)
class LookRecord:
    """One look: the decision, its verdicts and a summary of the evidence."""

    look: int
    seq: int
    step: int
    at: float
    since: float
    action: str
    reason: str
    evidence: dict[str, Any]
    verdicts: list[VerdictRecord] = field(default_factory=list)


@dataclass(frozen=True)
class DiagnosticRecord:
    """A captured diagnostic (without its data; ``diagnostic_data`` reads that)."""

    id: int
    name: str
    url: str
    content_type: str
    size: int
    truncated: bool
    error: str
    at: float


@dataclass(frozen=True)
class NotificationRecord:
    """A notification sent (or that failed to send) on a channel."""

    key: str
    channel: str
    event: str
    ok: bool
    error: str
    payload: dict[str, Any]
    at: float


@dataclass(frozen=True)
class AuditRecord:
    """One entry of a run's audit log."""

    id: int
    run_id: str
    actor: str
    action: str
    reason: str
    origin: str
    details: dict[str, Any]
    at: float


@dataclass(frozen=True)
class RunDetail:
    """Everything about a run, for the dashboard and ``gate run``."""

    summary: RunSummary
    plan: dict[str, Any]
    meta: dict[str, Any]
    state: dict[str, Any]
    contract_text: str
    timeline: list[TransitionRecord]
    looks: list[LookRecord]
    diagnostics: list[DiagnosticRecord]
    notifications: list[NotificationRecord]


@dataclass(frozen=True)
class PendingEffect:
    """An effect recorded as intended and not yet done: to be (re)applied."""

    seq: int
    idx: int
    effect: dict[str, Any]
    attempts: int


@dataclass(frozen=True)
class Lease:
    """Who drives a run, since when, last heard from, and until when the lease holds without news."""

    run_id: str
    holder: str
    acquired_at: float
    heartbeat_at: float
    expires_at: float

    def expired(self, now: float) -> bool:
        """Whether another process may take the run over at ``now``."""
        return now >= self.expires_at


class LookLike(Protocol):
    """What a finished look adds to the store: any object with these attributes (``LookWrite`` is one).

    ``verdicts`` are mappings (or objects) with objective, sli, source, status, reason, numbers.
    """

    @property
    def look(self) -> int: ...
    @property
    def step(self) -> int: ...
    @property
    def at(self) -> float: ...
    @property
    def since(self) -> float: ...
    @property
    def action(self) -> str: ...
    @property
    def reason(self) -> str: ...
    @property
    def evidence(self) -> Mapping[str, Any]: ...
    @property
    def verdicts(self) -> Sequence[Any]: ...


@dataclass(frozen=True)
class LookWrite:
    """What a finished look adds to the store, written with its effect's completion."""

    look: int
    step: int
    at: float
    since: float
    action: str
    reason: str
    evidence: dict[str, Any]
    verdicts: Sequence[dict[str, Any]]  # objective, sli, source, status, reason, numbers
