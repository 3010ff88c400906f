"""What the judge needs to know about objectives and the policy, independent of how a contract spells it.

`ObjectiveSpec` and `JudgePolicy` are the judge's own small input types; `objective_spec`,
`judge_policy` and `from_contract` turn the contract's models into them, so the statistics never depend
on the contract's surface syntax.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from gate.contract.models import Objective, Policy
from gate.judge.evidence import SOURCES, Source

OnInconclusive = Literal["hold", "rollback"]


@dataclass(frozen=True)
class ObjectiveSpec:
    """One objective: an SLI and the bounds it must keep (values in base units; fractions for ratios)."""

    key: str
    sli: str
    quantile: float | None = None
    """For latency-like SLIs: which quantile the bounds talk about (None: the median for relative checks)."""
    max: float | None = None
    min: float | None = None
    max_increase: float | None = None
    """Relative to stable: canary may be at most (1 + max_increase) × stable."""
    max_decrease: float | None = None
    """Relative to stable: canary may be no less than (1 - max_decrease) × stable (throughput-like SLIs)."""
    max_growth: float | None = None
    """For gauges: the largest tolerated trend, in units per second."""
    critical: bool = False
    sources: tuple[Source, ...] = SOURCES
    min_requests: int = 0
    """Per track; fewer is Inconclusive."""
    min_duration: float = 0.0
    """Seconds the evidence window must cover; shorter is Inconclusive."""
    unit: str = ""
    """How to print values: "seconds", "ratio", or anything else (printed plainly)."""
    during: str | None = None
    """The chaos experiment the objective holds during (its fault window is `Evidence.chaos[during]`)."""
    recover_within: float | None = None
    """Seconds after the fault's start by which the SLI (a series over time) must be back inside max/min."""

    def __post_init__(self) -> None:
        if self.quantile is not None and not 0.0 < self.quantile < 1.0:
            raise ValueError(f"objective {self.key}: quantile must be strictly between 0 and 1")
        if self.max_increase is not None and not (
            math.isfinite(self.max_increase) and self.max_increase >= 0
        ):
            raise ValueError(f"objective {self.key}: max_increase must be a fraction >= 0")
        if self.max_decrease is not None and not (
            math.isfinite(self.max_decrease) and 0 <= self.max_decrease < 1
        ):
            raise ValueError(f"objective {self.key}: max_decrease must be a fraction in [0, 1)")
        if self.recover_within is not None and (
            not (math.isfinite(self.recover_within) and self.recover_within >= 0)
            or self.during is None
            or (self.max is None and self.min is None)
        ):
            raise ValueError(
                f"objective {self.key}: recover_within needs seconds >= 0, `during` and a max or min bound"
            )
        if all(
            v is None for v in (self.max, self.min, self.max_increase, self.max_decrease, self.max_growth)
        ):
            raise ValueError(
                f"objective {self.key}: needs one of max, min, max_increase, max_decrease, max_growth"
            )

    @property
    def relative(self) -> bool:
        """Does it compare canary with stable?"""
        return self.max_increase is not None or self.max_decrease is not None


@dataclass(frozen=True)
class JudgePolicy:
    """How sure the judge must be, and how verdicts become a decision."""

    confidence: float = 0.99
    """1 - alpha, family-wise over all objectives × sources and over all looks."""
    on_inconclusive: OnInconclusive = "hold"
    failure_limit: int = 0
    """Non-critical failures tolerated before rolling back (critical ones never are)."""
    inconclusive_limit: int = 3
    """Inconclusive verdicts tolerated at the end of a step before `on_inconclusive` applies."""
    error_limit: int = 3
    """Verdicts the judge could not compute, tolerated before rolling back (fail safe)."""
    tolerance: float = 0.05
    """A relative difference treated as no difference: relative objectives tolerate at least this."""
    representativeness_tolerance: float = 0.5
    """How far synthetic may differ from production (stable track) before its verdicts are down-weighted."""
    design_requests: int = 1000
    """Requests per track a step is designed to need; the always-valid bounds are tightest there."""
    error_floor: float = 0.001
    """An error-ratio increase smaller than this (absolute) is never a regression, however certain."""
    trend_margin: float = 0.01
    """A gauge trend that changes the level by less than this fraction over the window counts as flat."""
    outliers: Literal["keep", "remove"] = "keep"
    """Kayenta's outlier strategy. Keep by default: a heavier tail is exactly what we look for."""
    outlier_factor: float = 3.0
    min_samples: int = 20
    """Fewer observations per track than this is Inconclusive, whatever the bounds say."""
    power_detect: float | None = None
    """Demanded power: the relative change the evidence must be able to catch (None: no demand)."""
    power_probability: float = 0.8
    """With what probability; also the probability the minimum detectable effect is stated at."""
    recent_share: float = 0.25
    """The share of alpha the recent-window looks spend (when a step judges one); the whole-window
    boundaries keep the rest, so the family-wise false-rollback rate stays below alpha."""

    def __post_init__(self) -> None:
        if not 0.5 <= self.confidence < 1.0:
            raise ValueError("confidence must be in [0.5, 1)")
        if not 0.0 < self.recent_share < 1.0:
            raise ValueError("recent_share must be in (0, 1)")

    @property
    def alpha(self) -> float:
        """The error budget shared by all objectives × sources × looks."""
        return 1.0 - self.confidence


def objective_spec(objective: Objective, unit: str = "") -> ObjectiveSpec:
    """The judge's view of a contract objective (`unit` from its SLI template, e.g. "seconds")."""
    return ObjectiveSpec(
        key=objective.key or objective.default_key(),
        sli=objective.sli,
        quantile=objective.quantile,
        max=objective.max,
        min=objective.min,
        max_increase=objective.max_increase,
        max_decrease=objective.max_decrease,
        max_growth=objective.max_growth,
        critical=objective.critical,
        sources=tuple(objective.sources),
        min_requests=objective.min_evidence.requests,
        min_duration=objective.min_evidence.duration,
        unit=unit,
        during=objective.during,
        recover_within=objective.recover_within,
    )


def judge_policy(policy: Policy) -> JudgePolicy:
    """The judge's view of a contract policy."""
    return JudgePolicy(
        confidence=policy.confidence,
        tolerance=policy.tolerance,
        on_inconclusive=policy.on_inconclusive,
        failure_limit=policy.failure_limit,
        inconclusive_limit=policy.inconclusive_limit,
        error_limit=policy.error_limit,
        power_detect=policy.power.detect if policy.power is not None else None,
        power_probability=policy.power.probability if policy.power is not None else 0.8,
    )


def from_contract(
    objectives: Iterable[ObjectiveSpec | Objective], units: Mapping[str, str] | None = None
) -> list[ObjectiveSpec]:
    """Objectives of either kind as ObjectiveSpecs; `units` maps SLI name to unit."""
    units = units or {}
    return [
        o if isinstance(o, ObjectiveSpec) else objective_spec(o, units.get(o.sli, "")) for o in objectives
    ]
