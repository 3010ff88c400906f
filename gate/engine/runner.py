"""The runner: feeds the machine its inputs and carries out its effects through the drivers.

Write-ahead, always in this order:

1. the transition (input, new state, intended effects) is committed to the run store;
2. each effect is applied through its driver (effects are idempotent: setting weight 20 twice
   is setting it once);
3. the effect is marked done in the store, in the same commit as what it produced (a look's
   decision, verdicts and evidence summary; the input its result feeds back to the machine).

Results feed back through the store's inbox, so a runner started on an existing run (after a
crash, a kill, a reboot) first re-applies the effects intended and not done, then consumes the
inputs waiting, then ticks on: no step repeated or skipped, no record lost.

Rollback is never blocked: its router calls are retried here a few times, and a rollback that still
fails is repeated by the machine on every tick until it holds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from gate.drivers.diagnostics import Captured
from gate.drivers.store import LookWrite, RunStore
from gate.engine import codec
from gate.engine.clock import Clock
from gate.engine.machine import (
    Abort,
    CaptureDiagnostics,
    Effect,
    EffectFailed,
    Input,
    Judged,
    LookFailed,
    Measure,
    Notify,
    Plan,
    Resume,
    Rollback,
    RolledBack,
    SetMirror,
    SetWeight,
    Start,
    StartChaos,
    StartLoad,
    State,
    StopChaos,
    StopLoad,
    Tick,
    transition,
)

log = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------------- ports
# What the runner needs of each driver. Structural: gate.drivers.routers.Router, the load and chaos
# adapters in gate.engine.adapters and gate.drivers.notify.Notifier fit without knowing of these.


class RouterPort(Protocol):
    """Moves traffic (see ``gate.drivers.routers.Router``)."""

    def set_weight(self, canary_percent: int) -> Any:
        """Send ``canary_percent`` of production traffic to the canary."""
        ...

    def set_mirror(self, percent: int) -> Any:
        """Mirror ``percent`` of production requests to the canary."""
        ...


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


class Analyst(Protocol):
    """Measures and judges (``gate.engine.analysis.ContractAnalyst`` in real runs)."""

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
    """Tells people (``gate.drivers.notify.Notifier``)."""

    def channels(self) -> list[str]:
        """The channel names, for deduplication."""
        ...

    def send(self, channel: str, message: dict[str, Any]) -> tuple[bool, dict[str, Any], str]:
        """Send one message on one channel: (ok, payload sent, error). Never raises."""
        ...


class DiagnosticsPort(Protocol):
    """Captures the canary's diagnostics (``gate.drivers.diagnostics``)."""

    def capture(self) -> list[Captured]:
        """Capture what the contract names; failures are reported in ``Captured.error``, never raised."""
        ...


class Crash(BaseException):
    """Raised by a test's crash hook to stop the runner dead (like a kill) at a chosen point."""


Observer = Callable[[int, Input, State, list[Effect]], None]


# ------------------------------------------------------------------------------------------ runner


class Runner:
    """Carries one run from its store record to the end, resuming whatever was left undone."""

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        *,
        router: RouterPort,
        analyst: Analyst,
        clock: Clock,
        load: LoadPort | None = None,
        chaos: ChaosPort | None = None,
        notifier: NotifierPort | None = None,
        diagnostics: DiagnosticsPort | None = None,
        retries: int = 3,
        retry_delay: float = 0.5,
        hook: Callable[[str], None] | None = None,
        observer: Observer | None = None,
        on_look: Callable[[LookRequest, LookOutcome], None] | None = None,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.plan: Plan = codec.load_plan(store.get_plan(run_id))
        self.state: State = codec.load_state(store.get_state(run_id))
        self.seq = store.last_seq(run_id)
        self.router = router
        self.analyst = analyst
        self.clock = clock
        self.load = load
        self.chaos = chaos
        self.notifier = notifier
        self.diagnostics = diagnostics
        self.retries = max(1, retries)
        self.retry_delay = retry_delay
        self._hook = hook
        self._observer = observer
        self._on_look = on_look
        self._next_tick: float | None = None
        self._soon: list[Abort | Resume] = []
        self._soon_lock = threading.Lock()

    @classmethod
    def create(
        cls,
        store: RunStore,
        plan: Plan,
        *,
        contract_name: str,
        clock: Clock,
        service: str = "",
        contract_text: str = "",
        meta: dict[str, Any] | None = None,
        run_id: str | None = None,
        **drivers: Any,
    ) -> Runner:
        """Record a new run in the store and return its runner (nothing happens until ``run``)."""
        rid = store.create_run(
            contract_name=contract_name,
            service=service,
            contract_text=contract_text,
            plan=codec.dump_plan(plan),
            state=codec.dump_state(State()),
            meta=meta,
            at=clock.now(),
            run_id=run_id,
        )
        return cls(store, rid, clock=clock, **drivers)

    # ----------------------------------------------------------------------------------- loop

    def run(
        self, *, max_transitions: int | None = None, stop_when: Callable[[State], bool] | None = None
    ) -> State:
        """Run (or resume) until the run is finished (or ``stop_when`` says so); returns the state."""
        self.recover()
        if self.state.phase == "pending":
            self.feed(Start(at=self.clock.now()))
        count = 0
        while not self.state.terminal:
            if max_transitions is not None and count >= max_transitions:
                break
            if stop_when is not None and stop_when(self.state):
                break
            self._drain_soon()
            if self._consume_one():
                count += 1
                continue
            now = self.clock.now()
            if self._next_tick is None:
                self._next_tick = now + self.plan.policy.interval
            if now >= self._next_tick:
                # Falling behind (a slow look) does not queue up ticks: one now, the next an interval on.
                self._next_tick = max(self._next_tick + self.plan.policy.interval, now)
                self.feed(Tick(at=now))
                count += 1
                continue
            self.clock.sleep(self._next_tick - now)  # a person's request may end it early
        return self.state

    def request_soon(self, event: Abort | Resume) -> None:
        """Ask for an abort or resume from another thread or a signal handler (no I/O here)."""
        with self._soon_lock:
            self._soon.append(event)
        wake = getattr(self.clock, "wake", None)
        if callable(wake):
            wake()

    def _drain_soon(self) -> None:
        with self._soon_lock:
            pending, self._soon = self._soon, []
        for event in pending:
            self.request(event)

    def recover(self) -> None:
        """Apply effects a previous runner recorded as intended and did not finish."""
        for pending in self.store.pending_effects(self.run_id):
            effect = codec.load_effect(pending.effect)
            log.info("run %s: resuming effect %d.%d %s", self.run_id, pending.seq, pending.idx, effect.kind)
            self._apply(pending.seq, pending.idx, effect)

    def request(self, event: Abort | Resume) -> None:
        """Queue a person's request (abort or resume); the loop acts on it before the next tick."""
        self.store.request(self.run_id, codec.dump_input(event))

    def feed(self, event: Input, *, inbox_id: int | None = None) -> State:
        """One transition: checkpoint it, then apply its effects in order."""
        new_state, effects = transition(self.plan, self.state, event)
        seq = self.seq + 1
        self.store.checkpoint(
            self.run_id,
            seq=seq,
            at=event.at,
            input=codec.dump_input(event),
            state=codec.dump_state(new_state),
            effects=[codec.dump_effect(e) for e in effects],
            inbox_id=inbox_id,
        )
        self.seq, self.state = seq, new_state
        self._point("checkpoint")
        if self._observer is not None:
            self._observer(seq, event, new_state, effects)
        for idx, effect in enumerate(effects):
            self._apply(seq, idx, effect)
        return new_state

    def _consume_one(self) -> bool:
        item = self.store.next_input(self.run_id)
        if item is None:
            return False
        inbox_id, data = item
        event = codec.load_input(data)
        if isinstance(event, Abort | Resume):
            # A person's request carries their wall-clock time; the machine runs on ours.
            event = type(event)(at=self.clock.now(), by=event.by, reason=event.reason)
        self.feed(event, inbox_id=inbox_id)
        return True

    # -------------------------------------------------------------------------------- effects

    def _apply(self, seq: int, idx: int, effect: Effect) -> None:
        ok, error, result, look = self._carry_out(effect)
        self._point("effect:applied")
        self.store.effect_done(
            self.run_id,
            seq,
            idx,
            at=self.clock.now(),
            ok=ok,
            error=error,
            result=None if result is None else codec.dump_input(result),
            look=look,
        )
        self._point("effect:recorded")

    def _carry_out(self, effect: Effect) -> tuple[bool, str, Input | None, LookWrite | None]:
        """Apply one effect: (ok, error, input fed back to the machine, look records)."""
        now = self.clock.now
        if isinstance(effect, SetWeight):
            weight = effect.percent
            err = self._retry(lambda: self.router.set_weight(weight))
            return _outcome(err, EffectFailed(at=now(), effect=effect.kind, error=err))
        if isinstance(effect, SetMirror):
            mirror = effect.percent
            err = self._retry(lambda: self.router.set_mirror(mirror))
            return _outcome(err, EffectFailed(at=now(), effect=effect.kind, error=err))
        if isinstance(effect, StartLoad):
            if self.load is None:
                return _outcome("no load driver", EffectFailed(now(), effect.kind, "no load driver"))
            load, step, duration = self.load, effect.step, effect.duration
            err = self._once(lambda: load.start(step, duration))
            return _outcome(err, EffectFailed(at=now(), effect=effect.kind, error=err))
        if isinstance(effect, StopLoad):
            err = "" if self.load is None else self._retry(self.load.stop)
            return (not err, err, None, None)  # a load that will not stop ends by its own duration
        if isinstance(effect, StartChaos):
            if self.chaos is None:
                return _outcome("no chaos driver", EffectFailed(now(), effect.kind, "no chaos driver"))
            chaos, name, duration = self.chaos, effect.experiment, effect.duration
            err = self._once(lambda: chaos.start(name, duration))
            return _outcome(err, EffectFailed(at=now(), effect=effect.kind, error=err))
        if isinstance(effect, StopChaos):
            if self.chaos is None:
                return (True, "", None, None)
            chaos, name = self.chaos, effect.experiment
            err = self._retry(lambda: chaos.stop(name))
            return _outcome(err, EffectFailed(now(), effect.kind, err, detail=effect.experiment))
        if isinstance(effect, Measure):
            return self._measure(effect)
        if isinstance(effect, Notify):
            return self._notify(effect)
        if isinstance(effect, CaptureDiagnostics):
            return self._capture()
        if isinstance(effect, Rollback):
            return self._rollback()
        raise AssertionError(f"unknown effect {effect!r}")  # pragma: no cover - the union is closed

    def _measure(self, effect: Measure) -> tuple[bool, str, Input | None, LookWrite | None]:
        request = LookRequest(
            effect.look, effect.step, effect.since, effect.at, effect.chaos, effect.sources, effect.final
        )
        try:
            outcome = self.analyst.look(request)
        except Exception as exc:  # a look that fails is data (an error look), never a crash of the gate
            error = f"{type(exc).__name__}: {exc}"[:2000]
            log.warning("run %s look %d failed: %s", self.run_id, effect.look, error)
            write = LookWrite(effect.look, effect.step, effect.at, effect.since, "error", error, {}, [])
            return (False, error, LookFailed(at=self.clock.now(), look=effect.look, error=error), write)
        if self._on_look is not None:
            self._on_look(request, outcome)
        write = LookWrite(
            look=effect.look,
            step=effect.step,
            at=effect.at,
            since=effect.since,
            action=outcome.action,
            reason=outcome.reason,
            evidence=dict(outcome.evidence),
            verdicts=list(outcome.verdicts),
        )
        judged = Judged(
            at=self.clock.now(),
            look=effect.look,
            action=outcome.action,
            reason=outcome.reason,
            errors=outcome.errors,
            basis=outcome.basis,
        )
        return (True, "", judged, write)

    def _notify(self, effect: Notify) -> tuple[bool, str, Input | None, LookWrite | None]:
        if self.notifier is None:
            return (True, "", None, None)
        message = {
            "run_id": self.run_id,
            "event": effect.event,
            "key": effect.key,
            "summary": effect.summary,
            "severity": effect.severity,
            "step": effect.step,
            "steps": len(self.plan.steps),
            "weight": effect.weight,
            "status": self.state.status,
            "at": self.clock.now(),
        }
        errors: list[str] = []
        for channel in self.notifier.channels():
            if self.store.notification_sent(self.run_id, effect.key, channel):
                continue  # sent before a crash: the resumed run does not send it twice
            try:
                ok, payload, error = self.notifier.send(channel, message)
            except Exception as exc:  # a notifier never blocks a decision
                ok, payload, error = False, {}, f"{type(exc).__name__}: {exc}"
            self.store.record_notification(
                self.run_id,
                key=effect.key,
                channel=channel,
                event=effect.event,
                ok=ok,
                at=self.clock.now(),
                payload=payload,
                error=error,
            )
            if not ok:
                errors.append(f"{channel}: {error}")
        return (not errors, "; ".join(errors), None, None)

    def _capture(self) -> tuple[bool, str, Input | None, LookWrite | None]:
        if self.diagnostics is None:
            return (True, "", None, None)
        try:
            captured = self.diagnostics.capture()
        except Exception as exc:  # diagnostics are a courtesy; the rollback has happened already
            return (False, f"{type(exc).__name__}: {exc}", None, None)
        for c in captured:
            self.store.record_diagnostic(
                self.run_id,
                name=c.name,
                url=c.url,
                at=self.clock.now(),
                data=c.data,
                content_type=c.content_type,
                truncated=c.truncated,
                error=c.error,
            )
        errors = [f"{c.name}: {c.error}" for c in captured if c.error]
        return (not errors, "; ".join(errors), None, None)

    def _rollback(self) -> tuple[bool, str, Input | None, LookWrite | None]:
        # Every part is attempted even when an earlier one fails: faults are undone and load is
        # stopped even if the router does not answer, and the other way round.
        errors: list[str] = []
        for name, call in (
            ("set_weight(0)", lambda: self.router.set_weight(0)),
            ("set_mirror(0)", lambda: self.router.set_mirror(0)),
            # Faults before load: stopping Locust waits for its last batch; a fault must not wait.
            ("undo faults", (self.chaos.stop_all if self.chaos is not None else _nothing)),
            ("stop load", (self.load.stop if self.load is not None else _nothing)),
        ):
            err = self._retry(call)
            if err:
                errors.append(f"{name}: {err}")
        now = self.clock.now()
        if errors:
            error = "; ".join(errors)
            log.error("run %s: rollback incomplete (will retry): %s", self.run_id, error)
            return (False, error, EffectFailed(at=now, effect="rollback", error=error), None)
        return (True, "", RolledBack(at=now), None)

    # -------------------------------------------------------------------------------- helpers

    def _retry(self, call: Callable[[], object]) -> str:
        """Call up to ``retries`` times; '' on success, else the last error."""
        error = ""
        for attempt in range(self.retries):
            try:
                call()
                return ""
            except Exception as exc:  # drivers raise their own errors; all are retried the same
                error = f"{type(exc).__name__}: {exc}"[:2000]
                log.warning("run %s: attempt %d failed: %s", self.run_id, attempt + 1, error)
                if attempt + 1 < self.retries:
                    self.clock.sleep(self.retry_delay * (2**attempt))
        return error

    @staticmethod
    def _once(call: Callable[[], object]) -> str:
        try:
            call()
            return ""
        except Exception as exc:  # starting load or chaos twice is worse than failing once
            return f"{type(exc).__name__}: {exc}"[:2000]

    def _point(self, name: str) -> None:
        if self._hook is not None:
            self._hook(name)


def _outcome(error: str, failed: Input) -> tuple[bool, str, Input | None, LookWrite | None]:
    return (True, "", None, None) if not error else (False, error, failed, None)


def _nothing() -> None:
    return None
