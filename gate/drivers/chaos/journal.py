"""The Chaos Toolkit journal as gate reads it: typed, bounded, with the chaos window worked out.

Chaos Toolkit writes a journal per run (``status``, ``deviated``, ``steady_states`` before/after/during,
``run`` — the method's activities — and ``rollbacks``, each with ISO timestamps). ``parse_journal``
turns it into a ``Journal``; outputs are kept as short text, never whole. Timestamps become unix seconds
so the judge can put them straight into Prometheus queries.

The chaos window says when the fault was in place and when it was gone:

- ``fault_start``: when the first fault action returned (the fault is in place from then on);
- ``fault_end``: when the last rollback returned (the fault is gone; recovery is timed from here);
- ``rollback_start`` / ``rollback_end``: the rollbacks themselves.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

MAX_TEXT = 500
MAX_ACTIVITIES = 500
# The statuses Chaos Toolkit writes, and the ones gate adds when there is no journal to read.
CTK_STATUSES = frozenset({"completed", "failed", "aborted", "interrupted"})
GATE_STATUSES = frozenset({"invalid", "killed", "error"})
FAULT_FUNCS = frozenset({"inject_http_fault", "set_demo_switch", "inject_istio_fault"})


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


def _ts(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return None


@dataclass(frozen=True)
class ActivityRun:
    """One probe or action as it ran."""

    name: str
    type: str
    status: str
    provider: str
    start: float | None
    end: float | None
    duration: float | None
    output: str
    error: str | None
    func: str = ""

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @property
    def injects(self) -> bool:
        """True for gate's own fault-injecting actions."""
        return self.func in FAULT_FUNCS


@dataclass(frozen=True)
class SteadyState:
    """One evaluation of the steady-state hypothesis."""

    met: bool | None
    probes: list[ActivityRun]


@dataclass(frozen=True)
class ChaosWindow:
    """When the fault was in place (unix seconds; None when it never was or is unknown)."""

    fault_start: float | None = None
    fault_end: float | None = None
    rollback_start: float | None = None
    rollback_end: float | None = None

    @property
    def duration(self) -> float | None:
        if self.fault_start is None or self.fault_end is None:
            return None
        return max(0.0, self.fault_end - self.fault_start)


@dataclass(frozen=True)
class Journal:
    """One experiment's run: what Chaos Toolkit reported, plus what gate did around it."""

    name: str
    status: str
    deviated: bool
    start: float | None
    end: float | None
    duration: float | None
    method: list[ActivityRun]
    rollbacks: list[ActivityRun]
    before: SteadyState | None
    after: SteadyState | None
    during: list[SteadyState]
    window: ChaosWindow
    error: str | None = None
    timed_out: bool = False
    aborted: bool = False
    recovered: list[str] = field(default_factory=list)
    open_faults: list[str] = field(default_factory=list)
    chaoslib_version: str = ""

    @property
    def faults_undone(self) -> bool:
        """Every fault recorded for this run is known to be gone (rollback or recovery)."""
        return not self.open_faults

    @property
    def ok(self) -> bool:
        """Completed, steady state held, every rollback succeeded and nothing is left behind."""
        return (
            self.status == "completed"
            and not self.deviated
            and all(r.succeeded for r in self.rollbacks)
            and self.faults_undone
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the run store, reports and the dashboard), with the derived verdicts."""
        data = dataclasses.asdict(self)
        data.update(ok=self.ok, faults_undone=self.faults_undone, summary=self.summary())
        data["window"]["duration"] = self.window.duration
        return data

    def summary(self) -> str:
        parts = [f"chaos {self.name}: {self.status}"]
        if self.deviated:
            parts.append("steady state deviated")
        if self.timed_out:
            parts.append("timed out")
        failed = [a.name for a in self.method + self.rollbacks if not a.succeeded]
        if failed:
            parts.append("failed: " + ", ".join(failed[:5]))
        if self.window.duration is not None:
            parts.append(f"fault in place {self.window.duration:.1f} s")
        if self.recovered:
            parts.append(f"{len(self.recovered)} fault(s) undone by recovery")
        if self.open_faults:
            parts.append(f"{len(self.open_faults)} fault(s) NOT undone")
        if self.error:
            parts.append(self.error)
        return "; ".join(parts)


def _provider(raw: Mapping[str, Any]) -> tuple[str, str]:
    provider = raw.get("provider")
    if not isinstance(provider, Mapping):
        return "", ""
    kind = str(provider.get("type", ""))
    if kind == "python":
        func = str(provider.get("func", ""))
        return f"python:{provider.get('module', '')}.{func}", func
    if kind == "http":
        return f"http:{provider.get('url', '')}", ""
    if kind == "process":
        return f"process:{provider.get('path', '')}", ""
    return kind, ""


def parse_activity(raw: Any) -> ActivityRun | None:
    """One ``run`` entry of a journal (``{"activity": {...}, "status", "start", "end", "output", ...}``)."""
    if not isinstance(raw, Mapping):
        return None
    activity = raw.get("activity")
    activity = activity if isinstance(activity, Mapping) else {}
    provider, func = _provider(activity)
    exc = raw.get("exception")
    error: str | None = None
    if isinstance(exc, Sequence) and not isinstance(exc, str) and exc:
        error = _text(str(exc[-1]).strip())
    elif exc:
        error = _text(exc)
    duration = raw.get("duration")
    return ActivityRun(
        name=_text(activity.get("name", "")),
        type=str(activity.get("type", "")),
        status=str(raw.get("status", "")),
        provider=_text(provider),
        start=_ts(raw.get("start")),
        end=_ts(raw.get("end")),
        duration=float(duration) if isinstance(duration, int | float) else None,
        output=_text(raw.get("output")),
        error=error,
        func=func,
    )


def _activities(raw: Any) -> list[ActivityRun]:
    if not isinstance(raw, Sequence) or isinstance(raw, str):
        return []
    found = (parse_activity(r) for r in raw[:MAX_ACTIVITIES])
    return [a for a in found if a is not None]


def _steady(raw: Any) -> SteadyState | None:
    if not isinstance(raw, Mapping):
        return None
    met = raw.get("steady_state_met")
    return SteadyState(met=met if isinstance(met, bool) else None, probes=_activities(raw.get("probes")))


def chaos_window(method: list[ActivityRun], rollbacks: list[ActivityRun], end: float | None) -> ChaosWindow:
    """Work out when the fault was in place from the activities' timestamps.

    The fault starts when gate's first fault action succeeded (or, for an experiment that uses other
    actions, when its first action returned) and ends when the last rollback returned."""
    injecting = [a for a in method if a.injects and a.succeeded and a.end is not None]
    if not injecting:
        injecting = [a for a in method if a.type == "action" and a.end is not None]
    fault_start = injecting[0].end if injecting else None
    rb_start = min((a.start for a in rollbacks if a.start is not None), default=None)
    rb_end = max((a.end for a in rollbacks if a.end is not None), default=None)
    fault_end = rb_end if rb_end is not None else (end if fault_start is not None else None)
    return ChaosWindow(
        fault_start=fault_start, fault_end=fault_end, rollback_start=rb_start, rollback_end=rb_end
    )


def parse_journal(data: Mapping[str, Any], name: str = "") -> Journal:
    """A Chaos Toolkit journal (the dict ``run_experiment`` returns, or journal.json) as a ``Journal``."""
    status = str(data.get("status") or "error")
    if status not in CTK_STATUSES | GATE_STATUSES:
        status = "error"
    states = data.get("steady_states")
    states = states if isinstance(states, Mapping) else {}
    during_raw = states.get("during")
    during = [
        s
        for s in (_steady(d) for d in (during_raw if isinstance(during_raw, list) else [])[:MAX_ACTIVITIES])
        if s
    ]
    method = _activities(data.get("run"))
    rollbacks = _activities(data.get("rollbacks"))
    start, end = _ts(data.get("start")), _ts(data.get("end"))
    duration = data.get("duration")
    experiment = data.get("experiment")
    title = experiment.get("title") if isinstance(experiment, Mapping) else None
    gate_info = data.get("gate")
    gate_info = gate_info if isinstance(gate_info, Mapping) else {}
    error = data.get("error") or gate_info.get("error")
    return Journal(
        name=name or _text(title or ""),
        status=status,
        deviated=bool(data.get("deviated", False)),
        start=start,
        end=end,
        duration=float(duration) if isinstance(duration, int | float) else None,
        method=method,
        rollbacks=rollbacks,
        before=_steady(states.get("before")),
        after=_steady(states.get("after")),
        during=during,
        window=chaos_window(method, rollbacks, end),
        error=_text(error) if error else None,
        recovered=[_text(x) for x in gate_info.get("recovered", [])][:100]
        if isinstance(gate_info.get("recovered"), list)
        else [],
        chaoslib_version=_text(data.get("chaoslib-version", "")),
    )
