"""The rollout state machine: ``transition(plan, state, input) -> (state, effects)``.

Pure: no I/O, no clock, no drivers. Time arrives inside the inputs; what must happen in the
world leaves as effects, which the runner (``gate.engine.runner``) checkpoints and applies.

The rules, in words (docs/engine.md has the long form):

- Steps run in order. ``setWeight`` and ``mirror`` finish when the router confirms the change
  (``Applied``): the next step's clock and the evidence window start then, never before, and no
  look is taken while a traffic change is on its way (a window never mixes two weights); ``pause``
  waits its duration;
  ``analyze``, ``load`` and ``chaos`` are *gating* steps: they finish only when their minimum
  duration is over AND a look taken after it says ``promote``.
- Every tick while the canary sees traffic (or a gating step runs) the machine asks for a look
  (``Measure``): the judge's decision is anytime-valid, so a ``rollback`` decision acts at once,
  whatever the step and however early in it (``failure_limit`` failed looks are tolerated first).
- Never promote on what is not known: an inconclusive look or a failed analysis only holds the
  step; past the step's minimum duration they are counted, and past the policy's limits the run
  is held for a human (``onInconclusive: hold``) or rolled back (``onInconclusive: rollback``).
- Past the deadline a run that has not finished is rolled back.
- A rollback (weight 0, mirror off, load stopped, faults undone) is never blocked: each attempt
  tries every part; a failed attempt is repeated on the next tick — until a part fails for good
  (a permanent error: 403, 404, invalid) or ``rollback_attempts`` attempts have failed: then the run
  ends ``rollback_failed`` ("traffic may still reach the canary") for a person, instead of looping.
- Every decision keeps its basis: the verdicts (objective@source=status, look) that drove it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal, TypeAlias

StepKind: TypeAlias = Literal["setWeight", "pause", "analyze", "load", "chaos", "mirror"]
Phase: TypeAlias = Literal["pending", "stepping", "finishing", "rolling_back", "finished"]
RunStatus: TypeAlias = Literal["running", "promoted", "rolled_back", "held", "failed", "rollback_failed"]
Action: TypeAlias = Literal["promote", "hold", "rollback"]
# Why a rollback began: the evidence (a failed look), a person, the policy on unknowns, time, a driver.
Cause: TypeAlias = Literal["verdict", "abort", "inconclusive", "errors", "deadline", "driver"]
Event: TypeAlias = Literal[
    "started", "advanced", "held", "resumed", "rolling_back", "rolled_back", "rollback_failed", "promoted"
]

GATING_KINDS: frozenset[str] = frozenset({"analyze", "load", "chaos"})
LATE_SECONDS = 1.0  # a traffic change confirmed this long after it was asked is reported as late


# --------------------------------------------------------------------------------------------- plan


@dataclass(frozen=True)
class StepPlan:
    """One step as the engine sees it (built from the contract's steps by ``gate.engine.plan``)."""

    kind: StepKind
    weight: int | None = None  # setWeight: canary percent
    percent: int | None = None  # mirror: percent of requests mirrored to the canary
    duration: float | None = None  # seconds; None on a pause means "until a person resumes"
    experiment: str | None = None  # chaos: the experiment's name in the contract

    @property
    def gating(self) -> bool:
        """Whether the step ends only on a ``promote`` look taken after its minimum duration."""
        return self.kind in GATING_KINDS

    def label(self) -> str:
        """The step in a few words, for timelines and notifications."""
        if self.kind == "setWeight":
            return f"setWeight {self.weight}%"
        if self.kind == "mirror":
            return f"mirror {self.percent}%"
        if self.kind == "chaos":
            return f"chaos {self.experiment} for {_secs(self.duration)}"
        return f"{self.kind} {_secs(self.duration)}"


@dataclass(frozen=True)
class PolicyPlan:
    """The parts of the contract's policy the machine acts on."""

    interval: float = 5.0  # seconds between ticks (re-evaluation)
    deadline: float | None = None  # seconds from start; an unfinished run is rolled back after it
    on_inconclusive: Literal["hold", "rollback"] = "hold"
    # The engine's own counts of LOOKS (the contract's failureLimit, inconclusiveLimit and errorLimit
    # count VERDICTS within one look and are applied by the judge; docs/contracts.md).
    failed_looks: int = 0  # looks the judge said roll back that are tolerated (0: the first acts)
    undecided_looks: int = 3  # looks at a step's end that may stay undecided before onInconclusive
    blind_looks: int = 3  # looks in a row that could not be made (or judged) before onInconclusive
    rollback_attempts: int = 5  # failed rollback attempts (one per tick) before ``rollback_failed``
    # Seconds a traffic change may take to be confirmed: a change that failed for a temporary reason
    # (409, 429, 5xx, a stuck API server) is asked again on every tick until then; past it, rollback.
    change_timeout: float = 120.0
    finish_route: bool = False  # leave the router's end state (``Router.finish``): hand-over, clean-up
    diagnostics: bool = False  # capture diagnostics from the canary when the evidence fails it


@dataclass(frozen=True)
class Plan:
    """What the machine carries out: steps in order and the policy."""

    steps: tuple[StepPlan, ...]
    policy: PolicyPlan = field(default_factory=PolicyPlan)


# -------------------------------------------------------------------------------------------- state


@dataclass(frozen=True)
class State:
    """Everything the machine knows; checkpointed whole after every transition."""

    phase: Phase = "pending"
    status: RunStatus = "running"
    step: int = 0  # index of the current step; == len(steps) once all are done
    started_at: float | None = None
    step_started_at: tuple[float | None, ...] = ()
    weight: int = 0  # canary weight gate has set
    mirror: int = 0  # mirror percent gate has set
    load: bool = False  # gate's synthetic load runs
    chaos: str | None = None  # the experiment running
    window_start: float | None = None  # evidence window: since the canary's traffic last changed
    looks: int = 0  # looks asked for (Measure effects)
    failed: int = 0  # failed looks since the last conclusion
    inconclusive: int = 0  # inconclusive looks in this step while waiting for a conclusion
    errors: int = 0  # consecutive failed analyses (looks that raised, or verdicts in Error)
    last_action: Action | None = None
    reason: str = ""
    cause: Cause | None = None
    rollback_inflight: bool = False
    rollback_attempts: int = 0
    chaos_cleanup: tuple[str, ...] = ()  # experiments whose stop failed; retried every tick
    finished_at: float | None = None
    applying: str | None = None  # the traffic change asked and not yet confirmed ("set_weight", "set_mirror")
    applying_since: float | None = None  # when it was asked
    late: float = 0.0  # seconds the last traffic change took to take effect after it was asked
    change_retry: bool = False  # the traffic change failed for a temporary reason: ask again next tick
    basis: tuple[str, ...] = ()  # the verdicts the last decision rests on: "look N: objective@source=status"
    finish_inflight: bool = False  # a FinishRoute asked and not yet answered

    @property
    def terminal(self) -> bool:
        """True once the run is over (promoted, rolled back or failed)."""
        return self.phase == "finished"


# ------------------------------------------------------------------------------------------- inputs


@dataclass(frozen=True)
class Start:
    """Begin the run."""

    at: float
    kind: Literal["start"] = "start"


@dataclass(frozen=True)
class Tick:
    """Time passed (one policy interval)."""

    at: float
    kind: Literal["tick"] = "tick"


@dataclass(frozen=True)
class Judged:
    """The outcome of a look: the judge's decision on the evidence so far."""

    at: float
    look: int
    action: Action
    reason: str
    errors: bool = False  # some verdicts were Error (could not be computed)
    # What a rollback decision rests on: failed verdicts, or the policy on unknowns (the judge's
    # onInconclusive at the end of a step, or errors beyond its limit).
    basis: Literal["evidence", "inconclusive", "errors"] = "evidence"
    # The verdicts the decision rests on, "objective@source=status" (the runner picks them).
    drivers: tuple[str, ...] = ()
    kind: Literal["judged"] = "judged"


@dataclass(frozen=True)
class Applied:
    """The router confirmed a traffic change (``effect``: set_weight or set_mirror) at ``at``."""

    at: float
    effect: str
    percent: int
    kind: Literal["applied"] = "applied"


@dataclass(frozen=True)
class RouteFinished:
    """The router's answer to ``FinishRoute``: ``done`` once its end state is in place."""

    at: float
    done: bool
    detail: str = ""
    kind: Literal["route_finished"] = "route_finished"


@dataclass(frozen=True)
class LookFailed:
    """A look could not be made: measuring or judging raised."""

    at: float
    look: int
    error: str
    kind: Literal["look_failed"] = "look_failed"


@dataclass(frozen=True)
class EffectFailed:
    """A driver failed to carry out an effect."""

    at: float
    effect: str  # the effect's kind
    error: str
    detail: str = ""  # e.g. the chaos experiment's name
    permanent: bool = False  # retrying cannot help (403, 404, invalid): a rollback then ends rollback_failed
    kind: Literal["effect_failed"] = "effect_failed"


@dataclass(frozen=True)
class RolledBack:
    """The rollback took effect (router at weight 0, mirror off, faults undone, load stopped)."""

    at: float
    kind: Literal["rolled_back"] = "rolled_back"


@dataclass(frozen=True)
class Resume:
    """A person approves: a held run continues, an open-ended pause ends."""

    at: float
    by: str = ""
    reason: str = ""
    kind: Literal["resume"] = "resume"


@dataclass(frozen=True)
class Abort:
    """A person (or the CLI on Ctrl-C) stops the run: roll back."""

    at: float
    by: str = ""
    reason: str = ""
    kind: Literal["abort"] = "abort"


Input: TypeAlias = (
    Start | Tick | Applied | Judged | LookFailed | EffectFailed | RolledBack | RouteFinished | Resume | Abort
)


# ------------------------------------------------------------------------------------------ effects


@dataclass(frozen=True)
class SetWeight:
    """Route ``percent`` of production traffic to the canary (idempotent)."""

    percent: int
    kind: Literal["set_weight"] = "set_weight"


@dataclass(frozen=True)
class SetMirror:
    """Mirror ``percent`` of production requests to the canary (idempotent; 0 = off)."""

    percent: int
    kind: Literal["set_mirror"] = "set_mirror"


@dataclass(frozen=True)
class StartLoad:
    """Start gate's synthetic load for ``duration`` seconds (a repeat replaces the running one)."""

    step: int
    duration: float
    kind: Literal["start_load"] = "start_load"


@dataclass(frozen=True)
class StopLoad:
    """Stop gate's synthetic load (idempotent)."""

    kind: Literal["stop_load"] = "stop_load"


@dataclass(frozen=True)
class StartChaos:
    """Start a chaos experiment for ``duration`` seconds (its faults are recorded before injection)."""

    experiment: str
    step: int
    duration: float
    kind: Literal["start_chaos"] = "start_chaos"


@dataclass(frozen=True)
class StopChaos:
    """Stop a chaos experiment and undo its faults (idempotent)."""

    experiment: str
    kind: Literal["stop_chaos"] = "stop_chaos"


@dataclass(frozen=True)
class Measure:
    """Take a look: measure the evidence since ``since`` and judge it."""

    look: int
    step: int
    since: float
    at: float
    chaos: str | None = None  # the experiment running, for objectives bound to it (``during``)
    sources: tuple[str, ...] = ()  # the traffic sources the canary sees now
    final: bool = False  # the step waits for a conclusion: unknowns now count
    kind: Literal["measure"] = "measure"


@dataclass(frozen=True)
class Notify:
    """Tell people (webhook, Slack, PagerDuty); ``key`` makes a repeat a no-op."""

    event: Event
    key: str
    summary: str
    step: int
    weight: int
    severity: Literal["info", "warning", "critical"] = "info"
    kind: Literal["notify"] = "notify"


@dataclass(frozen=True)
class CaptureDiagnostics:
    """Capture the canary's diagnostics (profiles, dumps) and keep them with the run."""

    reason: str
    kind: Literal["capture_diagnostics"] = "capture_diagnostics"


@dataclass(frozen=True)
class Rollback:
    """Weight 0, mirror off, load stopped, every fault undone (idempotent, retried until it holds)."""

    reason: str
    attempt: int
    kind: Literal["rollback"] = "rollback"


@dataclass(frozen=True)
class FinishRoute:
    """Leave the router's end state for ``outcome`` (mirror off, gate's bookkeeping gone; promoted: the
    contract's hand-over). Idempotent; asked again on each tick until the router says it is done."""

    outcome: Literal["promoted", "rolled_back"]
    kind: Literal["finish_route"] = "finish_route"


Effect: TypeAlias = (
    FinishRoute
    | SetWeight
    | SetMirror
    | StartLoad
    | StopLoad
    | StartChaos
    | StopChaos
    | Measure
    | Notify
    | CaptureDiagnostics
    | Rollback
)


# -------------------------------------------------------------------------------------- transition


def transition(plan: Plan, state: State, event: Input) -> tuple[State, list[Effect]]:
    """The next state and the effects that bring the world there. Total: any input in any state."""
    if state.phase == "finished":
        return state, []
    if state.phase == "pending":
        if isinstance(event, Start):
            return _start(plan, state, event.at)
        if isinstance(event, Abort):
            # Nothing was changed yet, but a rollback is cheap and makes "aborted" mean one thing.
            return _begin_rollback(plan, state, "abort", _who("aborted", event.by, event.reason))
        return state, []
    if state.phase == "rolling_back":
        return _rolling_back(plan, state, event)
    if state.phase == "finishing":
        return _finishing(plan, state, event)
    return _stepping(plan, state, event)


def _start(plan: Plan, state: State, at: float) -> tuple[State, list[Effect]]:
    state = replace(
        state,
        phase="stepping",
        status="running",
        started_at=at,
        step_started_at=tuple(None for _ in plan.steps),
        window_start=at,
        reason="started",
    )
    effects: list[Effect] = [_notify(state, "started", f"rollout started: {len(plan.steps)} steps")]
    state, more = _enter_steps(plan, state, at)
    return state, effects + more


def _stepping(plan: Plan, state: State, event: Input) -> tuple[State, list[Effect]]:
    at = event.at
    deadline = plan.policy.deadline
    if deadline is not None and state.started_at is not None and at - state.started_at >= deadline:
        return _begin_rollback(
            plan, state, "deadline", f"deadline of {_secs(deadline)} passed before the end"
        )

    if isinstance(event, Tick):
        return _tick(plan, state, at)
    if isinstance(event, Applied):
        return _applied(plan, state, event)
    if isinstance(event, Judged):
        return _judged(plan, state, event)
    if isinstance(event, LookFailed):
        return _look_failed(plan, state, event)
    if isinstance(event, EffectFailed):
        return _effect_failed(plan, state, event)
    if isinstance(event, Abort):
        return _begin_rollback(plan, state, "abort", _who("aborted", event.by, event.reason))
    if isinstance(event, Resume):
        return _resume(plan, state, event)
    # Start and RolledBack mean nothing while stepping.
    return state, []


def _tick(plan: Plan, state: State, at: float) -> tuple[State, list[Effect]]:
    effects: list[Effect] = [StopChaos(name) for name in state.chaos_cleanup]
    state = replace(state, chaos_cleanup=())
    if state.status == "running":
        state, more = _advance_timed(plan, state, at)
        effects += more
        if state.phase != "stepping":
            return state, effects
    if state.applying is not None and state.change_retry:
        effect: Effect = (
            SetWeight(state.weight) if state.applying == "set_weight" else SetMirror(state.mirror)
        )
        effects.append(effect)
        state = replace(state, change_retry=False)
    if state.applying is None and _observing(plan, state):
        look = state.looks + 1
        state = replace(state, looks=look)
        since = state.window_start if state.window_start is not None else at
        effects.append(
            Measure(
                look=look,
                step=state.step,
                since=since,
                at=at,
                chaos=state.chaos,
                sources=_sources(state),
                final=_waiting_for_conclusion(plan, state, at),
            )
        )
    return state, effects


def _observing(plan: Plan, state: State) -> bool:
    """Whether a look is worth taking: the canary sees traffic or a gating step waits for evidence."""
    if state.weight > 0 or state.mirror > 0 or state.load or state.chaos is not None:
        return True
    return state.step < len(plan.steps) and plan.steps[state.step].gating


def _sources(state: State) -> tuple[str, ...]:
    """Which kinds of traffic reach the canary now: only those can be judged."""
    out: list[str] = []
    if state.load:
        out.append("synthetic")
    if state.mirror > 0:
        out.append("shadow")
    if state.weight > 0:
        out.append("production")
    return tuple(out)


def _advance_timed(plan: Plan, state: State, at: float) -> tuple[State, list[Effect]]:
    """A pause whose time is up ends on the tick (no evidence needed to wait)."""
    if state.step >= len(plan.steps):
        return state, []
    step = plan.steps[state.step]
    # A pause needs no conclusion, but it does not end while the analysis is blind (the last look
    # failed): what follows a pause is usually more traffic to the canary.
    if (
        step.kind == "pause"
        and step.duration is not None
        and _elapsed(state, at) >= step.duration
        and state.errors == 0
    ):
        return _leave_step(plan, state, at, "pause over")
    return state, []


def _judged(plan: Plan, state: State, event: Judged) -> tuple[State, list[Effect]]:
    if event.look != state.looks:
        return state, []  # an answer to an older question; the newer look decides
    basis = tuple(f"look {event.look}: {d}" for d in event.drivers)
    state = replace(state, last_action=event.action, reason=event.reason, basis=basis)
    if event.action == "hold" and event.errors:
        # Verdicts the judge could not compute: the analysis is partly blind, whatever the step.
        return _count_error(plan, state, event.reason)
    state = replace(state, errors=0)  # a look that worked ends a run of failed analyses
    if event.action == "rollback" and event.basis != "evidence":
        # The judge already applied the contract's limits on unknowns: nothing failed, nothing is known.
        return _begin_rollback(plan, state, event.basis, event.reason)
    if event.action == "rollback":
        failed = state.failed + 1
        state = replace(state, failed=failed, errors=0)
        if failed > plan.policy.failed_looks:
            return _begin_rollback(plan, state, "verdict", event.reason)
        return state, []
    waiting = _waiting_for_conclusion(plan, state, event.at)
    if event.action == "hold":
        if not waiting:
            return state, []  # evidence still accumulating, or a pause that needs none
        return _count_inconclusive(plan, state, event.reason)
    # promote
    state = replace(state, errors=0, inconclusive=0)
    if waiting and state.status == "running":
        return _leave_step(plan, state, event.at, event.reason)
    return state, []


def _applied(plan: Plan, state: State, event: Applied) -> tuple[State, list[Effect]]:
    """A traffic change took effect: its step ends and the evidence window starts now."""
    if state.applying is None or event.effect != state.applying:
        return state, []  # a repeat (an effect re-applied after a crash): already taken in
    step = plan.steps[state.step] if state.step < len(plan.steps) else None
    asked = state.applying_since if state.applying_since is not None else event.at
    late = max(0.0, event.at - asked)
    label = step.label() if step is not None else event.effect
    reason = f"{label} took effect" + (f" {late:.1f}s after it was asked" if late >= LATE_SECONDS else "")
    state = replace(
        state,
        applying=None,
        applying_since=None,
        change_retry=False,
        late=late,
        window_start=event.at,
        step=state.step + 1,
        reason=reason,
    )
    return _enter_steps(plan, state, event.at)


def _look_failed(plan: Plan, state: State, event: LookFailed) -> tuple[State, list[Effect]]:
    if event.look != state.looks:
        return state, []
    # Counted in every step: a blind gate must not carry on for long, whatever the step.
    state = replace(state, basis=(f"look {event.look}: no verdict (the look failed)",))
    return _count_error(plan, state, f"analysis failed: {event.error}")


def _count_inconclusive(plan: Plan, state: State, reason: str) -> tuple[State, list[Effect]]:
    n = state.inconclusive + 1
    state = replace(state, inconclusive=n, errors=0)
    if n > plan.policy.undecided_looks:
        return _unknowns_exhausted(plan, state, "inconclusive", f"{n} inconclusive looks: {reason}")
    return state, []


def _count_error(plan: Plan, state: State, reason: str) -> tuple[State, list[Effect]]:
    n = state.errors + 1
    state = replace(state, errors=n)
    if n > plan.policy.blind_looks:
        return _unknowns_exhausted(plan, state, "errors", f"{n} failed analyses: {reason}")
    return state, []


def _unknowns_exhausted(plan: Plan, state: State, cause: Cause, reason: str) -> tuple[State, list[Effect]]:
    """Past the limits on unknowns: the policy says hold (for a person) or roll back."""
    if plan.policy.on_inconclusive == "rollback":
        return _begin_rollback(plan, state, cause, reason)
    if state.status == "held":
        return state, []
    state = replace(state, status="held", reason=reason)
    return state, [_notify(state, "held", f"held for a person: {reason}", severity="warning")]


def _waiting_for_conclusion(plan: Plan, state: State, at: float) -> bool:
    """A gating step past its minimum duration: it needs a conclusion to go on."""
    if state.step >= len(plan.steps):
        return False
    step = plan.steps[state.step]
    return step.gating and _elapsed(state, at) >= (step.duration or 0.0)


def _effect_failed(plan: Plan, state: State, event: EffectFailed) -> tuple[State, list[Effect]]:
    if event.effect in {"notify", "capture_diagnostics", "measure"}:
        return state, []  # never block a decision on them (a failed measure arrives as LookFailed)
    if event.effect == "stop_chaos":
        # Faults must be undone: keep trying on every tick; the run itself may go on.
        name = event.detail or (state.chaos or "")
        return replace(state, chaos_cleanup=(*state.chaos_cleanup, name)), []
    if event.effect == state.applying and not event.permanent:
        # A traffic change that may still go through (409, 429, 5xx, a stuck API server): asked again
        # on the next tick, no look taken meanwhile, until the policy's change_timeout.
        asked = state.applying_since if state.applying_since is not None else event.at
        waited = event.at - asked
        if waited < plan.policy.change_timeout:
            step = plan.steps[state.step] if state.step < len(plan.steps) else None
            label = step.label() if step is not None else event.effect
            reason = (
                f"{label} not confirmed after {waited:.1f}s ({event.error}); trying again on the next tick "
                f"(rollback after {_secs(plan.policy.change_timeout)})"
            )
            return replace(state, change_retry=True, reason=reason[:2000]), []
        return _begin_rollback(
            plan,
            state,
            "driver",
            f"{event.effect} not confirmed within {_secs(plan.policy.change_timeout)}: {event.error}",
        )
    # The plan cannot be carried out (router, load or chaos would not start): back to safety.
    return _begin_rollback(plan, state, "driver", f"{event.effect} failed: {event.error}")


def _resume(plan: Plan, state: State, event: Resume) -> tuple[State, list[Effect]]:
    who = _who("resumed", event.by, event.reason)
    if state.status == "held":
        state = replace(state, status="running", inconclusive=0, errors=0, failed=0, reason=who)
        return state, [_notify(state, "resumed", who)]
    step = plan.steps[state.step] if state.step < len(plan.steps) else None
    if step is not None and step.kind == "pause" and step.duration is None:
        return _leave_step(plan, state, event.at, who)
    return state, []


# --------------------------------------------------------------------------------------- stepping


def _leave_step(plan: Plan, state: State, at: float, reason: str) -> tuple[State, list[Effect]]:
    """End the current step (stopping what it started) and enter the next ones."""
    step = plan.steps[state.step]
    effects: list[Effect] = []
    if step.kind == "load" and state.load:
        effects.append(StopLoad())
        state = replace(state, load=False)
    if step.kind == "chaos" and state.chaos is not None:
        effects.append(StopChaos(state.chaos))
        # Evidence taken under the fault says nothing about the canary without it.
        state = replace(state, chaos=None, window_start=at)
    # A gating step ends on a conclusion, which clears the counts; a pause's end is only time passing,
    # so failed looks counted during it still count towards the failure limit.
    failed = 0 if step.gating else state.failed
    state = replace(
        state, step=state.step + 1, failed=failed, inconclusive=0, errors=0, last_action=None, reason=reason
    )
    effects.append(_notify(state, "advanced", f"step {state.step}/{len(plan.steps)} done: {reason}"))
    state, more = _enter_steps(plan, state, at)
    return state, effects + more


def _enter_steps(plan: Plan, state: State, at: float) -> tuple[State, list[Effect]]:
    """Enter the current step; steps that finish at once (weights, mirror) are passed through."""
    effects: list[Effect] = []
    while state.step < len(plan.steps):
        index = state.step
        step = plan.steps[index]
        started = list(state.step_started_at)
        started[index] = at
        state = replace(state, step_started_at=tuple(started))
        if step.kind == "setWeight":
            weight = step.weight or 0
            effects.append(SetWeight(weight))
            # The step ends when the router confirms (Applied); the next one starts then.
            return replace(state, weight=weight, applying="set_weight", applying_since=at), effects
        if step.kind == "mirror":
            percent = step.percent or 0
            effects.append(SetMirror(percent))
            return replace(state, mirror=percent, applying="set_mirror", applying_since=at), effects
        if step.kind == "load":
            effects.append(StartLoad(step=index, duration=step.duration or 0.0))
            state = replace(state, load=True)
        elif step.kind == "chaos":
            name = step.experiment or ""
            effects.append(StartChaos(experiment=name, step=index, duration=step.duration or 0.0))
            state = replace(state, chaos=name, window_start=at)
        return state, effects
    return _finish_promoted(plan, state, at, effects)


def _finish_promoted(
    plan: Plan, state: State, at: float, effects: list[Effect]
) -> tuple[State, list[Effect]]:
    if state.load:
        effects.append(StopLoad())
    if state.chaos is not None:
        effects.append(StopChaos(state.chaos))
    if plan.policy.finish_route:
        # Every step passed; the router leaves its end state (the contract's hand-over) before "promoted".
        state = replace(
            state,
            phase="finishing",
            load=False,
            chaos=None,
            finish_inflight=True,
            reason="every step passed; handing over",
        )
        return state, [*effects, FinishRoute("promoted")]
    state = replace(
        state,
        phase="finished",
        status="promoted",
        load=False,
        chaos=None,
        finished_at=at,
        reason="every step passed",
    )
    effects.append(_notify(state, "promoted", f"promoted at weight {state.weight}%: every step passed"))
    return state, effects


def _finishing(plan: Plan, state: State, event: Input) -> tuple[State, list[Effect]]:
    """Every step passed: wait for the router's end state (a hand-over may take minutes)."""
    if isinstance(event, RouteFinished):
        if not event.done:
            return replace(
                state, finish_inflight=False, reason=f"every step passed; handing over: {event.detail}"
            ), []
        state = replace(
            state,
            phase="finished",
            status="promoted",
            finish_inflight=False,
            mirror=0,
            finished_at=event.at,
            reason="every step passed",
        )
        return state, [_notify(state, "promoted", f"promoted at weight {state.weight}%: every step passed")]
    if isinstance(event, EffectFailed) and event.effect == "finish_route":
        if not event.permanent:
            return replace(state, finish_inflight=False, reason=f"handing over: {event.error}"), []
        reason = f"promotion hand-over failed (traffic stays on the proven canary): {event.error}"
        state = replace(
            state,
            phase="finished",
            status="failed",
            cause="driver",
            finish_inflight=False,
            finished_at=event.at,
            reason=reason,
        )
        return state, [_notify(state, "held", reason, severity="critical")]
    if isinstance(event, Tick) and not state.finish_inflight:
        return replace(state, finish_inflight=True), [FinishRoute("promoted")]
    if isinstance(event, Abort):
        return _begin_rollback(plan, state, "abort", _who("aborted", event.by, event.reason))
    return state, []


# -------------------------------------------------------------------------------------- rollback


def _begin_rollback(plan: Plan, state: State, cause: Cause, reason: str) -> tuple[State, list[Effect]]:
    attempt = state.rollback_attempts + 1
    state = replace(
        state,
        phase="rolling_back",
        cause=cause,
        reason=reason,
        rollback_inflight=True,
        rollback_attempts=attempt,
        applying=None,
        applying_since=None,
        change_retry=False,
    )
    effects: list[Effect] = [Rollback(reason=reason, attempt=attempt)]
    # Diagnostics after the rollback: a slow profile must never delay getting users off the canary.
    if cause == "verdict" and plan.policy.diagnostics:
        effects.append(CaptureDiagnostics(reason=reason))
    effects.append(_notify(state, "rolling_back", f"rolling back: {reason}", severity="critical"))
    return state, effects


def _rolling_back(plan: Plan, state: State, event: Input) -> tuple[State, list[Effect]]:
    if isinstance(event, RolledBack):
        status: RunStatus = "failed" if state.cause in {"driver", "errors", "deadline"} else "rolled_back"
        state = replace(
            state,
            phase="finished",
            status=status,
            weight=0,
            mirror=0,
            load=False,
            chaos=None,
            chaos_cleanup=(),
            rollback_inflight=False,
            finished_at=event.at,
        )
        severity: Literal["warning", "critical"] = "critical" if status == "failed" else "warning"
        return state, [_notify(state, "rolled_back", f"rolled back: {state.reason}", severity=severity)]
    if isinstance(event, EffectFailed) and event.effect == "rollback":
        if event.permanent or state.rollback_attempts >= plan.policy.rollback_attempts:
            return _rollback_failed(plan, state, event)
        return replace(state, rollback_inflight=False), []
    if isinstance(event, Tick) and not state.rollback_inflight:
        attempt = state.rollback_attempts + 1
        state = replace(state, rollback_inflight=True, rollback_attempts=attempt)
        return state, [Rollback(reason=state.reason, attempt=attempt)]
    return state, []


def _rollback_failed(plan: Plan, state: State, event: EffectFailed) -> tuple[State, list[Effect]]:
    """A rollback that cannot be carried out: the run ends for a person, said loudly, never looping."""
    why = "a permanent error" if event.permanent else f"{state.rollback_attempts} attempts"
    reason = (
        f"rollback failed ({why}): traffic may still reach the canary — {event.error}; "
        f"rollback was for: {state.reason}"
    )
    state = replace(
        state,
        phase="finished",
        status="rollback_failed",
        rollback_inflight=False,
        applying=None,
        finished_at=event.at,
        reason=reason,
    )
    return state, [_notify(state, "rollback_failed", reason, severity="critical")]


# ------------------------------------------------------------------------------------------ helpers


def _notify(
    state: State, event: Event, summary: str, severity: Literal["info", "warning", "critical"] = "info"
) -> Notify:
    # The key names the moment, so that a resumed run re-sending it is recognised as a repeat.
    key = f"{event}:{state.step}:{state.rollback_attempts if event == 'rolling_back' else state.looks}"
    return Notify(
        event=event, key=key, summary=summary, step=state.step, weight=state.weight, severity=severity
    )


def _elapsed(state: State, at: float) -> float:
    if state.step >= len(state.step_started_at):
        return 0.0
    started = state.step_started_at[state.step]
    return 0.0 if started is None else at - started


def _who(verb: str, by: str, reason: str) -> str:
    text = verb + (f" by {by}" if by else "")
    return text + (f": {reason}" if reason else "")


def _secs(seconds: float | None) -> str:
    if seconds is None:
        return "until resumed"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
