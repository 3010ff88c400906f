"""Stage 4 — decide: the policy turns verdicts into promote / hold / rollback."""

from __future__ import annotations

from gate.judge.decide import decide
from gate.judge.spec import JudgePolicy
from gate.judge.verdict import Status, Verdict


def v(status: Status, key: str = "k", critical: bool = False, insufficient: bool = False) -> Verdict:
    return Verdict(
        objective=key,
        sli="s",
        source="production",
        status=status,
        reason=f"{key} {status}",
        critical=critical,
        insufficient=insufficient,
    )


STRICT = JudgePolicy(failure_limit=0, inconclusive_limit=0, error_limit=0)


def test_all_pass_promotes() -> None:
    assert decide([v(Status.PASS), v(Status.PASS, "b")], STRICT).action == "promote"


def test_critical_failure_rolls_back_whatever_the_limits() -> None:
    d = decide([v(Status.PASS), v(Status.FAIL, "c", critical=True)], JudgePolicy(failure_limit=5))
    assert d.action == "rollback" and "critical objective c" in d.reason


def test_failures_beyond_the_limit_roll_back_and_within_it_do_not() -> None:
    verdicts = [v(Status.FAIL, "a"), v(Status.PASS, "b")]
    assert decide(verdicts, JudgePolicy(failure_limit=0)).action == "rollback"
    d = decide(verdicts, JudgePolicy(failure_limit=1))
    assert d.action == "promote" and "tolerated" in d.reason


def test_errors_beyond_the_limit_roll_back_fail_safe() -> None:
    assert decide([v(Status.ERROR), v(Status.PASS, "b")], STRICT).action == "rollback"
    assert decide([v(Status.ERROR), v(Status.PASS, "b")], JudgePolicy(error_limit=1)).action == "promote"


def test_inconclusive_holds_until_the_step_ends() -> None:
    verdicts = [v(Status.INCONCLUSIVE), v(Status.PASS, "b")]
    assert decide(verdicts, STRICT).action == "hold"
    assert decide(verdicts, STRICT, final=True).action == "hold"
    assert (
        decide(verdicts, JudgePolicy(inconclusive_limit=0, on_inconclusive="rollback"), final=True).action
        == "rollback"
    )
    assert decide(verdicts, JudgePolicy(inconclusive_limit=1), final=True).action == "promote"


def test_lack_of_evidence_never_promotes_even_within_the_inconclusive_limit() -> None:
    verdicts = [v(Status.INCONCLUSIVE, insufficient=True), v(Status.PASS, "b")]
    d = decide(verdicts, JudgePolicy(inconclusive_limit=5), final=True)
    assert (
        d.action == "hold" and "never promoted on evidence that could not have shown a regression" in d.reason
    )


def test_nothing_to_judge_holds() -> None:
    assert decide([], STRICT).action == "hold"


def test_counts_are_reported() -> None:
    d = decide(
        [v(Status.PASS), v(Status.INCONCLUSIVE, "b"), v(Status.ERROR, "c")], JudgePolicy(error_limit=3)
    )
    assert d.counts == {"pass": 1, "fail": 0, "inconclusive": 1, "error": 1, "critical_fail": 0}


def test_an_undecided_critical_objective_holds_during_the_step_and_is_tolerated_at_its_end() -> None:
    # Sufficient evidence that showed no regression: held while the step runs, tolerated at its end
    # within the limit; beyond the limit the policy decides.
    verdicts = [v(Status.PASS, "a"), v(Status.INCONCLUSIVE, "p95", critical=True)]
    lenient = JudgePolicy(inconclusive_limit=1, on_inconclusive="rollback")
    assert decide(verdicts, lenient, final=False).action == "hold"
    assert decide(verdicts, lenient, final=True).action == "promote"
    strict = JudgePolicy(inconclusive_limit=0, on_inconclusive="rollback")
    assert decide(verdicts, strict, final=True).action == "rollback"
    # Starved of evidence it never promotes, whatever the limit.
    starved = [v(Status.PASS, "a"), v(Status.INCONCLUSIVE, "p95", critical=True, insufficient=True)]
    assert decide(starved, lenient, final=True).action == "rollback"
