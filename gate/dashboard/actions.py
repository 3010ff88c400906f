"""Reviewers' actions: approve a held step, abort (roll back), retry — through the store's inbox.

The dashboard never changes a run itself: it queues the same inputs ``gate run --approve/--abort``
queues (``resume``/``abort``), which the run's engine consumes on its next tick, and writes who
asked, when and why to the audit log. Refused attempts by a known reviewer are audited too.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from gate.dashboard.auth import Authenticator, AuthError, Identity
from gate.dashboard.reader import StoreReader, namespace_of
from gate.drivers.store import StoreError

ActionName = Literal["approve", "abort", "retry"]
ACTIONS: tuple[str, ...] = ("approve", "abort", "retry")
MAX_REASON = 500


class ActionError(Exception):
    """The action cannot be taken (unknown run 404, finished run 409, bad input 422)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class ActionResult:
    run_id: str
    action: str
    request_id: int
    actor: str
    at: float
    message: str


def _input_for(action: str, status: str) -> str:
    """Which engine input an action becomes, given the run's status (or why it cannot)."""
    if status in ("promoted", "rolled_back", "failed"):
        raise ActionError(
            409,
            f"the run is {status}: nothing to {action}"
            + (" — start a new run (gate run CONTRACT) to try again" if action == "retry" else ""),
        )
    if action == "abort":
        return "abort"
    if action == "approve":
        return "resume"
    # retry: a held run (analyses failed, evidence undecided) looks again from where it stopped.
    if status != "held":
        raise ActionError(409, f"the run is {status}, not held: there is nothing to retry yet")
    return "resume"


def act(
    reader: StoreReader,
    auth: Authenticator,
    ident: Identity,
    *,
    run_id: str,
    action: str,
    reason: str,
    origin: str,
    default_namespace: str = "default",
) -> ActionResult:
    """Authorise, queue the engine input, audit. Raises ``AuthError`` or ``ActionError``."""
    if action not in ACTIONS:
        raise ActionError(404, f"unknown action {action[:40]!r}: approve, abort or retry")
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise ActionError(422, f"reason: at most {MAX_REASON} characters")
    detail = reader.detail(run_id)
    if detail is None:
        raise ActionError(404, "no such run")
    namespace = namespace_of(detail) or default_namespace
    gate_name = str(detail.meta.get("gate", "") or detail.summary.contract_name)
    try:
        auth.authorise(ident, namespace, gate_name)
    except AuthError as exc:
        reader.record_audit(
            run_id,
            actor=ident.name,
            action=f"{action} refused",
            reason=exc.message,
            origin=origin,
            details={"via": ident.via},
        )
        raise
    kind = _input_for(action, detail.summary.status)
    at = time.time()
    payload = {"kind": kind, "at": at, "by": ident.name, "reason": reason or f"{action} from the dashboard"}
    try:
        request_id = reader.store.request(run_id, payload, origin=f"dashboard:{action}")
    except StoreError as exc:
        raise ActionError(404, str(exc)) from None
    reader.record_audit(
        run_id,
        actor=ident.name,
        action=action,
        reason=reason,
        origin=origin,
        details={"via": ident.via, "request": request_id, "input": kind},
    )
    return ActionResult(run_id, action, request_id, ident.name, at, f"asked the run to {kind}")
