"""A gate's status, conditions and Events from its run (pure)."""

from __future__ import annotations

from gate.operator import status
from gate.operator.status import DecisionView, RunView

T = 1_800_000_000.0


def _view(**kw: object) -> RunView:
    base: dict[str, object] = {
        "run_id": "r1",
        "status": "running",
        "phase": "stepping",
        "step": 1,
        "steps": 4,
        "step_label": "analyze 20s",
        "weight": 20,
        "mirror": 0,
    }
    base.update(kw)
    return RunView(**base)  # type: ignore[arg-type]


def _conds(s: dict[str, object]) -> dict[str, dict[str, object]]:
    return {c["type"]: c for c in s["conditions"]}  # type: ignore[attr-defined, index]


def test_phases_read_at_a_glance() -> None:
    assert status.gate_phase(None) == "Waiting"
    assert status.gate_phase(_view()) == "Progressing"
    assert status.gate_phase(_view(status="held")) == "Held"
    assert status.gate_phase(_view(awaiting=True)) == "Held"
    assert status.gate_phase(_view(status="promoted", phase="finished")) == "Promoted"
    assert status.gate_phase(_view(status="rolled_back", phase="finished")) == "RolledBack"
    assert status.gate_phase(_view(status="failed", phase="finished")) == "Failed"


def test_a_rollback_on_the_evidence() -> None:
    view = _view(
        status="rolled_back", phase="finished", reason="p95 312 ms > 220 ms", cause="verdict", weight=0
    )
    decision = DecisionView(
        "rollback", "p95 312 ms > 220 ms", "evidence", 3, 1, T, ({"objective": "p95", "status": "fail"},)
    )
    s = status.status_of(
        view=view, decision=decision, invalid=None, generation=2, revision="abc", images=["a:1"], now=T
    )
    c = _conds(s)
    assert s["phase"] == "RolledBack" and s["observedGeneration"] == 2 and s["runId"] == "r1"
    assert c["RolledBack"]["status"] == "True" and c["RolledBack"]["reason"] == "Verdict"
    assert c["Promoted"]["status"] == "False" and c["Progressing"]["status"] == "False"
    assert s["lastDecision"]["action"] == "rollback" and s["lastDecision"]["basis"] == "evidence"
    assert s["lastDecision"]["verdicts"][0]["status"] == "fail"
    event = status.decision_event(decision)
    assert event.type == "Warning" and "312 ms" in event.message and event.message.endswith("rolling back")


def test_an_invalid_spec_without_a_run() -> None:
    s = status.status_of(
        view=None,
        decision=None,
        invalid="spec.objectives[0].max: expected a duration",
        generation=3,
        revision="",
        images=[],
        now=T,
    )
    assert s["phase"] == "Invalid"
    ready = _conds(s)["Ready"]
    assert ready["status"] == "False" and ready["reason"] == "InvalidSpec"
    assert "spec.objectives[0].max" in ready["message"]


def test_transition_times_change_only_with_the_status() -> None:
    first = status.status_of(
        view=_view(), decision=None, invalid=None, generation=1, revision="", images=[], now=T
    )
    later = status.status_of(
        view=_view(step=2, step_label="50%"),
        decision=None,
        invalid=None,
        generation=1,
        revision="",
        images=[],
        now=T + 60,
        previous=first,
    )
    assert (
        _conds(later)["Progressing"]["lastTransitionTime"]
        == _conds(first)["Progressing"]["lastTransitionTime"]
    )
    done = status.status_of(
        view=_view(status="promoted", phase="finished"),
        decision=None,
        invalid=None,
        generation=1,
        revision="",
        images=[],
        now=T + 120,
        previous=later,
    )
    assert _conds(done)["Progressing"]["lastTransitionTime"] == status.rfc3339(T + 120)


def test_messages_are_bounded() -> None:
    s = status.status_of(
        view=_view(reason="x" * 10_000),
        decision=None,
        invalid=None,
        generation=1,
        revision="",
        images=[],
        now=T,
    )
    assert len(s["message"]) <= status.MAX_MESSAGE


def test_only_the_numbers_changing_is_chatter() -> None:
    a = status.status_of(
        view=_view(reason="p95 100 ms"),
        decision=DecisionView("hold", "p95 100 ms", "inconclusive", 1, 1, T),
        invalid=None,
        generation=1,
        revision="",
        images=[],
        now=T,
    )
    b = status.status_of(
        view=_view(reason="p95 101 ms"),
        decision=DecisionView("hold", "p95 101 ms", "inconclusive", 2, 1, T + 10),
        invalid=None,
        generation=1,
        revision="",
        images=[],
        now=T + 10,
        previous=a,
    )
    assert not status.same_status(a, b)
    assert status.same_status(a, b, ignore=status.CHATTER)
    c = dict(b, weight=50)
    assert not status.same_status(a, c, ignore=status.CHATTER)
    d = status.status_of(
        view=_view(),
        decision=DecisionView("rollback", "x", "evidence", 3, 1, T),
        invalid=None,
        generation=1,
        revision="",
        images=[],
        now=T,
        previous=a,
    )
    assert not status.same_status(a, d, ignore=status.CHATTER)


def test_events_for_what_changed() -> None:
    before = _view(weight=20)
    after = _view(weight=50, step=2)
    assert [e.reason for e in status.transition_events(before, after)] == ["WeightChanged"]
    held = _view(status="held", reason="inconclusive beyond the limit")
    events = status.transition_events(before, held)
    assert [(e.type, e.reason) for e in events] == [("Warning", "Held")]
    assert status.transition_events(None, after) == []  # a resumed run: no Started twice
