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

The runner is driven from outside: ``advance(now)`` does what is due and returns when to call it
again; ``run()`` is the CLI's thin loop over it and ``clock.sleep``. It imports no driver: what it
needs is stated in ``gate.engine.ports`` and handed in by the composition (``gate.compose``).

Driver calls go through ``gate.errors.retry_call`` (``EFFECT_RETRY``: bounded attempts and total
time; a permanent error is not retried). Rollback is never blocked: every part is attempted each
time; a rollback that still fails is repeated by the machine on every tick, until it holds or the
machine gives up on it (a permanent error, or its attempt budget): ``rollback_failed``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from gate.engine import codec
from gate.engine.clock import Clock
from gate.engine.machine import (
    Abort,
    Applied,
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
from gate.engine.ports import (
    ChaosPort,
    DiagnosticsPort,
    EvidencePort,
    LoadPort,
    LookOutcome,
    LookRequest,
    LookWrite,
    NotifierPort,
    RouterPort,
    StorePort,
)
from gate.errors import RetryPolicy, is_permanent, retry_call

# The engine's ports, re-exported for callers of the runner (tests, faces).
Analyst = EvidencePort
__all__ = ["Analyst", "Crash", "LookOutcome", "LookRequest", "LookWrite", "Observer", "Runner"]

log = logging.getLogger(__name__)

# Driver calls of an effect: a few attempts within a few seconds (the operator's worker thread and the
# CLI's loop wait that long at most); a rollback that still fails is attempted again on later ticks.
EFFECT_RETRY = RetryPolicy(attempts=3, total=10.0, initial=0.5, maximum=4.0)
MAX_INPUTS_PER_ADVANCE = 200  # inputs consumed by one advance() before it returns (due again at once)


class Crash(BaseException):
    """Raised by a test's crash hook to stop the runner dead (like a kill) at a chosen point."""


Observer = Callable[[int, Input, State, list[Effect]], None]


# ------------------------------------------------------------------------------------------ runner


class Runner:
    """Carries one run from its store record to the end, resuming whatever was left undone.

    Driven from outside: ``advance(now)`` does what is due and returns when to call it again.
    """

    def __init__(
        self,
        store: StorePort,
        run_id: str,
        *,
        router: RouterPort,
        analyst: EvidencePort,
        clock: Clock,
        load: LoadPort | None = None,
        chaos: ChaosPort | None = None,
        notifier: NotifierPort | None = None,
        diagnostics: DiagnosticsPort | None = None,
        retry: RetryPolicy | None = None,
        retries: int | None = None,
        retry_delay: float | None = None,
        hook: Callable[[str], None] | None = None,
        observer: Observer | None = None,
        on_look: Callable[[LookRequest, LookOutcome], None] | None = None,
        on_retry: Callable[[str, int, str, float], None] | None = None,
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
        policy = retry or EFFECT_RETRY
        if retries is not None or retry_delay is not None:  # the older keywords, kept for callers
            policy = RetryPolicy(
                attempts=max(1, retries if retries is not None else policy.attempts),
                total=policy.total,
                initial=policy.initial if retry_delay is None else retry_delay,
                maximum=policy.maximum if retry_delay is None else max(retry_delay * 8, 0.0),
            )
        self.retry = policy
        self._hook = hook
        self._observer = observer
        self._on_look = on_look
        self._on_retry = on_retry
        self.last_permanent = False  # whether the last failed driver call failed for good
        self._next_tick: float | None = None
        self._recovered = False
        self._soon: list[Abort | Resume] = []
        self._soon_lock = threading.Lock()

    @classmethod
    def create(
        cls,
        store: StorePort,
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
        """Record a new run in the store and return its runner (nothing happens until ``advance``)."""
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

    # ----------------------------------------------------------------------------------- advance

    def advance(self, now: float) -> float | None:
        """Do what is due at ``now``; return the clock time when something is next due (None: the run
        is over). Never sleeps by itself (a driver call's retries wait at most ``retry.total``).

        In order: re-apply the effects a previous runner left intended and not done (first call only),
        start a pending run, take in the requests queued by ``request_soon``, consume every input
        waiting in the store's inbox (effect results, people's requests), and tick when the policy's
        interval is due. ``now`` times the tick; results of effects carry the clock's time.
        """
        return self._advance(now, None)

    def _advance(self, now: float, budget: int | None) -> float | None:
        start_seq = self.seq
        if not self._recovered:
            self.recover()
            self._recovered = True
        if self.state.phase == "pending" and not self.state.terminal:
            self.feed(Start(at=now))
            start_seq = self.seq  # a budget counts what follows the start
        ticked = False
        consumed = 0
        while not self.state.terminal:
            if budget is not None and self.seq - start_seq >= budget:
                return now
            self._drain_soon()
            if consumed < MAX_INPUTS_PER_ADVANCE and self._consume_one():
                consumed += 1
                continue
            if consumed >= MAX_INPUTS_PER_ADVANCE:
                return now  # more waiting: due again at once, but let the caller breathe
            if self._next_tick is None:
                self._next_tick = now + self.plan.policy.interval
            if now >= self._next_tick and not ticked:
                # Falling behind (a slow look) does not queue up ticks: one now, the next an interval on.
                self._next_tick = max(self._next_tick + self.plan.policy.interval, now)
                self.feed(Tick(at=now))
                ticked = True
                continue
            return self._next_tick
        return None

    def run(
        self, *, max_transitions: int | None = None, stop_when: Callable[[State], bool] | None = None
    ) -> State:
        """Run (or resume) until the run is finished (or ``stop_when`` says so): a loop over
        ``advance`` and ``clock.sleep`` (which a person's request may end early); returns the state."""
        if not self._recovered:
            self.recover()  # also for a run that ended: its last effects may not have been carried out
        if self.state.phase == "pending":
            self.feed(Start(at=self.clock.now()))
        start_seq = self.seq
        while not self.state.terminal:
            if stop_when is not None and stop_when(self.state):
                break
            budget = None if max_transitions is None else max_transitions - (self.seq - start_seq)
            if budget is not None and budget <= 0:
                break
            due = self._advance(self.clock.now(), budget)
            if due is None:
                break
            wait = due - self.clock.now()
            if wait > 0 and not self._has_soon():
                self.clock.sleep(wait)
        return self.state

    def request_soon(self, event: Abort | Resume) -> None:
        """Ask for an abort or resume from another thread or a signal handler (no I/O here)."""
        with self._soon_lock:
            self._soon.append(event)
        wake = getattr(self.clock, "wake", None)
        if callable(wake):
            wake()

    def _has_soon(self) -> bool:
        with self._soon_lock:
            return bool(self._soon)

    def _drain_soon(self) -> None:
        with self._soon_lock:
            pending, self._soon = self._soon, []
        for event in pending:
            self.request(event)

    def recover(self) -> None:
        """Apply effects a previous runner recorded as intended and did not finish."""
        self._recovered = True
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
        if isinstance(effect, SetWeight | SetMirror):
            # The step's clock and its evidence window start when the router confirms: Applied.
            percent, kind = effect.percent, effect.kind
            change = self.router.set_weight if isinstance(effect, SetWeight) else self.router.set_mirror
            err = self._retry(lambda: change(percent), f"{kind}({percent})")
            if err:
                failed = EffectFailed(at=now(), effect=kind, error=err, permanent=self.last_permanent)
                return (False, err, failed, None)
            return (True, "", Applied(at=now(), effect=kind, percent=percent), None)
        if isinstance(effect, StartLoad):
            if self.load is None:
                return _outcome("no load driver", EffectFailed(now(), effect.kind, "no load driver"))
            load, step, duration = self.load, effect.step, effect.duration
            err = self._once(lambda: load.start(step, duration))
            return _outcome(err, EffectFailed(at=now(), effect=effect.kind, error=err))
        if isinstance(effect, StopLoad):
            err = "" if self.load is None else self._retry(self.load.stop, "stop load")
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
            err = self._retry(lambda: chaos.stop(name), f"stop chaos {name}")
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
            drivers=decision_basis(outcome),
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
        permanent = False
        for name, call in (
            ("set_weight(0)", lambda: self.router.set_weight(0)),
            ("set_mirror(0)", lambda: self.router.set_mirror(0)),
            # Faults before load: stopping Locust waits for its last batch; a fault must not wait.
            ("undo faults", (self.chaos.stop_all if self.chaos is not None else _nothing)),
            ("stop load", (self.load.stop if self.load is not None else _nothing)),
        ):
            err = self._retry(call, f"rollback: {name}")
            if err:
                errors.append(f"{name}: {err}")
                permanent = permanent or self.last_permanent
        now = self.clock.now()
        if errors:
            error = "; ".join(errors)
            log.error("run %s: rollback incomplete (permanent: %s): %s", self.run_id, permanent, error)
            failed = EffectFailed(at=now, effect="rollback", error=error, permanent=permanent)
            return (False, error, failed, None)
        return (True, "", RolledBack(at=now), None)

    # -------------------------------------------------------------------------------- helpers

    def _retry(self, call: Callable[[], object], what: str = "") -> str:
        """Call through the one retry policy; '' on success, else the last error. A permanent error
        (``gate.errors.is_permanent``) is not retried; ``self.last_permanent`` says which it was."""
        self.last_permanent = False

        def told(attempt: int, exc: BaseException, wait: float) -> None:
            if self._on_retry is not None:
                self._on_retry(what, attempt, f"{type(exc).__name__}: {exc}"[:300], wait)

        try:
            retry_call(call, policy=self.retry, sleep=self.clock.sleep, on_retry=told, what=what or "effect")
            return ""
        except Exception as exc:  # drivers raise their own errors; the policy decided to give up
            self.last_permanent = is_permanent(exc)
            return f"{type(exc).__name__}: {exc}"[:2000]

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


def decision_basis(outcome: LookOutcome, limit: int = 20) -> tuple[str, ...]:
    """The verdicts a look's decision rests on, as "objective@source=status" (at most ``limit``).

    A rollback on evidence rests on the failed verdicts; a rollback or hold on unknowns on the
    inconclusive and error ones; a promotion on every verdict (each passed or was tolerated)."""
    wanted: set[str]
    if outcome.action == "rollback" and outcome.basis == "evidence":
        wanted = {"fail"}
    elif outcome.action == "rollback" and outcome.basis == "errors":
        wanted = {"error"}
    elif outcome.action in {"rollback", "hold"}:
        wanted = {"inconclusive", "error"}
    else:
        wanted = {"pass", "fail", "inconclusive", "error"}
    out: list[str] = []
    for v in outcome.verdicts:
        status = str(v.get("status", ""))
        if status not in wanted:
            continue
        mark = " (critical)" if v.get("critical") else ""
        out.append(f"{str(v.get('objective', ''))[:120]}@{str(v.get('source', ''))[:20]}={status}{mark}")
    if len(out) > limit:
        out = [*out[:limit], f"… and {len(out) - limit} more"]
    return tuple(out)


def _outcome(error: str, failed: Input) -> tuple[bool, str, Input | None, LookWrite | None]:
    return (True, "", None, None) if not error else (False, error, failed, None)


def _nothing() -> None:
    return None
