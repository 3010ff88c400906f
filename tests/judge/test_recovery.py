"""The recovery check (`recoverWithin`): p99 per step against the bound, timed from the fault's start."""

from __future__ import annotations

from gate.judge import Evidence, FaultWindow, GaugeSeries, JudgePolicy, ObjectiveSpec, Status, Window, judge

T = 1_767_225_600.0
OBJ = ObjectiveSpec(
    key="p99-recovers",
    sli="http-latency",
    quantile=0.99,
    max=2.1,
    during="risk-api-slow",
    recover_within=30.0,
    critical=True,
    sources=("synthetic",),
    unit="seconds",
)


def _evidence(values: list[float], *, step: float = 2.0, fault_end: float | None = None) -> Evidence:
    points = [(T + i * step, v) for i, v in enumerate(values)]
    end = points[-1][0] if points else T
    item = GaugeSeries(points=points, window=Window(start=T, end=end))
    return Evidence(
        slis={"http-latency": {"synthetic": {"canary": item}}},
        chaos={"risk-api-slow": FaultWindow(start=T, end=fault_end)},
    )


def _verdict(evidence: Evidence, obj: ObjectiveSpec = OBJ):
    j = judge([obj], evidence, JudgePolicy(), final=True)
    assert len(j.verdicts) == 1
    return j.verdicts[0], j


def test_recovers_in_time_passes_with_the_recovery_time() -> None:
    # 2.8 s for the first 12 s, then the breaker opens: 0.4 s until 60 s after the fault.
    values = [2.8] * 6 + [0.4] * 25
    v, j = _verdict(_evidence(values))
    assert v.status == Status.PASS, v.reason
    assert v.numbers["recovery_time"] == 12.0
    assert "p99 back under 2.1 s 12 s after the fault started (bound 30 s)" in v.reason
    assert j.decision.action == "promote"


def test_too_late_fails_with_the_measured_recovery_time() -> None:
    values = [2.8] * 23 + [0.4] * 10  # back only at 46 s
    v, j = _verdict(_evidence(values))
    assert v.status == Status.FAIL, v.reason
    assert v.numbers["recovery_time"] == 46.0
    assert "only 46 s after the fault started (bound 30 s)" in v.reason
    assert j.decision.action == "rollback"


def test_never_back_fails() -> None:
    v, _ = _verdict(_evidence([2.8] * 20))
    assert v.status == Status.FAIL
    assert v.numbers["recovery_time"] is None
    assert "still not under 2.1 s" in v.reason


def test_relapse_after_the_deadline_fails() -> None:
    values = [2.8] * 4 + [0.4] * 14 + [2.5] * 2 + [0.4] * 10  # back at 8 s, out again at 36 s
    v, _ = _verdict(_evidence(values))
    assert v.status == Status.FAIL, v.reason
    assert "left it again at 36 s" in v.reason
    assert v.numbers["first_late_violation"] == 36.0


def test_sparse_after_the_deadline_is_inconclusive() -> None:
    values = [2.8] * 3 + [0.4] * 14  # up to 32 s: one point after the 30 s deadline
    v, j = _verdict(_evidence(values))
    assert v.status == Status.INCONCLUSIVE, v.reason
    assert v.insufficient
    assert "after the 30 s deadline" in v.reason
    assert j.decision.action != "promote"


def test_gap_after_the_deadline_is_inconclusive() -> None:
    points = [(T + t, 0.4) for t in (0, 2, 4, 6, 8, 32, 34, 36, 70)]
    item = GaugeSeries(points=points, window=Window(start=T, end=T + 70))
    ev = Evidence(
        slis={"http-latency": {"synthetic": {"canary": item}}}, chaos={"risk-api-slow": FaultWindow(start=T)}
    )
    v, _ = _verdict(ev)
    assert v.status == Status.INCONCLUSIVE
    assert "gap" in v.reason


def test_fault_undone_before_the_deadline_is_inconclusive() -> None:
    v, _ = _verdict(_evidence([0.4] * 31, fault_end=T + 20))
    assert v.status == Status.INCONCLUSIVE
    assert "undone 20 s after it started" in v.reason


def test_missing_series_and_missing_fault_window_are_inconclusive() -> None:
    missing = Evidence(
        slis={"http-latency": {"synthetic": {"canary": GaugeSeries(missing=True)}}},
        chaos={"risk-api-slow": FaultWindow(start=T)},
    )
    assert _verdict(missing)[0].status == Status.INCONCLUSIVE
    no_window = _evidence([0.4] * 31).model_copy(update={"chaos": {}})
    v, _ = _verdict(no_window)
    assert v.status == Status.INCONCLUSIVE and "no chaos window" in v.reason
    stale = _evidence([0.4] * 31)
    stale.slis["http-latency"]["synthetic"]["canary"].stale = True
    assert _verdict(stale)[0].status == Status.INCONCLUSIVE


def test_before_the_deadline_it_waits() -> None:
    v, j = _verdict(_evidence([2.8] * 5))  # 8 s into the fault
    assert v.status == Status.INCONCLUSIVE
    assert j.decision.action in ("hold", "rollback")


def test_evidence_file_carries_the_fault_window() -> None:
    from gate.judge.evidence import parse_evidence

    doc = parse_evidence(
        """
objectives:
  - {sli: http-latency, quantile: p99, max: 2.1s, during: risk-api-slow, recoverWithin: 30s, sources: [synthetic]}
chaos:
  risk-api-slow: {start: 100, end: 200}
slis:
  http-latency:
    synthetic:
      canary: {kind: gauge, points: [[100, 2.8], [110, 2.9], [120, 0.3], [135, 0.3], [150, 0.3], [165, 0.3], [180, 0.3]], window: {start: 100, end: 180}}
"""
    )
    j = judge(doc.objectives, doc, final=True)
    assert j.verdicts[0].status == Status.PASS, j.verdicts[0].reason
    assert j.verdicts[0].numbers["recovery_time"] == 20.0
