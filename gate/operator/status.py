"""A gate's status, conditions and Events, from what the run store says of its run (pure).

``status_of(view, …)`` is the whole ``status`` the operator writes; ``conditions`` keeps each condition's
``lastTransitionTime`` when its status did not change, as Kubernetes conventions ask. The phase reads
at a glance in ``kubectl get performancegates``:

| phase | meaning |
|---|---|
| Waiting | no run yet: waiting for a canary revision |
| Progressing | a run is carrying the canary through its steps |
| Held | the run waits for a person (approve or abort annotation) |
| Promoted | the run promoted the canary |
| RolledBack | the run rolled back on the evidence or on a person's abort |
| Failed | the run rolled back because it could not be carried out (driver, errors, deadline) |
| Invalid | the spec (or the contract it references) is refused; nothing moves |
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

APPROVE = "the perfgate.dev/approve annotation"
CONDITION_TYPES = ("Ready", "Progressing", "Promoted", "RolledBack", "Held")
MAX_MESSAGE = 1000  # status and Event messages are bounded; the run store keeps the whole record


@dataclass(frozen=True)
class RunView:
    """What the status needs of a run (the bridge builds it from the engine's state)."""

    run_id: str
    status: str  # running, held, promoted, rolled_back, failed
    phase: str  # the engine's phase: pending, stepping, rolling_back, finished
    step: int  # index of the current step (== steps once all are done)
    steps: int
    step_label: str
    weight: int
    mirror: int
    reason: str = ""
    cause: str | None = None  # why a rollback began: verdict, abort, inconclusive, errors, deadline, driver
    awaiting: bool = False  # at an open-ended pause: waits for a reviewer's approve


@dataclass(frozen=True)
class DecisionView:
    """The last decision of a run."""

    action: str
    reason: str
    basis: str
    look: int
    step: int
    at: float
    verdicts: Sequence[dict[str, Any]] = field(default_factory=tuple)


def rfc3339(at: float) -> str:
    """Unix seconds as RFC 3339 UTC (what Kubernetes writes)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))


def bounded(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` cut to ``limit`` characters (never a huge message into the API server)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def gate_phase(view: RunView | None) -> str:
    """The gate's phase for its run (``Waiting`` without one)."""
    if view is None:
        return "Waiting"
    return {
        "promoted": "Promoted",
        "rolled_back": "RolledBack",
        "failed": "Failed",
        "held": "Held",
    }.get(view.status, "Held" if view.awaiting else "Progressing")


def conditions(
    *,
    view: RunView | None,
    invalid: str | None,
    generation: int | None,
    now: float,
    previous: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """The five conditions; ``previous`` (the status as read) keeps unchanged transition times."""
    wanted: dict[str, tuple[str, str, str]] = {}
    if invalid is not None:
        wanted["Ready"] = ("False", "InvalidSpec", invalid)
    else:
        wanted["Ready"] = ("True", "ContractValid", "the contract is valid")
    if view is None:
        wanted["Progressing"] = ("False", "NoRun", "waiting for a canary revision")
        wanted["Promoted"] = ("False", "NoRun", "")
        wanted["RolledBack"] = ("False", "NoRun", "")
        wanted["Held"] = ("False", "NoRun", "")
    else:
        active = view.status in ("running", "held")
        if view.phase == "rolling_back":
            progressing = ("True", "RollingBack", view.reason)
        elif active:
            progressing = (
                "True",
                f"Step{view.step + 1}",
                f"step {view.step + 1}/{view.steps}: {view.step_label}",
            )
        else:
            progressing = ("False", "Finished", view.reason)
        wanted["Progressing"] = progressing
        wanted["Promoted"] = (
            ("True", "Promoted", view.reason) if view.status == "promoted" else ("False", "NotPromoted", "")
        )
        if view.status in ("rolled_back", "failed"):
            cause = (view.cause or "unknown").capitalize()
            wanted["RolledBack"] = ("True", _reason_word(cause), view.reason)
        else:
            wanted["RolledBack"] = ("False", "NotRolledBack", "")
        if view.status == "held":
            wanted["Held"] = ("True", _reason_word((view.cause or "Inconclusive").capitalize()), view.reason)
        elif view.awaiting:
            wanted["Held"] = ("True", "AwaitingApproval", f"step {view.step + 1} waits for {APPROVE}")
        else:
            wanted["Held"] = ("False", "NotHeld", "")
    before = {str(c.get("type")): c for c in previous if isinstance(c, dict)}
    out = []
    for kind in CONDITION_TYPES:
        status, reason, message = wanted[kind]
        old = before.get(kind)
        since = (
            str(old.get("lastTransitionTime"))
            if old is not None and old.get("status") == status and old.get("lastTransitionTime")
            else rfc3339(now)
        )
        out.append(
            {
                "type": kind,
                "status": status,
                "reason": reason,
                "message": bounded(message),
                "lastTransitionTime": since,
                "observedGeneration": generation,
            }
        )
    return out


def _reason_word(text: str) -> str:
    word = "".join(part.capitalize() for part in text.replace("-", "_").split("_") if part)
    return word or "Unknown"


def status_of(
    *,
    view: RunView | None,
    decision: DecisionView | None,
    invalid: str | None,
    generation: int | None,
    revision: str,
    images: Sequence[str],
    now: float,
    previous: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The gate's whole status."""
    previous = previous or {}
    status: dict[str, Any] = {
        "phase": "Invalid" if invalid is not None and view is None else gate_phase(view),
        "runId": view.run_id if view else "",
        "revision": revision,
        "images": list(images)[:20],
        "step": min(view.step + 1, view.steps) if view else 0,
        "steps": view.steps if view else 0,
        "stepLabel": _step_column(view),
        "weight": view.weight if view else 0,
        "mirror": view.mirror if view else 0,
        "message": bounded(
            invalid if invalid is not None and view is None else (view.reason if view else "")
        ),
        "conditions": conditions(
            view=view,
            invalid=invalid,
            generation=generation,
            now=now,
            previous=previous.get("conditions") or (),
        ),
        "observedGeneration": generation,
    }
    if decision is not None:
        status["lastDecision"] = {
            "action": decision.action,
            "reason": bounded(decision.reason),
            "basis": decision.basis,
            "look": decision.look,
            "step": decision.step,
            "at": rfc3339(decision.at),
            "verdicts": [_verdict(v) for v in list(decision.verdicts)[:20]],
        }
    else:
        status["lastDecision"] = previous.get("lastDecision") if view is not None else None
    return status


def _step_column(view: RunView | None) -> str:
    if view is None:
        return ""
    if view.status in ("running", "held") and view.step < view.steps:
        return f"{view.step + 1}/{view.steps} {view.step_label}"
    return f"{min(view.step, view.steps)}/{view.steps}"


def _verdict(v: dict[str, Any]) -> dict[str, Any]:
    return {
        "objective": bounded(str(v.get("objective", "")), 200),
        "source": str(v.get("source", ""))[:40],
        "status": str(v.get("status", ""))[:40],
        "reason": bounded(str(v.get("reason", "")), 400),
    }


CHATTER = ("lastDecision", "message")
"""What changes look after look while nothing else does (the numbers of the last decision)."""


def same_status(a: dict[str, Any] | None, b: dict[str, Any], *, ignore: Sequence[str] = ()) -> bool:
    """Whether writing ``b`` over ``a`` would change anything but ``ignore`` (so no needless API call).

    Conditions are compared without their messages when ``message`` is ignored."""
    if a is None:
        return False
    for key, value in b.items():
        if key in ignore:
            before = a.get(key)
            if key == "lastDecision" and (
                (before is None) != (value is None)
                or (
                    isinstance(value, dict)
                    and isinstance(before, dict)
                    and (value.get("action"), value.get("basis"))
                    != (before.get("action"), before.get("basis"))
                )
            ):
                return False
            continue
        if key == "conditions" and "message" in ignore:
            if _bare(a.get(key)) != _bare(value):
                return False
            continue
        if a.get(key) != value:
            return False
    return True


def _bare(conditions: Any) -> list[tuple[Any, Any, Any]]:
    return [
        (c.get("type"), c.get("status"), c.get("reason")) for c in conditions or [] if isinstance(c, dict)
    ]


@dataclass(frozen=True)
class EventView:
    """A Kubernetes Event to post on the gate: type Normal or Warning, a reason word, a message."""

    type: str
    reason: str
    message: str


def decision_event(decision: DecisionView) -> EventView:
    """The Event of a decision, with the judge's numbers."""
    if decision.action == "rollback":
        return EventView("Warning", "RollingBack", bounded(f"{decision.reason}: rolling back"))
    if decision.action == "hold":
        return EventView("Normal", "Holding", bounded(decision.reason))
    return EventView("Normal", "Promoting", bounded(decision.reason))


def transition_events(before: RunView | None, after: RunView) -> list[EventView]:
    """Events for what changed between two views of a run (a step, a weight, the end)."""
    out: list[EventView] = []
    if before is None or before.run_id != after.run_id:
        return out  # a run just started or resumed: its Started Event is the worker's
    if before.weight != after.weight:
        out.append(EventView("Normal", "WeightChanged", f"canary weight {before.weight}% → {after.weight}%"))
    if before.mirror != after.mirror:
        out.append(EventView("Normal", "MirrorChanged", f"mirror {before.mirror}% → {after.mirror}%"))
    if after.awaiting and (not before.awaiting or before.step != after.step):
        out.append(EventView("Normal", "AwaitingApproval", f"step {after.step + 1} waits for {APPROVE}"))
    if before.status != after.status:
        word = {
            "promoted": ("Normal", "Promoted"),
            "rolled_back": ("Warning", "RolledBack"),
            "failed": ("Warning", "Failed"),
            "held": ("Warning", "Held"),
        }.get(after.status)
        if word is not None:
            out.append(EventView(word[0], word[1], bounded(after.reason or after.status)))
    return out
