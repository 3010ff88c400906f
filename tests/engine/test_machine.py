"""The pure rollout machine: scenarios by behaviour, then properties over random plans and inputs."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from gate.engine import codec
from gate.engine.machine import (
    Abort,
    Applied,
    CaptureDiagnostics,
    Effect,
    EffectFailed,
    FinishRoute,
    Input,
    Judged,
    LookFailed,
    Measure,
    Notify,
    Plan,
    PolicyPlan,
    Resume,
    Rollback,
    RolledBack,
    RouteFinished,
    SetMirror,
    SetWeight,
    Start,
    StartChaos,
    StartLoad,
    State,
    StepPlan,
    StopChaos,
    StopLoad,
    Tick,
    transition,
)

LADDER = Plan(
    steps=(
        StepPlan("setWeight", weight=5),
        StepPlan("pause", duration=10),
        StepPlan("analyze", duration=20),
        StepPlan("setWeight", weight=50),
        StepPlan("load", duration=10),
        StepPlan("chaos", experiment="risk-api-slow", duration=10),
        StepPlan("setWeight", weight=100),
    ),
    policy=PolicyPlan(interval=5, undecided_looks=2, blind_looks=2, diagnostics=True),
)


class Driver:
    """Feeds the machine like the runner would, answering looks from a decision function."""

    def __init__(self, plan: Plan, decide: object = "promote") -> None:
        self.plan = plan
        self.state = State()
        self.t = 0.0
        self.effects: list[Effect] = []
        self.decide = decide

    def feed(self, event: Input) -> list[Effect]:
        self.state, effects = transition(self.plan, self.state, event)
        self.effects += effects
        return effects

    def answer(self, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, Measure):
                decision = self.decide(self) if callable(self.decide) else self.decide
                if decision == "fail-look":
                    self.answer(self.feed(LookFailed(self.t, e.look, "connection refused")))
                else:
                    self.answer(self.feed(Judged(self.t, e.look, decision, f"{decision} at {self.t}")))
            elif isinstance(e, SetWeight | SetMirror):
                # The router confirms at once (a late confirmation has its own test).
                self.answer(self.feed(Applied(self.t, e.kind, e.percent)))
            elif isinstance(e, Rollback):
                self.answer(self.feed(RolledBack(self.t)))

    def start(self) -> None:
        self.answer(self.feed(Start(self.t)))

    def tick(self, n: int = 1) -> None:
        for _ in range(n):
            self.t += self.plan.policy.interval
            self.answer(self.feed(Tick(self.t)))

    def run(self, limit: int = 200) -> State:
        self.start()
        for _ in range(limit):
            if self.state.terminal:
                break
            self.tick()
        return self.state

    def of(self, kind: type) -> list[Effect]:
        return [e for e in self.effects if isinstance(e, kind)]


# ------------------------------------------------------------------------------------ happy path


def test_good_canary_climbs_every_step_once_and_is_promoted() -> None:
    d = Driver(LADDER)
    final = d.run()
    assert final.status == "promoted" and final.phase == "finished"
    assert [e.percent for e in d.of(SetWeight)] == [5, 50, 100]
    assert [e.kind for e in d.effects if isinstance(e, StartLoad | StopLoad | StartChaos | StopChaos)] == [
        "start_load",
        "stop_load",
        "start_chaos",
        "stop_chaos",
    ]
    assert final.step == len(LADDER.steps)
    assert all(t is not None for t in final.step_started_at)
    events = [n.event for n in d.of(Notify)]
    assert (events[0], events[-1]) == ("started", "promoted")


def test_gating_step_waits_its_minimum_duration_even_when_every_look_passes() -> None:
    plan = Plan(steps=(StepPlan("setWeight", weight=10), StepPlan("analyze", duration=30)))
    d = Driver(plan)
    d.start()
    d.tick(5)  # 25 s in: not yet
    assert d.state.step == 1 and d.state.status == "running"
    d.tick(1)  # 30 s: the look at the end promotes
    assert d.state.status == "promoted"


def test_a_pause_ends_on_time_without_needing_a_conclusion() -> None:
    plan = Plan(steps=(StepPlan("setWeight", weight=10), StepPlan("pause", duration=10)))
    d = Driver(plan, decide="hold")
    d.start()
    d.tick(2)
    assert d.state.status == "promoted"
    assert d.state.inconclusive == 0  # holds during a pause are not counted


def test_open_ended_pause_waits_for_a_person() -> None:
    plan = Plan(
        steps=(StepPlan("setWeight", weight=10), StepPlan("pause"), StepPlan("setWeight", weight=100))
    )
    d = Driver(plan)
    d.start()
    d.tick(50)
    assert d.state.step == 1 and not d.state.terminal
    d.answer(d.feed(Resume(d.t, by="alice")))
    assert d.state.status == "promoted"
    assert "alice" in d.of(Notify)[-2].summary  # the step advance names who resumed


def test_mirror_step_sets_the_mirror_and_a_look_is_taken_with_no_weight() -> None:
    plan = Plan(steps=(StepPlan("mirror", percent=100), StepPlan("analyze", duration=10)))
    d = Driver(plan)
    final = d.run()
    assert final.status == "promoted"
    assert d.of(SetMirror) == [SetMirror(100)]
    assert d.of(Measure)


# -------------------------------------------------------------------------------- fast rollback


def test_a_failed_look_rolls_back_at_once_mid_pause_with_diagnostics() -> None:
    d = Driver(LADDER, decide=lambda dr: "rollback" if dr.t >= 5 else "promote")
    d.start()
    d.tick(1)  # 5 s into a 10 s pause at weight 5: the first failed look acts
    assert d.state.phase == "finished" and d.state.status == "rolled_back"
    assert d.state.weight == 0 and d.state.mirror == 0
    rollback_at = next(i for i, e in enumerate(d.effects) if isinstance(e, Rollback))
    after = d.effects[rollback_at:]
    assert isinstance(after[1], CaptureDiagnostics)  # after the rollback, never before it
    assert [n.event for n in d.of(Notify)][-2:] == ["rolling_back", "rolled_back"]
    assert d.state.cause == "verdict"


def test_failure_limit_tolerates_that_many_failed_looks() -> None:
    plan = replace(LADDER, policy=replace(LADDER.policy, failed_looks=2))
    d = Driver(plan, decide="rollback")
    d.start()
    d.tick(2)
    assert d.state.phase == "stepping" and d.state.failed == 2
    d.tick(1)
    assert d.state.phase == "finished" and d.state.status == "rolled_back"


def test_load_and_chaos_are_stopped_by_a_rollback() -> None:
    plan = Plan(steps=(StepPlan("setWeight", weight=10), StepPlan("chaos", experiment="x", duration=60)))
    d = Driver(plan, decide=lambda dr: "rollback" if dr.t >= 10 else "hold")
    d.run()
    assert d.state.status == "rolled_back" and d.state.chaos is None
    # The rollback effect itself undoes every fault (the runner calls chaos.stop_all).
    assert len(d.of(Rollback)) == 1


# ----------------------------------------------------------------------------- unknowns and holds


def test_inconclusive_never_promotes_then_holds_for_a_person_then_resumes() -> None:
    d = Driver(LADDER, decide=lambda dr: "hold" if 10 <= dr.t < 60 else "promote")
    d.start()
    d.tick(8)  # analyze 20 s from t=10: from t=30 each hold counts; limit 2 -> held at the 3rd (t=40)
    assert d.state.status == "held" and d.state.step == 2
    assert [n.event for n in d.of(Notify)][-1] == "held"
    d.tick(10)  # evidence is conclusive again, but a held run waits for a person
    assert d.state.status == "held" and d.state.step == 2
    d.answer(d.feed(Resume(d.t, by="bob")))
    assert d.state.status == "running"
    d.tick(1)
    assert d.state.step > 2
    for _ in range(50):
        if d.state.terminal:
            break
        d.tick()
    assert d.state.status == "promoted"


def test_inconclusive_with_on_inconclusive_rollback_rolls_back() -> None:
    plan = replace(LADDER, policy=replace(LADDER.policy, on_inconclusive="rollback"))
    d = Driver(plan, decide="hold")
    final = d.run()
    assert final.status == "rolled_back" and final.cause == "inconclusive"
    assert not d.of(CaptureDiagnostics)  # diagnostics are for evidence of failure, not for unknowns


def test_the_judges_rollback_on_unknowns_is_not_taken_for_a_failure() -> None:
    d = Driver(LADDER)
    d.start()
    d.t = 5
    d.feed(Tick(5))
    d.feed(Judged(5, d.state.looks, "rollback", "step ended with 2 inconclusive", basis="inconclusive"))
    assert d.state.phase == "rolling_back" and d.state.cause == "inconclusive"
    assert not d.of(CaptureDiagnostics)
    d.feed(RolledBack(6))
    assert d.state.status == "rolled_back"


def test_prometheus_outage_holds_then_resolves_per_policy() -> None:
    # Looks fail (Prometheus unreachable) from t=15 to t=40; limit 2 errors once waiting.
    plan = replace(LADDER, policy=replace(LADDER.policy, blind_looks=10))
    d = Driver(plan, decide=lambda dr: "fail-look" if 15 <= dr.t < 40 else "promote")
    d.start()
    d.tick(7)  # t=35: analyze step (from 10, 20 s) waits; never advanced on failed looks
    assert d.state.step == 2 and d.state.status == "running" and d.state.errors >= 1
    assert SetWeight(50) not in d.effects  # no step left on a failed look
    for _ in range(50):
        if d.state.terminal:
            break
        d.tick()
    assert d.state.status == "promoted"


def test_a_pause_does_not_end_while_the_analysis_is_blind() -> None:
    # Prometheus is down from t=5 to t=25, during the 10 s pause at weight 5.
    plan = replace(LADDER, policy=replace(LADDER.policy, blind_looks=10))
    d = Driver(plan, decide=lambda dr: "fail-look" if 5 <= dr.t < 25 else "promote")
    d.start()
    d.tick(4)  # t=20: the pause's time is up, but the last look failed
    assert d.state.step == 1 and d.state.errors == 4 and d.state.weight == 5
    d.tick(2)  # t=30: a look worked at t=25; the pause ends on the next tick
    assert d.state.step == 2 and d.state.errors == 0


def test_prometheus_outage_past_the_error_limit_holds_the_run() -> None:
    d = Driver(LADDER, decide=lambda dr: "fail-look" if dr.t >= 15 else "promote")
    d.start()
    d.tick(12)
    assert d.state.status == "held" and d.state.step == 2
    assert d.state.weight == 5  # held: never promoted on unknowns


def test_deadline_rolls_back_and_marks_the_run_failed() -> None:
    plan = replace(LADDER, policy=replace(LADDER.policy, deadline=40.0))
    d = Driver(plan, decide="hold")
    final = d.run()
    assert final.status == "failed" and final.cause == "deadline"
    assert final.finished_at is not None and final.finished_at <= 45


# ----------------------------------------------------------------------------------- fail safe


def test_a_failing_rollback_is_retried_on_every_tick_until_it_holds() -> None:
    d = Driver(LADDER)
    d.start()
    d.feed(Abort(d.t, by="carol", reason="looks wrong"))
    assert d.state.phase == "rolling_back"
    for attempt in range(1, 4):
        d.feed(EffectFailed(d.t, "rollback", "router unavailable"))
        assert d.state.phase == "rolling_back"
        d.t += 5
        effects = d.feed(Tick(d.t))
        assert effects == [Rollback(reason=d.state.reason, attempt=attempt + 1)]
        # A tick while that attempt is in flight asks nothing more.
        assert d.feed(Tick(d.t + 1)) == []
    # Looks, resumes and other failures cannot end a rollback.
    d.feed(Judged(d.t, d.state.looks, "promote", "fine"))
    d.feed(Resume(d.t))
    assert d.state.phase == "rolling_back"
    d.feed(RolledBack(d.t))
    assert d.state.status == "rolled_back" and d.state.phase == "finished"


def test_a_router_failure_while_stepping_rolls_back_and_marks_the_run_failed() -> None:
    d = Driver(LADDER)
    d.start()
    d.feed(EffectFailed(d.t, "set_weight", "nginx -t failed"))
    assert d.state.phase == "rolling_back" and d.state.cause == "driver"
    d.feed(RolledBack(d.t))
    assert d.state.status == "failed"


def test_notifier_and_diagnostics_failures_change_nothing() -> None:
    d = Driver(LADDER)
    d.start()
    before = d.state
    assert d.feed(EffectFailed(d.t, "notify", "slack 500")) == []
    assert d.feed(EffectFailed(d.t, "capture_diagnostics", "timeout")) == []
    assert d.state == before


def test_a_chaos_stop_that_fails_is_retried_on_the_next_tick() -> None:
    d = Driver(LADDER)
    d.start()
    d.feed(EffectFailed(d.t, "stop_chaos", "proxy down", detail="risk-api-slow"))
    assert d.state.chaos_cleanup == ("risk-api-slow",)
    d.t += 5
    effects = d.feed(Tick(d.t))
    assert effects[0] == StopChaos("risk-api-slow") and d.state.chaos_cleanup == ()


def test_an_answer_to_an_old_look_is_ignored() -> None:
    d = Driver(LADDER)
    d.start()
    d.t = 5
    d.feed(Tick(5))
    d.feed(Tick(10))  # a second look asked before the first was answered
    before = d.state
    assert d.feed(Judged(10, before.looks - 1, "rollback", "stale")) == []
    assert d.state == before


def test_a_finished_run_ignores_everything() -> None:
    d = Driver(LADDER)
    final = d.run()
    for event in (Tick(1e9), Abort(1e9), Judged(1e9, final.looks, "rollback", "x"), Start(1e9)):
        assert transition(LADDER, final, event) == (final, [])


def test_abort_before_start_rolls_back() -> None:
    state, effects = transition(LADDER, State(), Abort(0, by="ci"))
    assert state.phase == "rolling_back" and isinstance(effects[0], Rollback)


# ---------------------------------------------------------------------------------- properties


def steps_strategy() -> st.SearchStrategy[tuple[StepPlan, ...]]:
    durations = st.sampled_from([0.0, 5.0, 10.0, 30.0])
    one = st.one_of(
        st.builds(lambda w: StepPlan("setWeight", weight=w), st.integers(0, 100)),
        st.builds(lambda p: StepPlan("mirror", percent=p), st.integers(0, 100)),
        st.builds(lambda d: StepPlan("pause", duration=d), st.one_of(durations, st.none())),
        st.builds(lambda d: StepPlan("analyze", duration=d), durations),
        st.builds(lambda d: StepPlan("load", duration=d), durations),
        st.builds(lambda d: StepPlan("chaos", experiment="x", duration=d), durations),
    )
    return st.lists(one, min_size=0, max_size=7).map(tuple)


policies = st.builds(
    PolicyPlan,
    interval=st.sampled_from([1.0, 5.0]),
    deadline=st.one_of(st.none(), st.sampled_from([20.0, 100.0])),
    on_inconclusive=st.sampled_from(["hold", "rollback"]),
    failed_looks=st.integers(0, 2),
    undecided_looks=st.integers(0, 3),
    blind_looks=st.integers(0, 3),
    diagnostics=st.booleans(),
    finish_route=st.booleans(),
)

# An input script: what comes next, relative to the machine's last question.
MOVES = [
    "tick",
    "promote",
    "hold",
    "hold-errors",
    "rollback-unknown",
    "rollback",
    "look-failed",
    "rolled-back",
    "rollback-failed",
    "resume",
    "abort",
    "set-weight-failed",
    "stop-chaos-failed",
    "notify-failed",
    "stale",
    "applied",
    "rollback-failed-for-good",
    "route-finished",
    "route-not-finished",
    "finish-failed-for-good",
]
moves = st.lists(st.sampled_from(MOVES), max_size=60)


def _event(move: str, state: State, t: float) -> Input:
    look = state.looks
    match move:
        case "tick":
            return Tick(t)
        case "promote" | "hold" | "rollback":
            return Judged(t, look, move, move)  # type: ignore[arg-type]
        case "hold-errors":
            return Judged(t, look, "hold", "error verdicts", errors=True)
        case "rollback-unknown":
            return Judged(t, look, "rollback", "step ended inconclusive", basis="inconclusive")
        case "look-failed":
            return LookFailed(t, look, "down")
        case "rolled-back":
            return RolledBack(t)
        case "rollback-failed":
            return EffectFailed(t, "rollback", "down")
        case "resume":
            return Resume(t)
        case "abort":
            return Abort(t)
        case "set-weight-failed":
            return EffectFailed(t, "set_weight", "down")
        case "stop-chaos-failed":
            return EffectFailed(t, "stop_chaos", "down", detail="x")
        case "notify-failed":
            return EffectFailed(t, "notify", "down")
        case "applied":
            return Applied(t, state.applying or "set_weight", 0)
        case "route-finished":
            return RouteFinished(t, True)
        case "route-not-finished":
            return RouteFinished(t, False, "stable Deployment 1/3 updated")
        case "finish-failed-for-good":
            return EffectFailed(t, "finish_route", "timed out", permanent=True)
        case "rollback-failed-for-good":
            return EffectFailed(t, "rollback", "403 forbidden", permanent=True)
        case _:
            return Judged(t, look - 1, "promote", "stale")


@settings(max_examples=400, deadline=None)
@given(steps=steps_strategy(), policy=policies, script=moves)
def test_invariants_hold_for_any_plan_and_any_inputs(
    steps: tuple[StepPlan, ...], policy: PolicyPlan, script: list[str]
) -> None:
    plan = Plan(steps=steps, policy=policy)
    state, effects = transition(plan, State(), Start(0.0))
    weights = [s.weight for s in steps if s.kind == "setWeight"]
    set_weights = [e.percent for e in effects if isinstance(e, SetWeight)]
    entered: dict[int, int] = {}
    t = 0.0
    for move in script:
        t += policy.interval
        before = state
        event = _event(move, state, t)
        state, effects = transition(plan, before, event)
        assert codec.load_state(codec.dump_state(state)) == state  # every state checkpoints exactly
        for e in effects:
            assert codec.load_effect(codec.dump_effect(e)) == e
        asked = [e.percent for e in effects if isinstance(e, SetWeight)]
        if before.change_retry and isinstance(event, Tick):
            # A change that failed for a temporary reason is asked again, the same weight, once.
            assert asked in ([], [before.weight]) and not state.change_retry
        else:
            set_weights += asked

        # Steps only go forward; each step is entered at most once.
        assert state.step >= before.step
        for i in range(len(steps)):
            if before.step_started_at and before.step_started_at[i] is not None:
                assert state.step_started_at[i] == before.step_started_at[i]
            elif state.step_started_at and state.step_started_at[i] is not None:
                entered[i] = entered.get(i, 0) + 1
        assert all(n == 1 for n in entered.values())

        # A pause is left on time only while the analysis sees (or by a person's resume).
        if state.step > before.step and before.step < len(steps) and steps[before.step].kind == "pause":
            assert isinstance(event, Resume) or before.errors == 0

        # A gating step is left only on a promote look taken after its minimum duration.
        if state.step > before.step and before.step < len(steps) and steps[before.step].gating:
            assert isinstance(event, Judged) and event.action == "promote"
            started = before.step_started_at[before.step]
            assert started is not None and event.at - started >= (steps[before.step].duration or 0.0)
            assert before.status == "running"  # a held run never advances

        # Once a rollback began, it ends only rolled back (or failed): never promoted, never stepping.
        if before.phase in {"rolling_back", "finished"} and before.status != "promoted":
            assert state.phase in {"rolling_back", "finished"}
            assert state.status != "promoted"
            assert all(isinstance(e, Rollback | Notify) for e in effects)
        if state.phase == "rolling_back" and before.phase == "stepping":
            assert isinstance(effects[0], Rollback)
        if (
            state.phase == "finished"
            and state.status in {"rolled_back", "failed"}
            and before.phase not in {"finishing", "finished"}  # a failed hand-over keeps the weight
        ):
            assert isinstance(event, RolledBack)
            assert state.weight == 0 and state.mirror == 0 and state.chaos is None and not state.load

        # Promoted only with every step done.
        if state.status == "promoted":
            assert state.step == len(steps)

        # A failed look beyond the limit always begins a rollback at once.
        if (
            isinstance(event, Judged)
            and event.action == "rollback"
            and event.look == before.looks
            and before.phase == "stepping"
            and before.failed + 1 > policy.failed_looks
        ):
            assert state.phase == "rolling_back"
    # Weights are set in the plan's order, none invented (a rollback is its own effect).
    assert set_weights == weights[: len(set_weights)]


# ---------------------------------------------------------------- traffic changes take effect late


def test_a_step_after_a_weight_starts_when_the_router_confirms_it_not_when_it_was_asked() -> None:
    plan = Plan(
        steps=(StepPlan("setWeight", weight=20), StepPlan("analyze", duration=40)),
        policy=PolicyPlan(interval=5),
    )
    state, effects = transition(plan, State(), Start(0.0))
    assert SetWeight(20) in effects and state.applying == "set_weight" and state.step == 0
    # The API server is frozen: ticks come, but no look is asked while the weight is on its way.
    for t in (5.0, 10.0, 15.0, 20.0, 25.0):
        state, effects = transition(plan, state, Tick(t))
        assert not [e for e in effects if isinstance(e, Measure)]
    state, _ = transition(plan, state, Applied(26.0, "set_weight", 20))
    assert state.step == 1 and state.window_start == 26.0 and state.step_started_at[1] == 26.0
    assert state.late == 26.0 and "26.0s after it was asked" in state.reason
    # The analyze step's 40 s count from 26: a promote at 61 is too early, at 66 it ends the step.
    state, effects = transition(plan, state, Tick(61.0))
    (look,) = [e for e in effects if isinstance(e, Measure)]
    assert look.since == 26.0 and not look.final  # the window holds only the new weight's traffic
    state, _ = transition(plan, state, Judged(61.0, look.look, "promote", "fine"))
    assert state.status == "running"
    state, effects = transition(plan, state, Tick(66.0))
    (look,) = [e for e in effects if isinstance(e, Measure)]
    assert look.final
    state, _ = transition(plan, state, Judged(66.0, look.look, "promote", "fine"))
    assert state.status == "promoted"


def test_a_repeated_confirmation_after_a_crash_changes_nothing() -> None:
    plan = Plan(steps=(StepPlan("setWeight", weight=20), StepPlan("pause", duration=30)))
    state, _ = transition(plan, State(), Start(0.0))
    state, _ = transition(plan, state, Applied(1.0, "set_weight", 20))
    again, effects = transition(plan, state, Applied(2.0, "set_weight", 20))
    assert again == state and effects == []


# ----------------------------------------------------------------------- a rollback that cannot


def test_a_rollback_that_fails_for_good_ends_the_run_rollback_failed_at_once() -> None:
    d = Driver(LADDER)
    d.start()
    d.feed(Abort(d.t, by="carol"))
    effects = d.feed(EffectFailed(d.t, "rollback", "set_weight(0): 403 forbidden", permanent=True))
    assert d.state.terminal and d.state.status == "rollback_failed"
    assert "traffic may still reach the canary" in d.state.reason and "403" in d.state.reason
    (note,) = [e for e in effects if isinstance(e, Notify)]
    assert note.event == "rollback_failed" and note.severity == "critical"
    assert d.feed(Tick(d.t + 5)) == []  # over: nothing loops


def test_a_rollback_failing_temporarily_is_given_up_after_its_attempt_budget() -> None:
    plan = replace(LADDER, policy=replace(LADDER.policy, rollback_attempts=3))
    d = Driver(plan)
    d.start()
    d.feed(Abort(d.t, by="carol"))
    for _ in range(2):
        d.feed(EffectFailed(d.t, "rollback", "503"))
        assert d.state.phase == "rolling_back"
        d.t += 5
        d.feed(Tick(d.t))
    d.feed(EffectFailed(d.t, "rollback", "503"))
    assert d.state.status == "rollback_failed" and d.state.rollback_attempts == 3
    assert "3 attempts" in d.state.reason


def test_a_decision_keeps_the_verdicts_it_rests_on() -> None:
    d = Driver(LADDER)
    d.start()
    d.t = 5
    d.feed(Tick(5))
    drivers = ("http-latency-p95@production=fail (critical)",)
    d.feed(Judged(5, d.state.looks, "rollback", "p95 too high", drivers=drivers))
    assert d.state.basis == (f"look {d.state.looks}: http-latency-p95@production=fail (critical)",)
    assert codec.load_state(codec.dump_state(d.state)) == d.state


def test_look_records_are_strict_json_for_every_store() -> None:
    import json

    data = {"p50": float("nan"), "max": float("inf"), 3: (1.0, float("-inf")), "deep": [[[[1]]]]}
    safe = codec.json_safe(data, depth=3)
    assert json.loads(json.dumps(safe, allow_nan=False)) == {
        "p50": "nan",
        "max": "inf",
        "3": [1.0, "-inf"],
        "deep": [["…"]],
    }


def test_promotion_waits_for_the_routers_end_state_and_a_failed_hand_over_is_said() -> None:
    plan = Plan(steps=(StepPlan("setWeight", weight=100),), policy=PolicyPlan(interval=5, finish_route=True))
    state, _ = transition(plan, State(), Start(0.0))
    state, effects = transition(plan, state, Applied(1.0, "set_weight", 100))
    assert state.phase == "finishing" and FinishRoute("promoted") in effects and not state.terminal
    state, _ = transition(plan, state, RouteFinished(6.0, False, "stable Deployment 1/3 updated"))
    assert "1/3 updated" in state.reason
    assert transition(plan, state, Tick(10.0))[1] == [FinishRoute("promoted")]  # asked again each tick
    state, _ = transition(plan, transition(plan, state, Tick(10.0))[0], RouteFinished(11.0, True))
    assert state.status == "promoted" and state.terminal
    # A hand-over that cannot complete ends the run for a person, the traffic left on the canary.
    stuck, _ = transition(plan, State(), Start(0.0))
    stuck, _ = transition(plan, stuck, Applied(1.0, "set_weight", 100))
    stuck, effects = transition(plan, stuck, EffectFailed(2.0, "finish_route", "timed out", permanent=True))
    assert stuck.status == "failed" and "stays on the proven canary" in stuck.reason


def test_a_traffic_change_that_fails_for_a_temporary_reason_is_asked_again_until_change_timeout() -> None:
    plan = Plan(
        steps=(StepPlan("setWeight", weight=20), StepPlan("analyze", duration=10)),
        policy=PolicyPlan(interval=2, change_timeout=30),
    )
    state, effects = transition(plan, State(), Start(0.0))
    assert SetWeight(20) in effects and state.applying == "set_weight"
    # 503 / a stuck API server: no rollback, no look, the same change asked again on the next tick.
    state, effects = transition(plan, state, EffectFailed(10.0, "set_weight", "503 ServiceUnavailable"))
    assert effects == [] and state.phase == "stepping" and state.change_retry
    assert "not confirmed after 10.0s" in state.reason and "trying again" in state.reason
    state, effects = transition(plan, state, Tick(12.0))
    assert effects == [SetWeight(20)] and not state.change_retry
    state, effects = transition(plan, state, Tick(14.0))
    assert effects == []  # the change is on its way: nothing asked twice, no look mixing two weights
    state, effects = transition(plan, state, Applied(25.0, "set_weight", 20))
    assert state.applying is None and state.late == 25.0 and state.window_start == 25.0
    assert "took effect 25.0s after it was asked" in state.reason
    # Past change_timeout, a change that still fails rolls back (the run then ends "failed").
    state, _ = transition(plan, State(), Start(0.0))
    state, effects = transition(plan, state, EffectFailed(31.0, "set_weight", "503 ServiceUnavailable"))
    assert state.phase == "rolling_back" and state.cause == "driver"
    assert "not confirmed within 30s" in state.reason
    # A permanent error is not asked again.
    state, _ = transition(plan, State(), Start(0.0))
    state, _ = transition(plan, state, EffectFailed(1.0, "set_weight", "403 Forbidden", permanent=True))
    assert state.phase == "rolling_back"
