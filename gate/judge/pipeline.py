"""The judge: transform → describe → classify → score/decide, per objective × source, then one decision.

Pure: the same objectives, evidence and policy give the same judgement; no clock, no I/O. Safe to call
every few seconds on cumulative evidence, because every interval it decides on is always-valid and the
error budget alpha = 1 - confidence is split (Bonferroni) over objectives × sources, so the chance of a
false Fail anywhere, at any look, stays below alpha.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from gate.contract.models import Objective, Policy
from gate.judge import represent
from gate.judge.classify import classify
from gate.judge.decide import decide
from gate.judge.describe import describe
from gate.judge.evidence import TRACKS, Evidence, Source, Track
from gate.judge.spec import JudgePolicy, ObjectiveSpec, from_contract, judge_policy
from gate.judge.transform import Prepared, prepare
from gate.judge.verdict import Comparison, Comparisons, Judgement, Status, Verdict

Getter = Callable[[str, Source, Track], Prepared | None]


def judge(
    objectives: Iterable[ObjectiveSpec | Objective],
    evidence: Evidence,
    policy: JudgePolicy | Policy | None = None,
    *,
    final: bool = False,
    units: Mapping[str, str] | None = None,
    now: float | None = None,
    max_age: float | None = None,
) -> Judgement:
    """Judge the evidence against the objectives; `final` marks the last look of a step.

    Objectives and policy may be the contract's own models or the judge's specs; `units` maps an SLI
    name to its unit ("seconds", "ratio", ...) for the reasons in words. With `now` (unix seconds, given
    as data: the judge has no clock) and `max_age`, entries whose window ended earlier are stale.
    """
    policy = judge_policy(policy) if isinstance(policy, Policy) else (policy or JudgePolicy())
    objs = from_contract(objectives, units)
    cells = sum(len(o.sources) for o in objs)
    alpha_cell = policy.alpha / max(cells, 1)
    prepared: dict[tuple[str, Source, Track], Prepared | None] = {}
    memo: dict[tuple[object, ...], object] = {}

    def get(sli: str, source: Source, track: Track) -> Prepared | None:
        key = (sli, source, track)
        if key not in prepared:
            item = evidence.get(sli, source, track)
            prepared[key] = (
                None
                if item is None
                else prepare(item, policy.outliers, policy.outlier_factor, now=now, max_age=max_age)
            )
        return prepared[key]

    verdicts: list[Verdict] = []
    for obj in objs:
        for source in obj.sources:
            try:
                canary, stable = get(obj.sli, source, "canary"), get(obj.sli, source, "stable")
                verdict = classify(obj, source, canary, stable, alpha=alpha_cell, policy=policy, memo=memo)
                if canary is not None:
                    verdict = verdict.model_copy(
                        update={"numbers": {**verdict.numbers, **_notes(canary, stable)}}
                    )
            except Exception as exc:  # one objective's crash must not sink the judgement
                verdict = Verdict(
                    objective=obj.key,
                    sli=obj.sli,
                    source=source,
                    status=Status.ERROR,
                    critical=obj.critical,
                    reason=f"the judge failed on this objective: {type(exc).__name__}: {str(exc)[:200]}",
                )
            verdicts.append(verdict)

    rep = _representativeness(objs, get, alpha_cell, policy)
    unrepresentative = {c.sli: c.reason for c in rep if c.status == Status.FAIL}
    verdicts = represent.downweight(verdicts, unrepresentative)
    comparisons = Comparisons(
        regression=_rows(verdicts, "regression"),
        conformance=_rows(verdicts, "conformance"),
        representativeness=rep,
    )
    return Judgement(
        verdicts=verdicts,
        comparisons=comparisons,
        decision=decide(verdicts, policy, final),
        alpha=policy.alpha,
        alpha_per_verdict=alpha_cell,
    )


def _notes(canary: Prepared, stable: Prepared | None) -> dict[str, str | float | None]:
    out: dict[str, str | float | None] = {}
    if canary.notes:
        out["canary_notes"] = "; ".join(canary.notes)
    if stable is not None and stable.notes:
        out["stable_notes"] = "; ".join(stable.notes)
    return out


def _rows(verdicts: list[Verdict], kind: str) -> list[Comparison]:
    rows: list[Comparison] = []
    for v in verdicts:
        for c in v.checks:
            if c.kind == kind:
                rows.append(
                    Comparison(
                        kind=c.kind,
                        sli=v.sli,
                        source=v.source,
                        objective=v.objective,
                        status=c.status,
                        reason=c.reason,
                        numbers=c.numbers,
                    )
                )
    return rows


def _representativeness(
    objs: list[ObjectiveSpec], get: Getter, alpha: float, policy: JudgePolicy
) -> list[Comparison]:
    """Synthetic vs production on stable, once per SLI that both sources measured."""
    rows: list[Comparison] = []
    seen: set[str] = set()
    for obj in objs:
        if obj.sli in seen:
            continue
        seen.add(obj.sli)
        synthetic, production = get(obj.sli, "synthetic", "stable"), get(obj.sli, "production", "stable")
        if synthetic is None or production is None or not synthetic.usable or not production.usable:
            continue
        try:
            rows.append(represent.compare(obj.sli, synthetic, production, alpha, policy))
        except Exception as exc:  # a report row, never a reason to fail the judgement
            rows.append(
                Comparison(
                    kind="representativeness",
                    sli=obj.sli,
                    source="synthetic",
                    status=Status.ERROR,
                    reason=f"could not compare: {type(exc).__name__}: {str(exc)[:200]}",
                )
            )
    return rows


def describe_evidence(evidence: Evidence) -> dict[str, dict[str, dict[str, dict[str, object]]]]:
    """Summary numbers of every entry (for reports): sli → source → track → numbers."""
    out: dict[str, dict[str, dict[str, dict[str, object]]]] = {}
    for sli, per_source in evidence.slis.items():
        for source, tracks in per_source.items():
            for track in TRACKS:
                item = tracks.get(track)
                if item is not None:
                    p = prepare(item)
                    out.setdefault(sli, {}).setdefault(source, {})[track] = {
                        **describe(p),
                        "usable": p.usable,
                        "problems": "; ".join(p.problems),
                    }
    return out
