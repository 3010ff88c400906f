"""The judge: transform → describe → classify → score/decide, per objective × source, then one decision.

Pure: the same objectives, evidence and policy give the same judgement; no clock, no I/O. Safe to call
every few seconds on cumulative evidence, because every interval it decides on is always-valid and the
error budget alpha = 1 - confidence is split (Bonferroni) over objectives × sources, so the chance of a
false Fail anywhere, at any look, stays below alpha.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import cast

from gate.contract.models import Objective, Policy
from gate.judge import represent
from gate.judge.classify import classify
from gate.judge.decide import decide
from gate.judge.describe import describe
from gate.judge.evidence import TRACKS, Evidence, Source, Track
from gate.judge.recovery import judge_recovery
from gate.judge.spec import JudgePolicy, ObjectiveSpec, from_contract, judge_policy
from gate.judge.transform import Prepared, baseline_source, prepare
from gate.judge.verdict import Comparison, Comparisons, Judgement, Status, Verdict

Getter = Callable[[str, Source, Track], Prepared | None]


@dataclass(frozen=True)
class RecentLook:
    """The recent window of one look: the evidence of the last `seconds` of the step (None when this
    look has none, e.g. the step is not yet longer than the window), and the look's number `look`
    (1, 2, ...) among the step's looks that judge a recent window.

    Passing a RecentLook at *every* look of a step (evidence or not) makes the judge split alpha:
    the whole-window boundaries keep (1 - recent_share) alpha at every look, and the recent window of
    look k gets recent_share alpha / (k (k + 1)) (these sum to recent_share alpha over all k: a
    Bonferroni union over the looks, valid for overlapping windows). The recent window can only roll
    back: a Fail on it replaces the verdict, a Pass or an Inconclusive on it is never used.
    """

    evidence: Evidence | None
    look: int
    seconds: float

    def __post_init__(self) -> None:
        if self.look < 1:
            raise ValueError("RecentLook.look counts from 1")
        if not (math.isfinite(self.seconds) and self.seconds > 0):
            raise ValueError("RecentLook.seconds must be a positive number of seconds")


def recent_alpha(alpha: float, share: float, look: int) -> float:
    """The error budget the recent window of look `look` (1, 2, ...) may spend (sums to share × alpha)."""
    return alpha * share / (look * (look + 1))


def judge(
    objectives: Iterable[ObjectiveSpec | Objective],
    evidence: Evidence,
    policy: JudgePolicy | Policy | None = None,
    *,
    final: bool = False,
    units: Mapping[str, str] | None = None,
    now: float | None = None,
    max_age: float | None = None,
    recent: RecentLook | None = None,
) -> Judgement:
    """Judge the evidence against the objectives; `final` marks the last look of a step.

    Objectives and policy may be the contract's own models or the judge's specs; `units` maps an SLI
    name to its unit ("seconds", "ratio", ...) for the reasons in words. With `now` (unix seconds, given
    as data: the judge has no clock) and `max_age`, entries whose window ended earlier are stale.
    With `recent` (a step that judges a recent window), a regression shown on the last seconds alone
    rolls back too, paid for out of the same alpha (see RecentLook).
    """
    policy = judge_policy(policy) if isinstance(policy, Policy) else (policy or JudgePolicy())
    objs, broken = _specs(objectives, units)
    # Recovery checks are point estimates (no interval): they take no share of the error budget.
    cells = sum(len(o.sources) for o in objs if o.recover_within is None) + sum(len(b[2]) for b in broken)
    whole_alpha = policy.alpha if recent is None else policy.alpha * (1.0 - policy.recent_share)
    alpha_cell = whole_alpha / max(cells, 1)
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
            # Everything computed for this objective × source happens inside the guard: preparing the
            # entries (histogram arithmetic), pairing, classifying, the notes.
            try:
                if obj.recover_within is not None:
                    # Recovery is its own check on the SLI over time, instead of bounds over the window.
                    fault = evidence.chaos.get(obj.during or "")
                    item = evidence.get(obj.sli, source, "canary")
                    verdicts.append(judge_recovery(obj, source, item, fault, now=now, max_age=max_age))
                    continue
                verdict = _one(
                    obj,
                    source,
                    evidence=evidence,
                    get=get,
                    alpha=alpha_cell,
                    policy=policy,
                    memo=memo,
                    final=final,
                )
            except Exception as exc:  # one objective's crash must not sink the judgement
                verdict = _error(obj.key, obj.sli, source, obj.critical, exc)
            verdicts.append(verdict)
    for key, sli, sources, critical, why in broken:
        verdicts.extend(_error(key, sli, source, critical, why) for source in sources)
    if recent is not None and recent.evidence is not None:
        verdicts = _with_recent(
            verdicts, objs, recent=recent, policy=policy, cells=cells, now=now, max_age=max_age
        )

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


def _one(
    obj: ObjectiveSpec,
    source: Source,
    *,
    evidence: Evidence,
    get: Getter,
    alpha: float,
    policy: JudgePolicy,
    memo: dict[tuple[object, ...], object],
    final: bool = False,
) -> Verdict:
    """The verdict of one objective on one source (may raise; the caller turns that into Error)."""
    canary = get(obj.sli, source, "canary")
    base_source, baseline = baseline_source(evidence.get(obj.sli, source, "stable"), source)
    stable = get(obj.sli, cast(Source, base_source), "stable")
    verdict = classify(obj, source, canary, stable, alpha=alpha, policy=policy, memo=memo, final=final)
    if baseline is not None and any(c.kind == "regression" for c in verdict.checks):
        verdict = _with_baseline(verdict, baseline)
    if canary is not None:
        verdict = verdict.model_copy(update={"numbers": {**verdict.numbers, **_notes(canary, stable)}})
    return verdict


def _with_recent(
    verdicts: list[Verdict],
    objs: list[ObjectiveSpec],
    *,
    recent: RecentLook,
    policy: JudgePolicy,
    cells: int,
    now: float | None,
    max_age: float | None,
) -> list[Verdict]:
    """Verdicts where the recent window shows harm that the whole window does not: the recent Fail.

    Only a Fail is taken from the recent window (never promote on it); it is judged as a look that is
    not the step's last (no horizon rule), at the recent look's share of alpha.
    """
    assert recent.evidence is not None
    evidence = recent.evidence
    alpha = recent_alpha(policy.alpha, policy.recent_share, recent.look) / max(cells, 1)
    prepared: dict[tuple[str, Source, Track], Prepared | None] = {}

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

    # minEvidence is what a step needs to promote; a rollback only needs harm shown at the confidence
    # (the judge's own floor of policy.min_samples observations per track still applies).
    by_key = {
        (o.key, s): dataclasses.replace(o, min_requests=0, min_duration=0.0)
        for o in objs
        if o.recover_within is None
        for s in o.sources
    }
    label = f"recent {recent.seconds:g} s"
    out: list[Verdict] = []
    for v in verdicts:
        obj = by_key.get((v.objective, cast(Source, v.source)))
        if obj is None or v.status in (Status.FAIL, Status.ERROR):
            out.append(v)
            continue
        try:
            r = _one(
                obj,
                cast(Source, v.source),
                evidence=evidence,
                get=get,
                alpha=alpha,
                policy=policy,
                memo={},
                final=False,
            )
        except Exception:  # the recent window is an extra look: its failure never hides the verdict
            out.append(v)
            continue
        if r.status != Status.FAIL:
            out.append(v)
            continue
        out.append(
            r.model_copy(
                update={
                    "reason": f"{label}: {r.reason}",
                    "numbers": {
                        **r.numbers,
                        "window": "recent",
                        "recent_seconds": recent.seconds,
                        "whole_window": v.reason,
                    },
                    "checks": [c.model_copy(update={"reason": f"{label}: {c.reason}"}) for c in r.checks],
                }
            )
        )
    return out


def _with_baseline(verdict: Verdict, baseline: str) -> Verdict:
    """Say in the regression checks, the numbers and the reason which entry stable was compared from."""
    checks = [
        c.model_copy(
            update={
                "reason": f"{c.reason} (baseline: {baseline})",
                "numbers": {**c.numbers, "baseline": baseline},
            }
        )
        if c.kind == "regression"
        else c
        for c in verdict.checks
    ]
    return verdict.model_copy(
        update={
            "checks": checks,
            "reason": f"{verdict.reason} (baseline: {baseline})",
            "numbers": {**verdict.numbers, "baseline": baseline},
        }
    )


def _error(key: str, sli: str, source: str, critical: bool, exc: Exception) -> Verdict:
    return Verdict(
        objective=key,
        sli=sli,
        source=source,
        status=Status.ERROR,
        critical=critical,
        reason=f"the judge failed on this objective: {type(exc).__name__}: {str(exc)[:200]}",
    )


def _specs(
    objectives: Iterable[ObjectiveSpec | Objective], units: Mapping[str, str] | None
) -> tuple[list[ObjectiveSpec], list[tuple[str, str, tuple[str, ...], bool, Exception]]]:
    """The judge's specs; an objective that cannot become one is an Error on each of its sources."""
    specs: list[ObjectiveSpec] = []
    broken: list[tuple[str, str, tuple[str, ...], bool, Exception]] = []
    for o in objectives:
        try:
            specs.extend(from_contract([o], units))
        except Exception as exc:  # e.g. a bound the judge's spec refuses: that objective only
            key = o.key if isinstance(o, ObjectiveSpec) else (o.key or o.default_key())
            broken.append((key, o.sli, tuple(o.sources), o.critical, exc))
    return specs, broken


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
        if obj.sli in seen or obj.recover_within is not None:
            continue
        seen.add(obj.sli)
        try:
            synthetic, production = get(obj.sli, "synthetic", "stable"), get(obj.sli, "production", "stable")
            if synthetic is None or production is None or not synthetic.usable or not production.usable:
                continue
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
                if item is None:
                    continue
                try:
                    p = prepare(item)
                    row: dict[str, object] = {
                        **describe(p),
                        "usable": p.usable,
                        "problems": "; ".join(p.problems),
                    }
                except Exception as exc:  # one entry's summary must not hide the others
                    row = {"usable": False, "problems": f"could not summarise: {type(exc).__name__}"}
                out.setdefault(sli, {}).setdefault(source, {})[track] = row
    return out
