"""Item 5 of issue 14: a regression that starts mid-step is judged on the recent window too.

A step of 300 s at 20 requests/s per track, a look every 5 s, the recent window 10 s; from t = 240 s
the canary is ×1.3 slower. The whole step's evidence dilutes the change into 240 s of good traffic;
the recent window shows it within two looks. The recent window only ever rolls back (never promotes)
and is paid for in the family-wise alpha.
"""

from __future__ import annotations

import numpy as np
import pytest

from gate.judge import JudgePolicy, ObjectiveSpec, Status, judge
from gate.judge.pipeline import RecentLook, recent_alpha
from tests.judge.conftest import samples_evidence

P95 = ObjectiveSpec(key="p95", sli="latency", quantile=0.95, max_increase=0.10, sources=("production",))
RPS, EVERY, STEP, ONSET, WINDOW = 20, 5, 300, 240, 10


def _step(seed: int, factor: float) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    stable = [rng.lognormal(np.log(0.1), 0.4, rng.poisson(RPS)) for _ in range(STEP)]
    canary = [
        rng.lognormal(np.log(0.1), 0.4, rng.poisson(RPS)) * (factor if t >= ONSET else 1.0)
        for t in range(STEP)
    ]
    return stable, canary


def _looks_to_rollback(seed: int, factor: float, *, recent: bool) -> tuple[int | None, str]:
    """Looks after the onset until the step rolls back (None: it did not), and the last reason."""
    stable, canary = _step(seed, factor)
    k = 0
    reason = ""
    for at in range(EVERY, STEP + 1, EVERY):
        ev = samples_evidence(np.concatenate(stable[:at]), np.concatenate(canary[:at]))
        look = None
        if recent:
            window = None
            if at > WINDOW:
                k += 1
                lo = at - WINDOW
                window = samples_evidence(np.concatenate(stable[lo:at]), np.concatenate(canary[lo:at]))
            look = RecentLook(window, max(k, 1), WINDOW)
        j = judge([P95], ev, final=at == STEP, recent=look)
        reason = j.decision.reason
        if j.decision.action == "rollback":
            return (at - ONSET) // EVERY, reason
    return None, reason


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_mid_step_regression_is_caught_within_two_looks_on_the_recent_window(seed: int) -> None:
    looks, reason = _looks_to_rollback(seed, 1.3, recent=True)
    assert looks is not None and looks <= 3, (looks, reason)
    assert "recent 10 s:" in reason  # the report says the recent window stopped the step
    diluted, _ = _looks_to_rollback(seed, 1.3, recent=False)
    assert diluted is None or diluted > looks + 2, (diluted, looks)


def test_the_recent_window_never_promotes_and_a_good_canary_is_not_rolled_back() -> None:
    # A/A: the recent window is an extra test at a share of alpha; it must not roll good canaries back.
    for seed in range(8):
        looks, reason = _looks_to_rollback(seed + 100, 1.0, recent=True)
        assert looks is None, reason
    # a recent window that looks perfect does not turn the whole window's hold into a promote
    rng = np.random.default_rng(7)
    whole = samples_evidence(rng.lognormal(np.log(0.1), 0.4, 200), rng.lognormal(np.log(0.1), 0.4, 200))
    same = rng.lognormal(np.log(0.1), 0.4, 5000)
    perfect = samples_evidence(same, same)
    plain = judge([P95], whole)
    with_recent = judge([P95], whole, recent=RecentLook(perfect, 1, WINDOW))
    assert plain.decision.action == with_recent.decision.action == "hold"
    assert with_recent.verdicts[0].status != Status.PASS


def test_the_recent_window_is_paid_for_out_of_alpha() -> None:
    policy = JudgePolicy(confidence=0.99)
    spent = sum(recent_alpha(policy.alpha, policy.recent_share, k) for k in range(1, 100_000))
    assert spent <= policy.alpha * policy.recent_share
    rng = np.random.default_rng(3)
    ev = samples_evidence(rng.lognormal(np.log(0.1), 0.4, 500), rng.lognormal(np.log(0.1), 0.4, 500))
    plain = judge([P95], ev, policy)
    split = judge([P95], ev, policy, recent=RecentLook(None, 1, WINDOW))
    assert plain.alpha_per_verdict == pytest.approx(policy.alpha)
    assert split.alpha_per_verdict == pytest.approx(policy.alpha * (1 - policy.recent_share))


def test_a_recent_look_is_validated() -> None:
    with pytest.raises(ValueError, match="counts from 1"):
        RecentLook(None, 0, 10)
    with pytest.raises(ValueError, match="positive"):
        RecentLook(None, 1, float("nan"))
