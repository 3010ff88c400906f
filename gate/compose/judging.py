"""The contract in the judge's terms, and which objectives a look judges.

One adapter for every face (``gate check``, ``gate run``, the operator), so the same contract and
the same evidence give the same verdict everywhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from gate.contract import Contract, Objective, Policy, SliLibrary
from gate.drivers.chaos import ChaosWindow
from gate.drivers.prometheus import evidence_key, recovery_key
from gate.judge import Evidence, FaultWindow, Judgement, JudgePolicy, ObjectiveSpec, judge
from gate.judge import spec as judge_spec
from gate.judge.pipeline import RecentLook
from gate.judge.spec import objective_spec as judge_objective_spec


class ObjectiveNotJudgeable(ValueError):
    """An objective the judge cannot evaluate (says which and why)."""


def objective_spec(objective: Objective, library: SliLibrary) -> ObjectiveSpec:
    """The judge's view of one contract objective, by the judge's own adapter; evidence is filed
    under ``evidence_key`` (a route-restricted objective has its own slot), the SLI over time of a
    ``recoverWithin`` objective under ``recovery_key``."""
    unit = library.get(objective.sli).unit if objective.sli in library else ""
    try:
        spec = judge_objective_spec(objective, str(unit))
    except ValueError as exc:
        raise ObjectiveNotJudgeable(str(exc)) from exc
    key = recovery_key(objective) if objective.recover_within is not None else evidence_key(objective)
    return replace(spec, sli=key)


def judge_policy(policy: Policy) -> JudgePolicy:
    """The judge's policy from the contract's (the judge's own adapter: tolerance included)."""
    return judge_spec.judge_policy(policy)


def applicable(
    contract: Contract, *, sources: Iterable[str], chaos: str | None = None
) -> list[tuple[Objective, tuple[str, ...]]]:
    """The objectives a look judges, each with the sources it is judged on.

    While a chaos experiment runs, only the objectives bound to it (``during``) apply: the others
    describe the canary without the fault. Without chaos, those bound to an experiment do not apply.
    Only sources that reach the canary now can be judged; an objective left with none is skipped.
    """
    present = set(sources)
    out: list[tuple[Objective, tuple[str, ...]]] = []
    for objective in contract.spec.objectives:
        if objective.during != chaos:
            continue
        chosen = tuple(s for s in objective.sources if s in present)
        if chosen:
            out.append((objective, chosen))
    return out


def specs_for(
    chosen: Sequence[tuple[Objective, tuple[str, ...]]], library: SliLibrary
) -> list[ObjectiveSpec]:
    """Judge specs for the chosen objectives, restricted to their chosen sources."""
    out: list[ObjectiveSpec] = []
    for objective, sources in chosen:
        spec = objective_spec(objective, library)
        out.append(_with_sources(spec, sources))
    return out


def _with_sources(spec: ObjectiveSpec, sources: tuple[str, ...]) -> ObjectiveSpec:
    return replace(spec, sources=tuple(s for s in spec.sources if s in sources))


def judge_look(
    contract: Contract,
    library: SliLibrary,
    evidence: Evidence,
    *,
    sources: Iterable[str],
    chaos: str | None = None,
    final: bool = False,
    fault: FaultWindow | None = None,
    recent: RecentLook | None = None,
) -> Judgement | None:
    """Judge the evidence of one look: the objectives that apply, on the sources present.

    ``fault`` is when the running experiment's fault was in place (from the chaos driver), for the
    ``recoverWithin`` objectives; without it they are Inconclusive. None when no objective applies
    (nothing to judge on this traffic). ``gate check`` and the rollout engine both judge through here."""
    chosen = applicable(contract, sources=sources, chaos=chaos)
    if not chosen:
        return None
    if chaos is not None and fault is not None:
        evidence = Evidence.model_construct(slis=evidence.slis, chaos={**evidence.chaos, chaos: fault})
    policy = judge_policy(contract.spec.policy)
    return judge(specs_for(chosen, library), evidence, policy, final=final, recent=recent)


def recent_seconds(contract: Contract) -> float:
    """The recent window a rollout's looks judge (``policy.recentWindow``; default twice the scrape
    interval); 0 when it is off."""
    configured = contract.spec.policy.recent_window
    if configured is None:
        return 2.0 * contract.spec.prometheus.scrape_interval
    return configured


def fault_window(window: ChaosWindow | None) -> FaultWindow | None:
    """The judge's fault window from the chaos driver's (None while the fault is not known in place)."""
    if window is None or window.fault_start is None:
        return None
    end = window.fault_end
    if end is not None and end < window.fault_start:
        end = window.fault_start
    return FaultWindow(start=window.fault_start, end=end)


def overlay(base: Evidence, top: Evidence) -> Evidence:
    """``base`` with every (sli, source, track) entry of ``top`` put over it.

    Used to put Locust's raw per-request samples over Prometheus's buckets for the cells both
    measured: the samples are exact, the buckets only bound the quantiles."""
    slis = {sli: {src: dict(tracks) for src, tracks in per.items()} for sli, per in base.slis.items()}
    for sli, per in top.slis.items():
        for src, tracks in per.items():
            slis.setdefault(sli, {}).setdefault(src, {}).update(tracks)
    chaos = {**base.chaos, **top.chaos}
    return Evidence.model_construct(slis=slis, chaos=chaos)  # both sides were validated already
