"""Two boundaries: harm shown rolls back, harm ruled out promotes, and at the planned horizon no harm
shown promotes with the minimum detectable effect — unless the policy demands power it lacks."""

from __future__ import annotations

import numpy as np

from gate.judge import JudgePolicy, ObjectiveSpec, Status, judge
from tests.judge.conftest import samples_evidence

P95 = ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max_increase=0.10, sources=("production",))


def _pair(rng: np.random.Generator, n: int, factor: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    return rng.lognormal(np.log(0.1), 0.4, n), rng.lognormal(np.log(0.1), 0.4, n) * factor


def test_a_a_pair_left_undecided_is_promoted_at_the_horizon_with_its_mde(rng: np.random.Generator) -> None:
    # as issue 14's unseen case (4,000 per track left undecided); here 1,500 per track is undecided
    stable, canary = _pair(rng, 1500)
    ev = samples_evidence(stable, canary)
    early = judge([P95], ev)
    assert early.decision.action == "hold"
    assert early.verdicts[0].status == Status.INCONCLUSIVE
    assert early.verdicts[0].numbers["side"] == "undecided"
    end = judge([P95], ev, final=True)
    v = end.verdicts[0]
    assert v.status == Status.PASS, v.reason
    assert "no harm shown by the end of the step" in v.reason
    assert "could have detected" in v.reason
    undecided = [c for c in v.checks if c.numbers.get("side") == "no harm at horizon"]
    assert undecided and all(isinstance(c.numbers["mde"], float) for c in undecided)
    assert all(float(c.numbers["mde"]) > 0.10 for c in undecided)  # never below the tolerance
    assert end.decision.action == "promote"


def test_a_demand_for_power_the_evidence_lacks_holds_and_says_so(rng: np.random.Generator) -> None:
    stable, canary = _pair(rng, 1500)
    policy = JudgePolicy(power_detect=0.12, power_probability=0.9)
    end = judge([P95], samples_evidence(stable, canary), policy, final=True)
    v = end.verdicts[0]
    assert v.status == Status.INCONCLUSIVE and v.insufficient
    assert "power the policy demands" in v.reason
    assert end.decision.action == "hold"
    # with power it can afford (a large change) the same evidence promotes
    lenient = JudgePolicy(power_detect=2.0, power_probability=0.9)
    assert judge([P95], samples_evidence(stable, canary), lenient, final=True).decision.action == "promote"


def test_an_estimate_beyond_the_tolerance_is_not_no_harm(rng: np.random.Generator) -> None:
    # too little evidence to show the ×1.2 change significant, but its estimate is beyond +10 %
    stable, canary = _pair(rng, 60, 1.2)
    end = judge([P95], samples_evidence(stable, canary), JudgePolicy(min_samples=20), final=True)
    tail = next(c for c in end.verdicts[0].checks if c.name == "tail")
    assert tail.status != Status.PASS


def test_harm_shown_rolls_back_and_says_its_side(rng: np.random.Generator) -> None:
    stable, canary = _pair(rng, 3000, 1.4)
    j = judge([P95], samples_evidence(stable, canary))
    assert j.decision.action == "rollback"
    assert j.verdicts[0].numbers["side"] == "harm"


def test_harm_ruled_out_promotes_before_the_horizon(rng: np.random.Generator) -> None:
    stable, canary = _pair(rng, 60_000)
    wide = ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max_increase=0.2, sources=("production",))
    j = judge([wide], samples_evidence(stable, canary))
    assert j.decision.action == "promote", j.verdicts[0].reason
    assert j.verdicts[0].numbers["side"] == "no harm"


def test_a_verdict_without_enough_evidence_says_so_as_its_side(rng: np.random.Generator) -> None:
    # Too few requests (below minEvidence) and no canary evidence at all: both say "no evidence".
    stable, canary = _pair(rng, 30)
    few = ObjectiveSpec(
        key="p95", sli="latency", quantile=0.95, max_increase=0.10, sources=("production",), min_requests=50
    )
    for ev in (
        samples_evidence(stable, canary),
        samples_evidence(stable, canary).model_copy(update={"slis": {}}),
    ):
        v = judge([few], ev, final=True).verdicts[0]
        assert v.status == Status.INCONCLUSIVE and v.insufficient, v.reason
        assert v.numbers["side"] == "no evidence", v.numbers
