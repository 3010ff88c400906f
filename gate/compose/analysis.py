"""A look in a real rollout: measure the window in Prometheus (plus any load samples), judge it.

``ContractAnalyst`` is the runner's analyst for ``gate run`` and the operator: it asks Prometheus
for the evidence since the canary's traffic last changed, adds the synthetic samples of the last
finished load run when they fall in the window, and judges through ``gate.compose.judging`` — the
same path ``gate check`` takes. A Prometheus error raises (the look fails and counts as an
error); stale or missing data is evidence marked so, which the judge turns into Inconclusive.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from gate.compose.judging import applicable, fault_window, judge_look, overlay, recent_seconds
from gate.contract import Contract, SliLibrary
from gate.drivers.chaos import ChaosWindow
from gate.drivers.prometheus import PrometheusClient, measure
from gate.engine.ports import LookOutcome, LookRequest
from gate.judge import Evidence, FaultWindow, Judgement, Status
from gate.judge.pipeline import RecentLook, describe_evidence

MIN_WINDOW = 1.0  # seconds: Prometheus needs start < end


class ContractAnalyst:
    """Measures and judges one look of a rollout of ``contract``."""

    def __init__(
        self,
        contract: Contract,
        library: SliLibrary,
        client: PrometheusClient | None,
        *,
        extra_evidence: Callable[[float, float], Evidence | None] | None = None,
        chaos_window: Callable[[str], ChaosWindow | None] | None = None,
    ) -> None:
        self.contract = contract
        self.library = library
        self.client = client
        self._extra = extra_evidence
        self._chaos_window = chaos_window
        """The running experiment's fault window (``ChaosRunner.window``), for ``recoverWithin``."""
        self.recent_window = recent_seconds(contract)
        """Seconds of the recent window each look also judges (0: off); see ``recent``."""
        self._recent_looks: dict[tuple[int, float], int] = {}

    def evidence(self, request: LookRequest) -> Evidence:
        """The evidence of the look's window, for the objectives that apply to it."""
        return self._measure(request, request.since)

    def recent(self, request: LookRequest) -> RecentLook | None:
        """The recent window of this look: Prometheus (and load samples) over [at - W, at].

        None when the window is off. Every look of a step gets a RecentLook (its evidence None while
        the step is not longer than the window), so the judge spends alpha the same way at every look;
        its number k grows by one per recent window judged in the step, and is at least the looks
        elapsed by the clock ((at - since) / policy.interval), so a restarted gate never spends a k
        twice."""
        seconds = self.recent_window
        if seconds <= 0:
            return None
        key = (request.step, request.since)
        start = request.at - seconds
        if start <= request.since:
            return RecentLook(None, max(self._recent_looks.get(key, 0), 1), seconds)
        elapsed = int((request.at - request.since) // self.contract.spec.policy.interval)
        k = max(self._recent_looks.get(key, 0) + 1, elapsed, 1)
        self._recent_looks = {key: k}  # only the current step's count is needed
        return RecentLook(self._measure(request, start), k, seconds)

    def _measure(self, request: LookRequest, since: float) -> Evidence:
        chosen = applicable(self.contract, sources=request.sources, chaos=request.chaos)
        end = max(request.at, since + MIN_WINDOW)
        evidence = Evidence(slis={})
        if self.client is not None and chosen:
            evidence = measure(
                self.contract,
                self.library,
                self.client,
                start=since,
                end=end,
                objectives=[o for o, _ in chosen],
            )
        if self._extra is not None:
            extra = self._extra(since, end)
            if extra is not None:
                evidence = overlay(evidence, extra)
        return evidence

    def look(self, request: LookRequest) -> LookOutcome:
        """Measure and judge; raises when Prometheus cannot be read."""
        evidence = self.evidence(request)
        judgement = judge_look(
            self.contract,
            self.library,
            evidence,
            sources=request.sources,
            chaos=request.chaos,
            final=request.final,
            fault=self._fault(request.chaos),
            recent=None if request.chaos is not None else self.recent(request),
        )
        if judgement is None:
            what = (
                f"during {request.chaos}"
                if request.chaos
                else "on " + (", ".join(request.sources) or "no traffic")
            )
            return LookOutcome(action="promote", reason=f"no objective applies {what}")
        return outcome_of(judgement, evidence)

    def _fault(self, chaos: str | None) -> FaultWindow | None:
        if chaos is None or self._chaos_window is None:
            return None
        return fault_window(self._chaos_window(chaos))


def outcome_of(judgement: Judgement, evidence: Evidence) -> LookOutcome:
    """The runner's view of a judgement: the decision, the verdicts as data, an evidence summary."""
    verdicts: list[dict[str, Any]] = [
        v.model_dump(
            mode="json", include={"objective", "sli", "source", "status", "reason", "critical", "numbers"}
        )
        for v in judgement.verdicts
    ]
    statuses = {v.status for v in judgement.verdicts}
    basis: Literal["evidence", "inconclusive", "errors"] = "evidence"
    if judgement.decision.action == "rollback" and Status.FAIL not in statuses:
        basis = "errors" if Status.ERROR in statuses else "inconclusive"
    return LookOutcome(
        action=judgement.decision.action,
        reason=judgement.decision.reason,
        basis=basis,
        errors=Status.ERROR in statuses,
        verdicts=verdicts,
        evidence=_summary(evidence),
    )


def _summary(evidence: Evidence) -> dict[str, Any]:
    try:
        return dict(describe_evidence(evidence))
    except Exception as exc:  # a summary is for people; its failure must not fail the look
        return {"error": f"could not summarise the evidence: {exc}"}
